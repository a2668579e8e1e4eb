"""The route interlock on the real kernel: the QEMU guest's virtio-net NIC (0000:00:14.0, no
backend) given an address and a default route, directly and as the port of a bridge. The
simulated side, with the dev VM's recorded shapes and more stackings, is tests/test_in_use.py."""
import glob
import os
import subprocess
import sys
import time

import pytest

from hostdev import binding, hostuse, pci
from hostdev.errors import RefusedError
from hostdev.host import Host

pytestmark = pytest.mark.realkernel

NIC = "0000:00:14.0"
DEFAULT = "default via 192.0.2.1"


def ip(*args, check=True):
    from tests.realkernel import guest

    return guest.run(["ip", *args], check=check)


@pytest.fixture
def nic():
    """The virtio NIC's interface name, with virtio_net loaded; every address, route and bridge
    the test made is gone after it."""
    from tests.realkernel import guest

    guest.require_guest("the route interlock tests")
    guest.run(["modprobe", "virtio_net"])
    deadline = time.monotonic() + 10
    while not glob.glob(f"/sys/bus/pci/devices/{NIC}/virtio*/net/*") and time.monotonic() < deadline:
        time.sleep(0.1)
    names = glob.glob(f"/sys/bus/pci/devices/{NIC}/virtio*/net/*")
    assert len(names) == 1, names
    name = os.path.basename(names[0])
    yield name
    ip("link", "del", "br0", check=False)
    ip("addr", "flush", "dev", name, check=False)
    ip("link", "set", name, "down", check=False)


def test_the_guest_matches_the_simulated_groups():
    from tests.realkernel import guest

    guest.require_guest("the group check")
    # tests/fakesys/scenarios.py qemu_test_guest mirrors these numbers (the guest QEMU 10 boots)
    assert guest.iommu_group_of(NIC) == "7"
    if os.path.isdir(f"/sys/bus/pci/devices/{guest.ROOT_PORT}"):
        # QEMU >= 8.0: the SR-IOV PF's root port 00:1c.0 comes before ivshmem in bus order, the
        # PF behind it (bus 02) after the root bus
        assert guest.iommu_group_of(guest.ROOT_PORT) == "8"
        assert guest.iommu_group_of("0000:00:1e.0") == "9"     # ivshmem-plain (vm test's BAR check)
        assert guest.iommu_group_of("0000:00:1f.0") == "10"
        assert guest.iommu_group_of(guest.IGB_PF) == "11"
    else:  # the system's QEMU 7.2 (HOSTDEV_VM_QEMU=system): no root port, no PF
        assert guest.iommu_group_of("0000:00:1e.0") == "8"
        assert guest.iommu_group_of("0000:00:1f.0") == "9"


def _refusal(host: Host) -> str:
    with pytest.raises(RefusedError) as caught:
        binding.plan_bind(host, [pci.get_device(host, NIC)])
    return caught.value.message


def _cli_dry_run() -> subprocess.CompletedProcess:
    env = dict(os.environ, HOSTDEV_ROOT="/")
    return subprocess.run([sys.executable, "-m", "hostdev", "bind", NIC, "--dry-run"], capture_output=True,
                          text=True, env=env)


def test_a_virtio_nic_with_the_default_route_is_refused(nic):
    host = Host("/")
    assert binding.plan_bind(host, [pci.get_device(host, NIC)]).devices[0].action == "bind"  # no route yet
    ip("link", "set", nic, "up")
    ip("addr", "add", "192.0.2.10/24", "dev", nic)
    ip("route", "add", "default", "via", "192.0.2.1", "dev", nic)
    # the real kernel's shape: the netdev hangs off the virtio device, whose parent is the function
    assert os.path.realpath(f"/sys/class/net/{nic}/device").startswith(f"/sys/devices/pci0000:00/{NIC}/virtio")
    assert f"{NIC} is network interface {nic}, which carries a route ({DEFAULT} dev {nic})" in _refusal(host)
    result = _cli_dry_run()
    assert result.returncode == 3, result.stderr
    assert f"({DEFAULT} dev {nic})" in result.stderr


def test_a_virtio_nic_under_a_bridge_with_the_route_is_refused(nic):
    from tests.realkernel import guest

    guest.run(["modprobe", "bridge"])  # the guest has no udev/kmod autoload for rtnl link kinds
    ip("link", "add", "br0", "type", "bridge")
    ip("link", "set", nic, "master", "br0")
    ip("link", "set", nic, "up")
    ip("link", "set", "br0", "up")
    ip("addr", "add", "192.0.2.10/24", "dev", "br0")
    ip("route", "add", "default", "via", "192.0.2.1", "dev", "br0")
    # the kernel's stacking links, which hostuse follows
    assert os.path.islink(f"/sys/class/net/br0/lower_{nic}") and os.path.islink(f"/sys/class/net/br0/brif/{nic}")
    host = Host("/")
    assert hostuse.lower_interfaces(host, "br0") == [nic]
    message = _refusal(host)
    assert f"{NIC} is network interface {nic} (under br0), which carries a route ({DEFAULT} dev br0)" in message
    result = _cli_dry_run()
    assert result.returncode == 3 and "(under br0)" in result.stderr
