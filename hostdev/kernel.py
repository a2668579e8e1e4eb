"""Facts about the running kernel and CPU, read as evidence: command line, modules, IOMMU.

Pure parsing functions take text; the ``read_*``/``*_state`` functions take a Host.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .host import Host

CMDLINE = "/proc/cmdline"
OSRELEASE = "/proc/sys/kernel/osrelease"

# Module states, in the order a check prefers them.
LOADED, BUILTIN, AVAILABLE, MISSING = "loaded", "builtin", "available", "missing"


def split_cmdline(text: str) -> List[str]:
    """Split a kernel command line as the kernel does: on whitespace, double quotes group.

    (lib/cmdline.c next_arg: quotes may surround the whole parameter or its value.)
    Everything after a bare ``--`` goes to init and is dropped.
    """
    args: List[str] = []
    current: List[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char.isspace() and not quoted:
            if current:
                args.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        args.append("".join(current))
    if "--" in args:
        args = args[: args.index("--")]
    return args


def arg_key(arg: str) -> str:
    """The parameter name of ``name=value``; the kernel treats ``-`` and ``_`` alike in names."""
    return arg.split("=", 1)[0].strip('"').replace("-", "_")


def arg_value(args: List[str], key: str) -> Optional[str]:
    """The value of the LAST occurrence of ``key`` (the kernel's last-wins rule), '' for a flag."""
    wanted = key.replace("-", "_")
    value = None
    for arg in args:
        if arg_key(arg) == wanted:
            value = arg.split("=", 1)[1].strip('"') if "=" in arg else ""
    return value


def read_cmdline(host: Host) -> List[str]:
    return split_cmdline(host.read_text(CMDLINE) or "")


def kernel_release(host: Host) -> Optional[str]:
    return host.read_attr(OSRELEASE)


@dataclass(frozen=True)
class CpuInfo:
    vendor: Optional[str]          # "intel" | "amd" | other vendor_id | None
    flags: Tuple[str, ...]

    @property
    def virtualization(self) -> Optional[str]:
        return "vmx" if "vmx" in self.flags else "svm" if "svm" in self.flags else None

    @property
    def is_guest(self) -> bool:
        # CPUID leaf 1 ECX bit 31, which every hypervisor sets and Linux shows as "hypervisor"
        return "hypervisor" in self.flags


def parse_cpuinfo(text: str) -> CpuInfo:
    vendor = None
    flags: Tuple[str, ...] = ()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and vendor is None:
            raw = value.strip()
            vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "amd"}.get(raw, raw or None)
        elif key == "flags" and not flags:
            flags = tuple(value.split())
        if vendor and flags:
            break
    return CpuInfo(vendor, flags)


def read_cpuinfo(host: Host) -> CpuInfo:
    return parse_cpuinfo(host.read_text("/proc/cpuinfo") or "")


def _module_names(listing: str) -> set:
    """Module names from modules.dep / modules.builtin lines (``kernel/…/vfio-pci.ko.xz:`` …)."""
    names = set()
    for line in listing.splitlines():
        path = line.split(":", 1)[0].strip()
        if not path:
            continue
        base = path.rsplit("/", 1)[-1]
        name = base.split(".ko", 1)[0]
        names.add(name.replace("-", "_"))
    return names


@dataclass(frozen=True)
class ModuleIndex:
    release: Optional[str]
    builtin: frozenset
    available: frozenset
    has_tree: bool  # /lib/modules/<release> exists


def read_module_index(host: Host) -> ModuleIndex:
    release = kernel_release(host)
    if not release:
        return ModuleIndex(None, frozenset(), frozenset(), False)
    base = f"/lib/modules/{release}"
    builtin = host.read_text(f"{base}/modules.builtin") or ""
    dep = host.read_text(f"{base}/modules.dep") or ""
    return ModuleIndex(release, frozenset(_module_names(builtin)), frozenset(_module_names(dep)),
                       host.is_dir(base))


def module_state(host: Host, name: str, index: Optional[ModuleIndex] = None) -> str:
    """loaded | builtin | available | missing for module ``name`` (``vfio-pci`` or ``vfio_pci``).

    A loaded module has /sys/module/NAME/initstate; a built-in one may have /sys/module/NAME
    (when it has parameters) but never initstate (kernel/module/sysfs.c).
    """
    key = name.replace("-", "_")
    index = index or read_module_index(host)
    if host.exists(f"/sys/module/{key}/initstate"):
        return LOADED
    if key in index.builtin:
        return BUILTIN
    if key in index.available:
        return AVAILABLE
    return MISSING


def kernel_config(host: Host) -> Dict[str, str]:
    """The running kernel's build config (/boot/config-REL or /proc/config.gz); {} if unknown."""
    release = kernel_release(host)
    text = host.read_text(f"/boot/config-{release}") if release else None
    if text is None:
        raw = host.read_bytes("/proc/config.gz")
        if raw:
            try:
                text = gzip.decompress(raw).decode("utf-8", "replace")
            except (OSError, EOFError):
                text = None
    config: Dict[str, str] = {}
    for line in (text or "").splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            config[key] = value
    return config


def intel_iommu_default_on(config: Dict[str, str]) -> Optional[str]:
    """The build option that turns VT-d on without ``intel_iommu=on``, or None when the kernel
    needs the argument: CONFIG_INTEL_IOMMU_DEFAULT_ON=y, or Debian's
    CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y (on, except for integrated GPUs: Debian's patch
    "intel-iommu: Add Kconfig option to exclude iGPU by default", bug #935270; set in Debian 12's
    kernels, whose IOMMU groups exist without any argument)."""
    for option in ("CONFIG_INTEL_IOMMU_DEFAULT_ON", "CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF"):
        if config.get(option) == "y":
            return option
    return None


@dataclass(frozen=True)
class IommuFacts:
    """What the platform and kernel show about the IOMMU."""

    acpi_table: Optional[str]        # "DMAR" (Intel VT-d), "IVRS" (AMD-Vi) or None
    units: Tuple[str, ...]           # /sys/class/iommu entries (dmar0, ivhd0 …)
    group_count: int
    interrupt_remapping: Optional[bool]  # None: cannot tell from what is readable

    @property
    def active(self) -> bool:
        return self.group_count > 0


def iommu_vendor(cpu: CpuInfo, facts: IommuFacts) -> Optional[str]:
    """Whose IOMMU the kernel will drive: "intel" (VT-d, the ACPI DMAR table; intel_iommu=),
    "amd" (AMD-Vi, the IVRS table; amd_iommu=), or None when neither the firmware nor the CPU
    tells. The firmware's table decides: a VM on an AMD host is often given QEMU's intel-iommu,
    whose DMAR table drivers/iommu/intel/dmar.c parses whatever the CPU. Without a table the CPU
    vendor is the best guess (VT-d is off in the firmware setup, or the table is not readable).
    ``check`` and ``iommu enable`` both ask this, so they never disagree about the argument."""
    if facts.acpi_table == "DMAR":
        return "intel"
    if facts.acpi_table == "IVRS":
        return "amd"
    return cpu.vendor if cpu.vendor in ("intel", "amd") else None


def vm_without_viommu(cpu: CpuInfo, facts: IommuFacts) -> bool:
    """A virtual machine (the CPU's ``hypervisor`` flag) whose platform shows no IOMMU at all: no
    DMAR or IVRS ACPI table, no IOMMU unit, no IOMMU group. No kernel argument can make one; a
    virtual IOMMU is added on the hypervisor (QEMU -device intel-iommu / amd-iommu / virtio-iommu).
    A virtio-iommu has no DMAR/IVRS table (it is described by VIOT), so a unit or a group counts."""
    return cpu.is_guest and facts.acpi_table is None and not facts.units and not facts.active


def read_iommu_facts(host: Host) -> IommuFacts:
    table = None
    for name in ("DMAR", "IVRS"):
        if host.exists(f"/sys/firmware/acpi/tables/{name}"):
            table = name
            break
    units = tuple(host.listdir("/sys/class/iommu"))
    groups = sum(1 for n in host.listdir("/sys/kernel/iommu_groups") if n.isdigit())
    return IommuFacts(table, units, groups, _interrupt_remapping(host))


def _interrupt_remapping(host: Host) -> Optional[bool]:
    """True when MSI interrupts go through the remapping unit.

    With remapping on, /proc/interrupts names the chips "IR-PCI-MSI…" (kernel/irq, the
    irq_domain names of drivers/iommu/intel/irq_remapping.c and amd/iommu.c). No MSI line at
    all means we cannot tell.
    """
    text = host.read_text("/proc/interrupts")
    if not text:
        return None
    saw_msi = False
    for line in text.splitlines():
        if "IR-PCI-MSI" in line or "IR-IO-APIC" in line:
            return True
        if "PCI-MSI" in line:
            saw_msi = True
    return False if saw_msi else None
