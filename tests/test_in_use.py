"""The in-use interlocks on the commonest KubeVirt node there is, a cloud VM: the recording of the
development VM (tests/data/dev-vm-firecracker: virtio NIC eth0 at 0000:00:03.0 carrying the
default route via 192.0.2.1, virtio-blk vda at 0000:00:02.0 mounted at /), copied and driven by
the simulated kernel, then stacked the way hosts stack their NICs and disks."""
import shutil

import pytest
from typer.testing import CliRunner

from hostdev import hostuse
from hostdev.cli import context
from hostdev.cli.app import app
from hostdev.host import Host
from tests.fakesys import FakeRoot, SimKernel
from tests.fakesys import inuse as shapes
from tests.test_fakesys import DEV_VM

NIC, DISK = "0000:00:03.0", "0000:00:02.0"
DEFAULT = "default via 192.0.2.1"


@pytest.fixture
def vm(tmp_path, monkeypatch):
    root = str(tmp_path / "root")
    shutil.copytree(DEV_VM, root, symlinks=True)
    fr = FakeRoot.attach(root)
    kernel = SimKernel(root)
    host = Host(root, kernel=kernel)
    runner = CliRunner()

    def invoke(*args):
        monkeypatch.setattr(context, "host_factory", lambda _root: host)
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    fr.host, fr.kernel, fr.invoke = host, kernel, invoke
    return fr


def test_the_recording_has_the_real_shape(vm):
    # what this VM's kernel showed: the NIC sits on a virtio device, not on the PCI function
    assert vm.readlink("/sys/class/net/eth0") == "../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0"
    assert vm.resolve("/sys/class/net/eth0/device") == "/sys/devices/pci0000:00/0000:00:03.0/virtio2"
    assert "eth0\t00000000\t010200C0\t0003" in vm.read("/proc/net/route")
    assert vm.readlink("/sys/block/vda") == "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda"


def test_virtio_nic_with_the_default_route_is_refused_naming_interface_and_route(vm):
    code, _, err = vm.invoke("bind", NIC, "--dry-run")
    assert code == 3, err
    assert f"{NIC} is network interface eth0, which carries a route ({DEFAULT} dev eth0)" in err
    assert vm.kernel.writes == []


def test_virtio_disk_mounted_at_root_is_refused(vm):
    code, _, err = vm.invoke("bind", DISK, "--dry-run")
    assert code == 3, err
    assert f"{DISK} controls disk vda (mounted at /)" in err


@pytest.mark.parametrize("stacking", ["bridge", "bond", "vlan", "vlan-on-bond-in-bridge"])
def test_the_route_is_followed_down_every_stacking(vm, stacking):
    if stacking == "bridge":
        shapes.add_bridge(vm, "br0", ["eth0"])
        top = "br0"
    elif stacking == "bond":
        shapes.add_bond(vm, "bond0", ["eth0"])
        top = "bond0"
    elif stacking == "vlan":
        top = shapes.add_vlan(vm, "eth0", 100)
    else:
        shapes.add_bond(vm, "bond0", ["eth0"])
        vlan = shapes.add_vlan(vm, "bond0", 100)
        shapes.add_bridge(vm, "br0", [vlan])
        top = "br0"
    shapes.set_routes(vm, top)
    code, _, err = vm.invoke("bind", NIC, "--dry-run")
    assert code == 3, err
    assert f"{NIC} is network interface eth0 (under {top}), which carries a route ({DEFAULT} dev {top})" in err


def test_any_route_counts_not_only_the_default_and_ipv6_too(vm):
    shapes.set_routes(vm, "eth0", gateway=None, network="10.20.0.0/16")
    assert "which carries a route (10.20.0.0/16 dev eth0)" in vm.invoke("bind", NIC, "--dry-run")[2]
    shapes.clear_routes(vm)
    shapes.set_routes(vm, "eth0", gateway=None, network="0.0.0.0/32", ipv6="fd00:1::/64")
    vm.write("/proc/net/route", shapes.ROUTE_HEADER)
    code, _, err = vm.invoke("bind", NIC, "--dry-run")
    assert code == 3 and "which carries a route (fd00:1::/64 dev eth0)" in err


def test_link_local_and_multicast_routes_alone_do_not_count(vm):
    # every interface that is up has fe80::/64 and ff00::/8: an unconfigured NIC may be taken
    shapes.clear_routes(vm)
    shapes.set_routes(vm, "eth0", gateway=None, network="0.0.0.0/32")
    vm.write("/proc/net/route", shapes.ROUTE_HEADER)
    assert hostuse.routes(vm.host) == []
    code, _, err = vm.invoke("bind", NIC, "--dry-run")
    assert code == 0, err


def test_the_ssh_connection_is_named(vm):
    shapes.set_routes(vm, "eth0")
    vm.host.environ["SSH_CONNECTION"] = "192.0.2.77 50022 192.0.2.10 22"
    code, _, err = vm.invoke("bind", NIC, "--dry-run")
    assert code == 3
    assert "(192.0.2.0/24 dev eth0) and the SSH connection this command runs in" in err


def test_a_mounted_filesystem_on_lvm_over_virtio_blk_is_refused(vm, tmp_path):
    # the disk of a second virtio-blk function, partitioned, its partition an LVM PV mounted at /srv
    vm.add_pci("0000:00:07.0", 0x1AF4, 0x1042, 0x010000, subsys=(0x1AF4, 0x0002), driver="virtio-pci",
               pcie_type=None, reset_method=None)
    shapes.add_virtio_blk(vm, "0000:00:07.0", 7, "vdb", major=252, partitions=2)
    lv = shapes.add_lvm(vm, "data", "srv", ["vdb2"], dm_index=3, minor=3)
    shapes.set_mounts(vm, [("254:0", "/dev/vda", "/", "ext4"), ("253:3", lv, "/srv", "xfs")])
    code, _, err = vm.invoke("bind", "0000:00:07.0", "--dry-run")
    assert code == 3, err
    assert "0000:00:07.0 controls disk vdb (mounted at /srv)" in err
    # without mountinfo (older procfs shapes) /proc/mounts names /dev/mapper/data-srv: same answer
    vm.unlink("/proc/self/mountinfo")
    code, _, err = vm.invoke("bind", "0000:00:07.0", "--dry-run")
    assert code == 3 and "controls disk vdb (mounted at /srv)" in err


def test_swap_on_dm_crypt_over_md_is_followed_to_the_disks(vm):
    vm.add_pci("0000:00:07.0", 0x1AF4, 0x1042, 0x010000, driver="virtio-pci", pcie_type=None, reset_method=None)
    vm.add_pci("0000:00:08.0", 0x1AF4, 0x1042, 0x010000, driver="virtio-pci", pcie_type=None, reset_method=None)
    shapes.add_virtio_blk(vm, "0000:00:07.0", 7, "vdb", major=252)
    shapes.add_virtio_blk(vm, "0000:00:08.0", 8, "vdc", major=251)
    md = "/sys/devices/virtual/block/md0"
    vm.attr(f"{md}/dev", "9:0")
    for disk in ("vdb", "vdc"):
        vm.symlink(f"{md}/slaves/{disk}", vm.resolve(f"/sys/class/block/{disk}"))
    vm.symlink("/sys/class/block/md0", md)
    crypt = shapes.add_lvm(vm, "luks", "swap", ["md0"], dm_index=4, minor=4)  # a dm device like any
    vm.write("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n"
                            "/dev/dm-4                               partition\t8388604\t0\t-2\n")
    assert crypt
    for addr, disk in (("0000:00:07.0", "vdb"), ("0000:00:08.0", "vdc")):
        code, _, err = vm.invoke("bind", addr, "--dry-run")
        assert code == 3 and f"{addr} controls disk {disk} (swap)" in err
