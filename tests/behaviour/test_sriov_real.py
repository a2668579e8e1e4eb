"""hostdev sriov on the real kernel: the igb PF of the QEMU guest (QEMU >= 8.0 emulates the Intel
82576 with SR-IOV; tests/realkernel/vm.py SRIOV_DEVICES), driven through the hostdev command as a
sysadmin types it, asserting what the kernel shows: sriov_numvfs, the VF functions and their
own IOMMU groups, vfio-pci and /dev/vfio/N, the PF's driver. (The simulated-kernel side is
tests/test_sriov.py.)

The expected VF addresses are reasoned from the 82576's SR-IOV capability as QEMU emulates it
(hw/net/igb.c: First VF Offset 0x80, VF Stride 2, read back in the guest as sriov_offset 128 and
sriov_stride 2): the PF is 02:00.0 (routing ID 0x200), so VF n has routing ID 0x200 + 0x80 + 2n,
i.e. device 0x10, function 2n: 02:10.0, 02:10.2, 02:10.4.
"""
import json
import os
import stat
import subprocess
import sys

import pytest

from hostdev.host import Host
from tests.realkernel import guest, speed

pytestmark = pytest.mark.realkernel

PF = guest.IGB_PF
PF_DIR = f"/sys/bus/pci/devices/{PF}"
VF_ADDRESSES = ["0000:02:10.0", "0000:02:10.2", "0000:02:10.4"]


def hostdev(*args):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env=dict(os.environ, HOSTDEV_ROOT="/"),
                          timeout=speed.allowance(speed.TEST_GUEST_UNITS))


def hostdev_json(*args, rc=0):
    result = hostdev(*args, "-o", "json")
    assert result.returncode == rc, f"hostdev {' '.join(args)}: rc {result.returncode}\n{result.stderr}"
    return json.loads(result.stdout)


def read(path):
    with open(path) as handle:
        return handle.read().strip()


def link_name(path):
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def virtfn_links():
    return sorted((n for n in os.listdir(PF_DIR) if n.startswith("virtfn")), key=lambda n: int(n[6:]))


def _set_numvfs_zero():
    if os.path.exists(f"{PF_DIR}/sriov_numvfs") and read(f"{PF_DIR}/sriov_numvfs") != "0":
        guest.write_sysfs(f"{PF_DIR}/sriov_numvfs", "0")


@pytest.fixture
def igb_pf():
    """The guest's igb PF with no VFs and on igb, put back so after the test."""
    from tests.behaviour.conftest import _reset_real_guest

    guest.require_guest("the SR-IOV real-kernel tests")
    if not os.path.isdir(PF_DIR):
        guest.skip_or_fail(f"no SR-IOV PF at {PF}: the guest was booted by a QEMU without igb (QEMU < 8.0; "
                           "Debian 12 has 7.2). Run scripts/fetch-qemu.sh (QEMU 10 from bookworm-backports, "
                           "unpacked into .cache/qemu)")
    _set_numvfs_zero()
    _reset_real_guest(Host("/"))
    assert link_name(f"{PF_DIR}/driver") == "igb"
    yield PF
    _set_numvfs_zero()
    _reset_real_guest(Host("/"))


def test_the_guest_has_an_sriov_pf_behind_a_root_port_with_acs(igb_pf):
    assert (read(f"{PF_DIR}/vendor"), read(f"{PF_DIR}/device")) == ("0x8086", "0x10c9")
    assert read(f"{PF_DIR}/sriov_totalvfs") == "7" and read(f"{PF_DIR}/sriov_numvfs") == "0"
    assert (read(f"{PF_DIR}/sriov_offset"), read(f"{PF_DIR}/sriov_stride")) == ("128", "2")
    assert os.path.basename(os.path.dirname(os.path.realpath(PF_DIR))) == guest.ROOT_PORT
    # hostdev reads it as a PF too
    devices = {d["address"]: d for d in hostdev_json("devices")["devices"]}
    assert devices[PF]["driver"] == "igb"


def test_enable_bind_vfio_pci_then_disable_on_the_real_kernel(igb_pf):
    pf_group = link_name(f"{PF_DIR}/iommu_group")
    # --dry-run changes nothing
    dry = hostdev_json("sriov", "enable", PF, "--vfs", "2", "--bind", "vfio-pci", "--dry-run")
    assert dry["dry_run"] is True and dry["changed"] is True
    assert read(f"{PF_DIR}/sriov_numvfs") == "0" and virtfn_links() == []

    report = hostdev_json("sriov", "enable", PF, "--vfs", "2", "--bind", "vfio-pci")
    assert report["changed"] is True and report["dry_run"] is False and report["reboot_required"] is False
    assert (report["pf"], report["num_vfs_before"], report["num_vfs_after"]) == (PF, 0, 2)
    assert report["vfs"] == VF_ADDRESSES[:2]
    assert [(d["address"], d["from_driver"], d["to_driver"], d["changed"]) for d in report["devices"]] == \
        [(VF_ADDRESSES[0], None, "vfio-pci", True), (VF_ADDRESSES[1], None, "vfio-pci", True)]

    # what the kernel shows
    assert read(f"{PF_DIR}/sriov_numvfs") == "2"
    assert virtfn_links() == ["virtfn0", "virtfn1"]
    groups = []
    for index, vf in enumerate(VF_ADDRESSES[:2]):
        base = f"/sys/bus/pci/devices/{vf}"
        assert link_name(f"{PF_DIR}/virtfn{index}") == vf
        assert link_name(f"{base}/physfn") == PF
        assert (read(f"{base}/vendor"), read(f"{base}/device")) == ("0x8086", "0x10ca")
        assert link_name(f"{base}/driver") == "vfio-pci"
        group = link_name(f"{base}/iommu_group")
        # each VF alone in its own group (the root port has ACS): assignable one by one
        assert os.listdir(f"/sys/kernel/iommu_groups/{group}/devices") == [vf]
        assert stat.S_ISCHR(os.stat(f"/dev/vfio/{group}").st_mode)
        groups.append(group)
    assert len(set(groups)) == 2 and pf_group not in groups
    assert link_name(f"{PF_DIR}/driver") == "igb"          # the PF keeps its driver

    # idempotent: the same request again changes nothing
    again = hostdev_json("sriov", "enable", PF, "--vfs", "2", "--bind", "vfio-pci")
    assert again["changed"] is False and again["vfs"] == VF_ADDRESSES[:2]
    assert [d["changed"] for d in again["devices"]] == [False, False]
    assert [link_name(f"/sys/bus/pci/devices/{vf}/iommu_group") for vf in VF_ADDRESSES[:2]] == groups

    # 2 -> 3: the kernel refuses a change between two non-zero counts (EBUSY); hostdev writes 0 first
    three = hostdev_json("sriov", "enable", PF, "--vfs", "3", "--bind", "vfio-pci")
    assert three["changed"] is True and (three["num_vfs_before"], three["num_vfs_after"]) == (2, 3)
    assert three["vfs"] == VF_ADDRESSES and read(f"{PF_DIR}/sriov_numvfs") == "3"
    assert [link_name(f"/sys/bus/pci/devices/{vf}/driver") for vf in VF_ADDRESSES] == ["vfio-pci"] * 3

    # disable removes the VFs, their groups and /dev/vfio nodes; the PF stays on igb
    groups = [link_name(f"/sys/bus/pci/devices/{vf}/iommu_group") for vf in VF_ADDRESSES]
    off = hostdev_json("sriov", "disable", PF)
    assert off["changed"] is True and (off["num_vfs_before"], off["num_vfs_after"]) == (3, 0)
    assert off["vfs"] == []
    assert read(f"{PF_DIR}/sriov_numvfs") == "0" and virtfn_links() == []
    for vf, group in zip(VF_ADDRESSES, groups):
        assert not os.path.exists(f"/sys/bus/pci/devices/{vf}")
        assert not os.path.exists(f"/sys/kernel/iommu_groups/{group}")
        assert not os.path.exists(f"/dev/vfio/{group}")
    assert link_name(f"{PF_DIR}/driver") == "igb"
    # the journal forgot the VFs: restore has nothing left to do
    restore = hostdev_json("restore", "--all")
    assert restore["changed"] is False
    # and a second disable is a no-op
    assert hostdev_json("sriov", "disable", PF)["changed"] is False


def test_a_vf_bound_by_sriov_enable_goes_through_vm_test(igb_pf, libvirtd):
    from tests.behaviour.test_vm_real import vm_test

    enabled = hostdev_json("sriov", "enable", PF, "--vfs", "1", "--bind", "vfio-pci")
    [vf] = enabled["vfs"]
    assert vf == VF_ADDRESSES[0]
    group = link_name(f"/sys/bus/pci/devices/{vf}/iommu_group")
    result, report = vm_test(vf, "--connect", libvirtd)
    log = "/var/log/libvirt/qemu/hostdev-test-0000-02-10-0.log"
    detail = result.stderr + (open(log, errors="replace").read()[-3000:] if os.path.exists(log) else "")
    assert result.returncode == 0, detail
    assert report["ok"] is True and report["error"] is None
    [dev] = report["devices"]
    # already on vfio-pci: in unmanaged, as KubeVirt's domains take SR-IOV VFs
    assert (dev["address"], dev["type"], dev["managed"], str(dev["iommu_group"])) == (vf, "pci", False, group)
    assert (dev["driver_before"], dev["driver_running"], dev["driver_after"]) == ("vfio-pci",) * 3
    assert dev["attached"] is True and dev["held_by"] and dev["held_by"][0].startswith("qemu")
    assert dev["guest_pci_id"] == "8086:10ca"   # the nested guest's PCI bus shows the 82576 VF
    assert dev["returned"] is True
    assert link_name(f"{PF_DIR}/driver") == "igb" and read(f"{PF_DIR}/sriov_numvfs") == "1"
