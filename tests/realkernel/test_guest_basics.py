"""Real-kernel smoke tests: the guest's IOMMU, PCI devices, vfio-pci, mdev and libvirtd work.

They run ONLY inside the throwaway QEMU guest (tests.realkernel.plugin boots it and replays the
outcomes on the host). Every write below goes to the guest's own sysfs.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from . import guest

pytestmark = pytest.mark.realkernel


def test_kernel_cmdline_enables_the_iommu_and_marks_the_test_guest():
    tokens = Path("/proc/cmdline").read_text().split()
    assert "intel_iommu=on" in tokens
    assert "hostdev.testguest=1" in tokens


def test_iommu_groups_are_populated():
    groups = os.listdir("/sys/kernel/iommu_groups")
    assert groups, "no IOMMU groups: intel-iommu is not active"
    assert all(os.listdir(f"/sys/kernel/iommu_groups/{g}/devices") for g in groups)


def test_edu_device_is_present_at_its_pinned_address():
    dev = guest.PCI_DEVICES / guest.EDU
    assert (dev / "vendor").read_text().strip() == "0x1234"
    assert (dev / "device").read_text().strip() == "0x11e8"
    assert guest.driver_of(guest.EDU) in (None, "vfio-pci")  # no in-tree driver for edu


def test_e1000e_is_bound_after_coldplug():
    dev = guest.PCI_DEVICES / guest.E1000E
    assert (dev / "vendor").read_text().strip() == "0x8086"
    assert (dev / "device").read_text().strip() == "0x10d3"
    assert guest.driver_of(guest.E1000E) == "e1000e"


def test_devices_behind_the_pci_bridge_share_one_iommu_group():
    group = guest.iommu_group_of(guest.BRIDGE)
    assert guest.iommu_group_of(guest.BRIDGED_EDU) == group
    assert guest.iommu_group_of(guest.BRIDGED_E1000) == group
    assert guest.group_members(group) == sorted([guest.BRIDGE, guest.BRIDGED_EDU, guest.BRIDGED_E1000])
    assert guest.driver_of(guest.BRIDGED_E1000) == "e1000"


def test_mtty_sample_driver_offers_its_mdev_types(mdev_samples):
    assert "mtty" in mdev_samples
    types = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")
    assert (types / "mtty-1" / "name").read_text().strip() == "Single port serial"
    assert (types / "mtty-2" / "name").read_text().strip() == "Dual port serial"
    assert (types / "mtty-1" / "device_api").read_text().strip() == "vfio-pci"


def test_mtty_mdev_can_be_created_and_removed(mdev_samples):
    mtty1 = Path("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1")
    before = int((mtty1 / "available_instances").read_text())
    name = str(uuid.uuid4())
    guest.write_sysfs(mtty1 / "create", name)
    mdev = Path("/sys/bus/mdev/devices") / name
    try:
        assert mdev.is_dir()
        assert int((mtty1 / "available_instances").read_text()) == before - 1
        group = os.path.basename(os.readlink(mdev / "iommu_group"))
        assert Path(f"/dev/vfio/{group}").is_char_device()
    finally:
        if mdev.exists():
            guest.write_sysfs(mdev / "remove", "1")
    assert not mdev.exists()
    assert int((mtty1 / "available_instances").read_text()) == before


def test_edu_binds_to_vfio_pci_via_driver_override_and_back(guest_vfio):
    original = guest.driver_of(guest.EDU)
    group = guest.iommu_group_of(guest.EDU)
    try:
        guest.bind_override(guest.EDU, "vfio-pci")
        assert guest.driver_of(guest.EDU) == "vfio-pci"
        assert (guest.PCI_DEVICES / guest.EDU / "driver_override").read_text().strip() == "vfio-pci"
        assert Path(f"/dev/vfio/{group}").is_char_device()
    finally:
        if guest.driver_of(guest.EDU) is not None:
            guest.write_sysfs(guest.PCI_DRIVERS / guest.driver_of(guest.EDU) / "unbind", guest.EDU)
        guest.write_sysfs(guest.PCI_DEVICES / guest.EDU / "driver_override", "\n")
        guest.write_sysfs(Path("/sys/bus/pci/drivers_probe"), guest.EDU)
    assert guest.driver_of(guest.EDU) == original
    assert (guest.PCI_DEVICES / guest.EDU / "driver_override").read_text().strip() == "(null)"
    assert not Path(f"/dev/vfio/{group}").exists()


def test_libvirtd_sees_edu_with_its_iommu_group(libvirtd):
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open(libvirtd)
    try:
        assert conn.getType() == "QEMU"
        xml = conn.nodeDeviceLookupByName("pci_0000_00_10_0").XMLDesc(0)
    finally:
        conn.close()
    assert f"<iommuGroup number='{guest.iommu_group_of(guest.EDU)}'" in xml
    assert "<vendor id='0x1234'" in xml
