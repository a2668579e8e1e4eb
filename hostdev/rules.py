"""The VFIO rules, written once: what a vfio driver is, which functions may be bound, what a
selector selects, and when an IOMMU group is viable. Pure: facts in, answers out; no I/O.

Every command asks these functions (bind, unbind, sriov, check, kubevirt permitted, vm test), so
a rule fixed here is fixed everywhere. A "function" is anything with ``address``, ``driver`` and
``class_id`` (a model.PciDevice, or a ``Function`` built from an inventory's JSON).
"""

from __future__ import annotations

from typing import Collection, Iterable, List, NamedTuple, Optional, Tuple

from .model import PciAddress

VFIO = "vfio-pci"
# Drivers that leave an IOMMU group viable for VFIO besides the vfio drivers themselves: they set
# driver_managed_dma, so binding them does not claim the group's DMA ownership (kernel 5.19+,
# drivers/pci/pci-stub.c and drivers/pci/pcie/portdrv.c; before 5.19 vfio's own allow-list in
# drivers/vfio/vfio.c vfio_dev_driver_allowed named pci-stub, and bridges were exempt).
GROUP_SAFE_DRIVERS = ("pci-stub", "pcieport")

# Class codes of the bridges that make up the host's own buses: host bridge 0600, ISA bridge 0601
# (the LPC bridge: keyboard controller, TPM, RTC), PCI-to-PCI bridge 0604 (root ports, switch
# ports), CardBus 0607, semi-transparent PCI-to-PCI 0609 (PCI Code and Assignment Specification).
# vfio-pci refuses type 1 and 2 headers anyway (drivers/vfio/pci/vfio_pci.c vfio_pci_probe:
# hdr_type != PCI_HEADER_TYPE_NORMAL → -EINVAL). "Other bridge" 0680 is not among them: NVSwitch
# is one, and NVIDIA's full-passthrough model gives it to a VM by address.
HOST_BRIDGE_CLASSES = ("0600", "0601", "0604", "0607", "0609")


class Function(NamedTuple):
    """The facts the rules need about one PCI function (for callers without a PciDevice)."""

    address: str
    driver: Optional[str]
    class_id: str
    vendor_id: str = ""
    device_id: str = ""
    iommu_group: Optional[int] = None


def is_vfio_driver(driver: Optional[str]) -> bool:
    """vfio-pci, or a vfio variant driver (nvgrace_gpu_vfio_pci, mlx5_vfio_pci …)."""
    return bool(driver) and (driver == VFIO or "vfio" in driver)


def is_bridge(class_id: str) -> bool:
    """Class 06: any bridge (host, ISA, PCI-to-PCI, root and switch ports, other)."""
    return class_id[:2] == "06"


class Unbindable(NamedTuple):
    """Why a function may never be bound: ``kind`` is "bridge" or "no_iommu_group"."""

    kind: str
    message: str


def unbindable(dev, iommu_active: bool) -> Optional[Unbindable]:
    """Why ``dev`` may never be taken from its driver by hostdev (None when it may): a bridge of
    the host's own buses, or a function without an IOMMU group on a host whose IOMMU is on (the
    IOMMU does not translate it: vfio-pci's probe fails in vfio_pci_core_register_device)."""
    if dev.class_id[:4] in HOST_BRIDGE_CLASSES:
        return Unbindable("bridge", f"{dev.address} is a {_bridge_kind(dev.class_id)} (class {dev.class_id}): "
                                    "bridges carry the host's own buses and are never assigned to VMs")
    if iommu_active and dev.iommu_group is None:
        return Unbindable("no_iommu_group", f"{dev.address} has no IOMMU group although the IOMMU is on: the IOMMU "
                                            "does not translate it, so vfio cannot take it")
    return None


def _bridge_kind(class_id: str) -> str:
    return {"0600": "host bridge", "0601": "ISA bridge", "0604": "PCI bridge or PCIe port",
            "0607": "CardBus bridge", "0609": "PCI bridge"}.get(class_id[:4], "bridge")


class Selector(NamedTuple):
    """--device/--vendor/--class as a set of functions: every function that matches all of the
    given parts. Values are already parsed (lower-case hex; class prefixes as pci.parse_class
    gives them). A selector never selects a bridge: --vendor 8086 means the Intel devices, not
    the host bridge and root ports they sit behind."""

    device_ids: Tuple[str, ...] = ()       # "10de:1eb8"
    vendor: Optional[str] = None
    class_prefixes: Optional[tuple] = None

    @property
    def empty(self) -> bool:
        return not (self.device_ids or self.vendor or self.class_prefixes)

    def selects(self, dev) -> bool:
        if self.empty or is_bridge(dev.class_id):
            return False
        if self.device_ids and f"{dev.vendor_id}:{dev.device_id}" not in self.device_ids:
            return False
        if self.vendor and dev.vendor_id != self.vendor:
            return False
        if self.class_prefixes and not dev.class_id.startswith(self.class_prefixes):
            return False
        return True


def same_card(dev, members: Iterable) -> List:
    """The other functions of ``dev``'s card among its group's ``members`` (same bus and slot,
    not bridges): they go to a VM together, so binding one binds them all."""
    slot = PciAddress.parse(dev.address).slot_address
    return [m for m in members if m.address != dev.address and not is_bridge(m.class_id)
            and PciAddress.parse(m.address).slot_address == slot]


def blocks_group(driver: Optional[str]) -> bool:
    """True when a group member on ``driver`` keeps the group from being viable for VFIO: it is
    bound to a host driver that owns its DMA (no driver, a vfio driver, pci-stub and pcieport
    do not)."""
    return bool(driver) and not is_vfio_driver(driver) and driver not in GROUP_SAFE_DRIVERS


def group_blockers(members: Iterable, assigned: Collection[str] = ()) -> List:
    """The members of one IOMMU group that keep it from being viable once the functions named in
    ``assigned`` are on vfio: every other member bound to a driver that owns its DMA. Bridges
    count like any function (the kernel checks every device of the group). Empty: viable."""
    return [m for m in members if m.address not in assigned and blocks_group(m.driver)]


def viable(members: Iterable, assigned: Collection[str] = ()) -> bool:
    """Whether the group of ``members`` is viable for VFIO with ``assigned`` on vfio."""
    return not group_blockers(members, assigned)
