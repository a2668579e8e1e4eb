"""SR-IOV behaviour on both kernels: the same test body against the simulated kernel (a fake root
that mirrors the guest, tests/fakesys/scenarios.qemu_test_guest) and the real kernel in the QEMU
guest (mark realkernel, a guest booted by QEMU >= 8.0: tests/realkernel/vm.py SRIOV_DEVICES).

The PF is the guest's igb 0000:02:00.0 (8086:10c9, sriov_totalvfs 7) behind the root port
00:1c.0. Its SR-IOV capability as the guest reads it: First VF Offset 128, VF Stride 2, so VF n
has routing ID 0x200 + 128 + 2n: 02:10.0, 02:10.2, 02:10.4. The guest has no udevd, so nothing
loads igbvf: new VFs have no driver (a host with udev would bind igbvf).
"""
import pytest

from hostdev import journal, sriov
from hostdev.errors import UsageError

PF = "0000:02:00.0"
VFS = ["0000:02:10.0", "0000:02:10.2", "0000:02:10.4"]


@pytest.fixture
def pf(machine):
    if machine.real and not machine.host.exists(f"/sys/bus/pci/devices/{PF}"):
        from tests.realkernel import guest

        guest.skip_or_fail(f"no SR-IOV PF at {PF}: the guest was booted by a QEMU without igb (< 8.0); "
                           "run scripts/fetch-qemu.sh")
    assert machine.host.read_attr(f"/sys/bus/pci/devices/{PF}/sriov_numvfs") == "0"
    yield PF
    if machine.host.read_attr(f"/sys/bus/pci/devices/{PF}/sriov_numvfs") != "0":
        machine.host.write_attr(f"/sys/bus/pci/devices/{PF}/sriov_numvfs", "0")


def driver(machine, address):
    return machine.host.link_name(f"/sys/bus/pci/devices/{address}/driver")


def group_of(machine, address):
    return machine.host.link_name(f"/sys/bus/pci/devices/{address}/iommu_group")


def numvfs(machine):
    return machine.host.read_attr(f"/sys/bus/pci/devices/{PF}/sriov_numvfs")


def enable(machine, n, bind=None):
    result = sriov.plan_enable(machine.host, PF, n, bind)
    result.apply(machine.host)
    return result


def test_vfs_appear_in_groups_of_their_own_on_vfio_and_go_away(machine, pf):
    pf_group = group_of(machine, PF)
    result = enable(machine, 2, "vfio-pci")
    assert result.changed and result.vfs == VFS[:2]
    assert [(d.address, d.before, d.after) for d in result.devices] == \
        [(VFS[0], None, "vfio-pci"), (VFS[1], None, "vfio-pci")]
    assert numvfs(machine) == "2"
    groups = [group_of(machine, vf) for vf in VFS[:2]]
    for index, (vf, group) in enumerate(zip(VFS, groups)):
        assert machine.host.link_name(f"/sys/bus/pci/devices/{PF}/virtfn{index}") == vf
        assert machine.host.link_name(f"/sys/bus/pci/devices/{vf}/physfn") == PF
        assert driver(machine, vf) == "vfio-pci"
        assert machine.host.listdir(f"/sys/kernel/iommu_groups/{group}/devices") == [vf]
        assert machine.host.exists(f"/dev/vfio/{group}")
    assert len(set(groups)) == 2 and pf_group not in groups
    assert driver(machine, PF) == "igb"
    assert sorted(journal.Journal.load(machine.host).devices) == VFS[:2]

    again = sriov.plan_enable(machine.host, PF, 2, "vfio-pci")
    assert not again.changed and again.actions == [] and again.vfs == VFS[:2]

    # 2 -> 3: the kernel answers EBUSY to a change between two non-zero counts; the plan writes 0 first
    three = enable(machine, 3, "vfio-pci")
    assert (three.before, three.after, three.vfs) == (2, 3, VFS)
    assert numvfs(machine) == "3" and [driver(machine, vf) for vf in VFS] == ["vfio-pci"] * 3

    groups = [group_of(machine, vf) for vf in VFS]
    off = sriov.plan_disable(machine.host, PF)
    off.apply(machine.host)
    assert off.changed and numvfs(machine) == "0"
    assert not any(n.startswith("virtfn") for n in machine.host.listdir(f"/sys/bus/pci/devices/{PF}"))
    for vf, group in zip(VFS, groups):
        assert not machine.host.exists(f"/sys/bus/pci/devices/{vf}")
        assert not machine.host.exists(f"/sys/kernel/iommu_groups/{group}")
        assert not machine.host.exists(f"/dev/vfio/{group}")
    assert driver(machine, PF) == "igb"
    assert journal.Journal.load(machine.host).devices == {}
    assert not sriov.plan_disable(machine.host, PF).changed


def test_new_vfs_have_no_driver_without_udev(machine, pf):
    result = enable(machine, 1)
    assert result.vfs == VFS[:1] and result.devices == []
    assert driver(machine, VFS[0]) is None      # igbvf is a module nothing loaded
    assert driver(machine, PF) == "igb"


def test_out_of_range_counts_are_refused_before_any_write(machine, pf):
    for n in (0, 8):
        with pytest.raises(UsageError) as refused:
            sriov.plan_enable(machine.host, PF, n)
        assert "1 to 7" in str(refused.value)
    assert numvfs(machine) == "0"
