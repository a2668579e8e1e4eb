"""PCI discovery: the devices and IOMMU groups sysfs shows, as model objects.

Reads only small attributes (never ``config``: on real hardware a config read is trapped by
the hypervisor or the device and costs ~250 µs, which lspci pays and we do not).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

from .errors import DeviceNotFoundError, UsageError
from .host import Host
from .model import IommuGroup, PciAddress, PciDevice, Sriov
from .pciids import PciIds

# include/linux/ioport.h resource flags, as the ``resource`` file's third column shows them
IORESOURCE_IO = 0x100
IORESOURCE_MEM = 0x200
IORESOURCE_PREFETCH = 0x2000
IORESOURCE_MEM_64 = 0x100000
IORESOURCE_DISABLED = 0x10000000
IORESOURCE_UNSET = 0x20000000
ROM_INDEX = 6           # resource line 6 is the expansion ROM (include/linux/pci.h PCI_ROM_RESOURCE)


class Bar(NamedTuple):
    """One resource of a PCI function: ``index`` 0-5 a BAR, 6 the ROM. Addresses inclusive."""

    index: int
    start: int
    end: int
    flags: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1 if self.end or self.start else 0

    @property
    def is_io(self) -> bool:
        return bool(self.flags & IORESOURCE_IO)

    @property
    def is_64(self) -> bool:
        return bool(self.flags & IORESOURCE_MEM_64)

    @property
    def prefetchable(self) -> bool:
        return bool(self.flags & IORESOURCE_PREFETCH)

    @property
    def assigned(self) -> bool:
        """The kernel gave it an address (an unassigned BAR shows start 0 or IORESOURCE_UNSET)."""
        return self.start != 0 and not self.flags & (IORESOURCE_UNSET | IORESOURCE_DISABLED)

    def describe(self) -> str:
        kind = "I/O" if self.is_io else ("64-bit" if self.is_64 else "32-bit") + (
            " prefetchable" if self.prefetchable else " non-prefetchable")
        name = "ROM" if self.index == ROM_INDEX else f"BAR{self.index}"
        return f"{name} {format_size(self.size)} {kind}"

    def to_dict(self) -> dict:
        return {"index": self.index, "start": f"0x{self.start:x}", "end": f"0x{self.end:x}",
                "size": self.size, "flags": f"0x{self.flags:x}", "io": self.is_io, "is_64bit": self.is_64,
                "prefetchable": self.prefetchable}


def parse_resource(text: str) -> List[Bar]:
    """Every non-empty line of a sysfs ``resource`` file (``0xSTART 0xEND 0xFLAGS``, one per
    resource; drivers/pci/pci-sysfs.c resource_show) as Bars, empty resources left out."""
    bars = []
    for index, line in enumerate(text.splitlines()):
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            start, end, flags = (int(p, 16) for p in parts[:3])
        except ValueError:
            continue
        bar = Bar(index, start, end, flags)
        if bar.size and flags:
            bars.append(bar)
    return bars


def format_size(size: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GiB"
    return f"{size} B"

PCI_DEVICES = "/sys/bus/pci/devices"
IOMMU_GROUPS = "/sys/kernel/iommu_groups"

# The listing reads ``uevent`` for the IDs and class (one read instead of five: the kernel
# prints PCI_CLASS, PCI_ID and PCI_SUBSYS_ID from its cached copy, drivers/pci/pci-driver.c
# pci_uevent), falling back to the single attributes for trees that lack it.
_ATTRS = ("uevent", "driver_override", "numa_node")
_ID_ATTRS = ("vendor", "device", "subsystem_vendor", "subsystem_device", "class")
# The driver is uevent's DRIVER= line (the driver core prints dev->driver->name, the same name
# the ``driver`` link has: drivers/base/core.c dev_uevent); the link is read only without uevent.
_LINKS = ("iommu_group", "physfn")
# sriov_totalvfs is read only where it is there (a PF): a probe that finds nothing costs a third
# of a failed open (docs/benchmarks.md)
_ENTRIES = ("mdev_supported_types", "sriov_totalvfs")
# read where _ENTRIES shows sriov_totalvfs (a PF), or the class is VGA
_SOME_ATTRS = ("sriov_totalvfs", "sriov_numvfs", "boot_vga")
_SYSFS_NAME = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]\Z")

# --class names → class-code prefixes (PCI Code and Assignment Specification).
CLASS_ALIASES: Dict[str, tuple] = {
    "gpu": ("03",),            # display controllers: VGA 0300, XGA 0301, 3D 0302
    "net": ("02",),            # network controllers
    "storage": ("01",),        # mass storage: NVMe 0108, SATA 0106, RAID 0104 …
    "accel": ("12", "0b40"),   # processing accelerators; co-processors (Intel QAT is 0b4000)
    "usb": ("0c03",),          # USB controllers
}


def _hex4(text: Optional[str]) -> Optional[str]:
    """``0x10de`` → ``10de``; None for missing or malformed values."""
    if not text:
        return None
    known = _HEX4.get(text)
    if known is not None:
        return known
    if len(text) == 4:  # the common case (uevent's 10DE): no int round trip
        lower = text.lower()
        if not lower.strip("0123456789abcdef"):
            _HEX4[text] = lower
            return lower
    try:
        return f"{int(text, 16):04x}"
    except ValueError:
        return None


_HEX4: Dict[str, str] = {}  # _hex4's answers for four-digit IDs (a listing sees few distinct ones)


def int_or_none(text: Optional[str]) -> Optional[int]:
    """A sysfs integer attribute, or None when missing or not a number."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _ids_from_uevent(text: Optional[str]) -> Optional[tuple]:
    """(vendor, device, subsystem vendor, subsystem device, class as 6 hex digits, driver) from a
    PCI uevent (``PCI_ID=10DE:1EB8`` …), IDs as written there; None without PCI_ID and PCI_CLASS."""
    if not text:
        return None
    fields = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals:
            fields[key] = value
    try:
        vendor, device = fields["PCI_ID"].split(":")
        class_id = f"{int(fields['PCI_CLASS'], 16):06x}"
    except (KeyError, ValueError):
        return None
    sub_vendor, _, sub_device = fields.get("PCI_SUBSYS_ID", "").partition(":")
    return vendor, device, sub_vendor or None, sub_device or None, class_id, fields.get("DRIVER") or None


def _ids_from_attributes(host: Host, base: str) -> tuple:
    """_ids_from_uevent's tuple from the single attributes and the driver link (a tree without
    uevent: older recordings)."""
    ids, _, _ = host.scan_attrs(base, _ID_ATTRS)
    class_text = ids["class"]
    try:
        class_id = f"{int(class_text, 16):06x}" if class_text else "000000"
    except ValueError:
        class_id = "000000"
    return (ids["vendor"], ids["device"], ids["subsystem_vendor"], ids["subsystem_device"], class_id,
            host.link_name(f"{base}/driver"))


def read_device(host: Host, address: str, names: Optional[PciIds] = None) -> Optional[PciDevice]:
    """One function from ``/sys/bus/pci/devices/ADDR``, or None when it is not there.
    With ``names``, the vendor/device/class names are filled in."""
    return _read_devices(host, (address,), names)[0]


def _read_devices(host: Host, addresses: Sequence[str], names: Optional[PciIds]) -> List[Optional[PciDevice]]:
    """read_device of each address, in one scan (Host.scan_dirs)."""
    bases = [f"{PCI_DEVICES}/{address}" for address in addresses]
    rows = host.scan_dirs(bases, _ATTRS, _LINKS, _ENTRIES)
    return [_device(host, address, base, row, names) for address, base, row in zip(addresses, bases, rows)]


def _device(host: Host, address: str, base: str, row: Optional[list], names: Optional[PciIds]) -> Optional[PciDevice]:
    """The function at ``base`` from its scan_dirs row (_ATTRS, _LINKS, _ENTRIES in order)."""
    if row is None:
        return None  # not there
    uevent, override, numa_text, group_text, physfn, mdev_parent, has_total_vfs = row
    vendor_text, device_text, sub_vendor, sub_device, class_id, driver = (
        _ids_from_uevent(uevent) or _ids_from_attributes(host, base))
    vendor = _hex4(vendor_text)
    if vendor is None:
        return None
    device_id = _hex4(device_text) or "0000"
    numa = int_or_none(numa_text)
    # boot_vga exists only for VGA-class devices (drivers/pci/pci-sysfs.c pci_dev_attrs_are_visible)
    vga = class_id.startswith("0300")
    total_vfs = num_vfs = boot_vga = None
    if has_total_vfs or vga:  # what only some functions have: one more scan of the directory
        total_vfs, num_vfs, boot_vga = host.scan_dirs((base,), _SOME_ATTRS)[0] or (None, None, None)
    sriov = None
    if physfn:
        sriov = Sriov("vf", None, None, physfn)
    elif total_vfs is not None:
        sriov = Sriov("pf", int_or_none(total_vfs), int_or_none(num_vfs))
    if not vga:
        boot_vga = None  # a tree's boot_vga where the kernel shows none
    vendor_name, device_name, class_name = names.names(vendor, device_id, class_id) if names else _NO_NAMES
    # positional, in PciDevice's field order (a keyword call costs twice as much: 4,096 of them a listing)
    return PciDevice(
        address,
        vendor,
        device_id,
        _hex4(sub_vendor),
        _hex4(sub_device),
        class_id,
        driver,
        # driver_override: the kernel shows an unset override as "(null)" (drivers/pci/pci-sysfs.c)
        None if override in (None, "", "(null)") else override,
        int_or_none(group_text),  # iommu_group
        numa if numa is not None and numa >= 0 else None,  # numa_node
        sriov,
        mdev_parent,
        None if boot_vga is None else boot_vga == "1",
        vendor_name,
        device_name,
        class_name,
    )


_NO_NAMES = (None, None, None)


def list_addresses(host: Host) -> List[str]:
    """Every PCI function address, sorted as lspci -D sorts them."""
    valid = []
    for name in host.listdir(PCI_DEVICES):
        if _SYSFS_NAME.match(name):  # the kernel's own form: no parsing, no object
            valid.append(name)
            continue
        try:
            valid.append(str(PciAddress.parse(name)))
        except UsageError:
            continue
    # every field is fixed-width lower-case hex except the domain (4 to 8 digits), so
    # (length, text) is numeric order: by text, then (a stable sort) by length
    valid.sort()
    valid.sort(key=len)
    return valid


def list_devices(host: Host, names: Optional[PciIds] = None) -> List[PciDevice]:
    """All functions, with names filled in from ``names`` when given."""
    with host.links_unchanged():  # a read-only scan: the shared link prefixes are read once
        devices = _read_devices(host, list_addresses(host), names)
    return [device for device in devices if device is not None]


def get_device(host: Host, address: str, names: Optional[PciIds] = None) -> PciDevice:
    """One device by a user-given address. Raises InvalidAddressError, DeviceNotFoundError."""
    canonical = str(PciAddress.parse(address))
    device = read_device(host, canonical, names)
    if device is None:
        raise DeviceNotFoundError(canonical)
    return device


class DeviceFilter(NamedTuple):
    """The --vendor/--device/--class/--driver/--iommu-group filters; None matches anything."""

    vendor: Optional[str] = None
    device: Optional[str] = None
    class_prefixes: Optional[tuple] = None
    driver: Optional[str] = None
    iommu_group: Optional[int] = None

    @classmethod
    def parse(cls, vendor: Optional[str] = None, device: Optional[str] = None,
              class_: Optional[str] = None, driver: Optional[str] = None,
              iommu_group: Optional[int] = None, names: Optional[PciIds] = None) -> DeviceFilter:
        """Validate user input (a vendor by name through ``names``: parse_vendor). Raises
        UsageError naming the accepted forms."""
        return cls(
            vendor=parse_vendor(vendor, names) if vendor else None,
            device=parse_pci_id(device) if device else None,
            class_prefixes=parse_class(class_) if class_ else None,
            driver=driver,
            iommu_group=iommu_group,
        )

    def matches(self, dev: PciDevice) -> bool:
        if self.vendor and dev.vendor_id != self.vendor:
            return False
        if self.device and dev.pci_id != self.device:
            return False
        if self.class_prefixes and not dev.class_id.startswith(self.class_prefixes):
            return False
        if self.driver is not None and (dev.driver or "none") != self.driver:
            return False
        if self.iommu_group is not None and dev.iommu_group != self.iommu_group:
            return False
        return True


def _strip_0x(text: str) -> str:
    text = text.strip().lower()
    return text[2:] if text.startswith("0x") else text


def parse_vendor_id(text: str) -> str:
    value = _strip_0x(text)
    if len(value) != 4 or any(c not in "0123456789abcdef" for c in value):
        raise UsageError(f"invalid vendor ID {text!r}", fix="use 4 hex digits, e.g. --vendor 10de")
    return value


def parse_vendor(text: str, names: Optional[PciIds] = None) -> str:
    """--vendor: a vendor ID (``10de``, ``0x10DE``) or a vendor's name in ``names`` (pci.ids),
    case-insensitive: ``nvidia``, ``NVIDIA Corporation``, ``mellanox`` (pciids.vendor_ids_named).
    Raises UsageError for a name no vendor or several vendors have (naming the candidates)."""
    value = _strip_0x(text)
    if len(value) == 4 and all(c in "0123456789abcdef" for c in value):
        return value
    from .pciids import vendor_ids_named

    if names is None or names.path is None:
        raise UsageError(f"invalid vendor ID {text!r}: vendor names need a pci.ids and none was found",
                         fix="use 4 hex digits, e.g. --vendor 10de, or pass --pci-ids FILE")
    found = vendor_ids_named(names, text)
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise UsageError(f"no vendor named {text!r} in {names.path}",
                         fix="use 4 hex digits, e.g. --vendor 10de ('hostdev devices' shows the IDs)")
    shown = "; ".join(f"{i} {n}" for i, n in found[:8]) + (f"; and {len(found) - 8} more" if len(found) > 8 else "")
    raise UsageError(f"--vendor {text!r} names {len(found)} vendors in {names.path}: {shown}",
                     fix="give the vendor ID or a longer name")


def parse_selector(device_ids: Iterable[str] = (), vendor: Optional[str] = None, class_: Optional[str] = None,
                   names: Optional[PciIds] = None):
    """--device/--vendor/--class as the rules.Selector that selects them (a vendor by name
    through ``names``). Raises UsageError."""
    from .rules import Selector

    return Selector(tuple(sorted({parse_pci_id(i) for i in device_ids})),
                    parse_vendor(vendor, names) if vendor else None,
                    parse_class(class_) if class_ else None)


def parse_pci_id(text: str) -> str:
    """``10DE:1EB8`` → ``10de:1eb8``. Raises UsageError."""
    parts = text.split(":")
    if len(parts) != 2:
        raise UsageError(f"invalid device ID {text!r}", fix="use VENDOR:DEVICE in hex, e.g. --device 10de:1eb8")
    try:
        return f"{parse_vendor_id(parts[0])}:{parse_vendor_id(parts[1])}"
    except UsageError:
        raise UsageError(f"invalid device ID {text!r}",
                         fix="use VENDOR:DEVICE in hex, e.g. --device 10de:1eb8") from None


def parse_class(text: str) -> tuple:
    """``gpu`` or a hex class prefix (``03``, ``0302``, ``030200``). Raises UsageError."""
    key = text.strip().lower()
    if key in CLASS_ALIASES:
        return CLASS_ALIASES[key]
    value = _strip_0x(key)
    if value and len(value) in (2, 4, 6) and all(c in "0123456789abcdef" for c in value):
        return (value,)
    raise UsageError(f"invalid class {text!r}",
                     fix=f"use one of {', '.join(CLASS_ALIASES)} or a hex class code such as 0302")


def iommu_groups(host: Host) -> List[IommuGroup]:
    """Every IOMMU group with its member addresses, in numeric order."""
    groups = []
    for name in host.listdir(IOMMU_GROUPS):
        if not name.isdigit():
            continue
        members = host.listdir(f"{IOMMU_GROUPS}/{name}/devices")
        groups.append(IommuGroup(int(name), tuple(_sort_members(members))))
    return sorted(groups, key=lambda g: g.id)


def _sort_members(members: Iterable[str]) -> List[str]:
    def key(name: str):
        try:
            return (0, PciAddress.parse(name), name)
        except UsageError:  # mdev UUIDs and other non-PCI members sort after functions
            return (1, PciAddress(0, 0, 0, 0), name)
    return sorted(members, key=key)


def device_extras(host: Host, address: str) -> dict:
    """What ``devices show`` adds to the listing: reset method, modalias, mdev types present."""
    base = f"{PCI_DEVICES}/{address}"
    return {
        "reset_method": host.read_attr(f"{base}/reset_method"),
        "modalias": host.read_attr(f"{base}/modalias"),
        "mdev_types": host.listdir(f"{base}/mdev_supported_types"),
    }


def iommu_active(host: Host) -> bool:
    """Whether the kernel made IOMMU groups (the IOMMU is on and translating)."""
    return any(name.isdigit() for name in host.listdir(IOMMU_GROUPS))


def group_members(host: Host, group: int) -> List[str]:
    return _sort_members(host.listdir(f"{IOMMU_GROUPS}/{group}/devices"))
