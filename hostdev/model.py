"""Immutable value types shared by every layer. No I/O here.

They are NamedTuples, not dataclasses: creating a dataclass costs ~2 ms at import, and these
are imported by every command (docs/benchmarks.md: start-up is the cost on small hosts).

JSON shapes (``to_dict``) are a documented contract: docs/json.md.
"""


import re
from typing import NamedTuple, Optional, Tuple

from .errors import InvalidAddressError

# sysfs writes the domain as at least four hex digits, but Intel VMD puts devices in domains
# such as 10000 (drivers/pci/controller/vmd.c), so allow up to eight.
_ADDRESS_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<slot>[0-9a-fA-F]{2})\.(?P<function>[0-7])$"
)


class PciAddress(NamedTuple):
    """A PCI function address. ``str()`` gives the sysfs form, ``0000:65:00.0``."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> "PciAddress":
        """Parse ``DDDD:BB:SS.F`` or ``BB:SS.F`` (any case). Raises InvalidAddressError."""
        match = _ADDRESS_RE.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise InvalidAddressError(text)
        slot = int(match["slot"], 16)
        if slot > 0x1F:
            raise InvalidAddressError(text)
        return cls(int(match["domain"] or "0", 16), int(match["bus"], 16), slot, int(match["function"]))

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def slot_address(self) -> str:
        """The address without the function: devices sharing it are functions of one card."""
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}"


class Sriov(NamedTuple):
    """SR-IOV role: a PF with its VF counts, or a VF with its PF."""

    role: str  # "pf" | "vf"
    total_vfs: Optional[int] = None
    num_vfs: Optional[int] = None
    physfn: Optional[str] = None

    def to_dict(self) -> dict:
        if self.role == "pf":
            return {"role": "pf", "total_vfs": self.total_vfs, "num_vfs": self.num_vfs}
        return {"role": "vf", "physfn": self.physfn}


class PciDevice(NamedTuple):
    """One PCI function as sysfs shows it. IDs are 4 lower-case hex digits, class_id 6."""

    address: str
    vendor_id: str
    device_id: str
    subsystem_vendor_id: Optional[str]
    subsystem_device_id: Optional[str]
    class_id: str
    driver: Optional[str] = None
    driver_override: Optional[str] = None
    iommu_group: Optional[int] = None
    numa_node: Optional[int] = None
    sriov: Optional[Sriov] = None
    mdev_parent: bool = False
    boot_vga: Optional[bool] = None
    vendor_name: Optional[str] = None
    device_name: Optional[str] = None
    class_name: Optional[str] = None

    @property
    def pci_id(self) -> str:
        """``vvvv:dddd``, the form lspci -n and KubeVirt's pciVendorSelector use (case aside)."""
        return f"{self.vendor_id}:{self.device_id}"

    @property
    def base_class(self) -> int:
        return int(self.class_id[:2], 16)

    @property
    def is_bridge(self) -> bool:
        # Class 06 (bridge) functions: host bridges, PCIe root/downstream ports, PCI bridges.
        # They may stay on their host driver (pcieport) inside an assigned group.
        return self.class_id[:2] == "06"

    def to_dict(self) -> dict:
        return {
            "address": self.address,
            "vendor_id": self.vendor_id,
            "device_id": self.device_id,
            "subsystem_vendor_id": self.subsystem_vendor_id,
            "subsystem_device_id": self.subsystem_device_id,
            "class_id": self.class_id,
            "class_name": self.class_name,
            "vendor_name": self.vendor_name,
            "device_name": self.device_name,
            "driver": self.driver,
            "driver_override": self.driver_override,
            "iommu_group": self.iommu_group,
            "numa_node": self.numa_node,
            "sriov": self.sriov.to_dict() if self.sriov else None,
            "mdev_parent": self.mdev_parent,
            "boot_vga": self.boot_vga,
        }


class IommuGroup(NamedTuple):
    id: int
    devices: Tuple[str, ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "devices": list(self.devices)}


PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


class Check(NamedTuple):
    """One readiness check: an id, a status (pass|warn|fail|skip), and the fix when not pass."""

    id: str
    status: str
    summary: str
    detail: str = ""
    fix: Optional[str] = None

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "summary": self.summary, "detail": self.detail,
                "fix": self.fix}


class CheckReport(NamedTuple):
    checks: Tuple[Check, ...] = ()

    @property
    def ready(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    def to_dict(self) -> dict:
        return {"ready": self.ready, "checks": [c.to_dict() for c in self.checks]}


class MdevType(NamedTuple):
    """A mediated-device type a parent offers (``mdev_supported_types/ID``)."""

    parent: str
    id: str                      # directory name, e.g. nvidia-226, mtty-1
    name: Optional[str]          # the ``name`` file; Intel GVT-g types have none
    available_instances: Optional[int]
    device_api: Optional[str]
    description: Optional[str]

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "available_instances": self.available_instances,
                "device_api": self.device_api, "description": self.description}


class Mdev(NamedTuple):
    uuid: str
    parent: str
    type_id: Optional[str]
    type_name: Optional[str]
    iommu_group: Optional[int]
    driver: Optional[str]

    def to_dict(self) -> dict:
        return {"uuid": self.uuid, "parent": self.parent, "type_id": self.type_id, "type_name": self.type_name,
                "iommu_group": self.iommu_group, "driver": self.driver}
