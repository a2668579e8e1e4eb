"""FakeRoot: a real directory tree in the shape Linux shows under /sys, /proc, /dev, /lib/modules.

Everything is laid out as the kernel lays it out (drivers/base/core.c, drivers/pci/probe.c,
drivers/pci/pci-sysfs.c, drivers/iommu/iommu.c, drivers/vfio/mdev/mdev_sysfs.c): device
directories nest under their parent bridge, and every cross reference is a RELATIVE symlink
(``driver -> ../../../bus/pci/drivers/nvidia``), so ``readlink`` returns what it returns on a
real host and resolving a link never leaves the root (umockdev's ``add_device``, nova's
``HostPCIDevicesInfo``).

The builder is also used by SimKernel to apply a write; both go through the helpers here so
a simulated bind leaves the same tree a hand-built bound device has.
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from hostdev.host import Host

from . import catalog

SYS_DEVICES = "/sys/devices"
PCI_DEVICES = "/sys/bus/pci/devices"
PCI_DRIVERS = "/sys/bus/pci/drivers"
IOMMU_GROUPS = "/sys/kernel/iommu_groups"

# PCIe capability "device/port type" (PCI Express Base Spec, PCI_EXP_FLAGS_TYPE)
PCIE_TYPES = {"endpoint": 0x0, "legacy_endpoint": 0x1, "root_port": 0x4, "upstream": 0x5,
              "downstream": 0x6, "pcie_to_pci": 0x7, "rciep": 0x9}
PCIE_PORT_TYPES = {0x4, 0x5, 0x6}

WRITE_ONLY = 0o200
READ_ONLY = 0o444
READ_WRITE = 0o644
VMX_FLAGS = "vnmi preemption_timer invvpid ept_x_only ept_ad"


def parse_addr(addr: str) -> Tuple[int, int, int, int]:
    """``0000:65:00.0`` → (domain, bus, slot, function)."""
    dom, bus, rest = addr.split(":")
    slot, func = rest.split(".")
    return int(dom, 16), int(bus, 16), int(slot, 16), int(func, 16)


def format_addr(domain: int, bus: int, slot: int, func: int) -> str:
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{func:x}"


@dataclass
class PciSpec:
    """What the builder needs to lay out one PCI function."""

    addr: str
    vendor: int
    device: int
    klass: int
    subsys: Tuple[int, int] = (0, 0)
    revision: int = 0
    parent: Optional[str] = None        # bridge address, None for a root-bus device
    driver: Optional[str] = None
    iommu_group: Optional[int] = None
    numa_node: int = -1
    boot_vga: Optional[bool] = None     # only VGA (0300xx) functions have the attribute
    driver_override: Optional[str] = None
    pcie_type: Optional[str] = "endpoint"   # None: conventional PCI (no PCIe capability)
    multifunction: bool = False
    secondary_bus: Optional[int] = None  # bridges: the bus behind them
    sriov_totalvfs: Optional[int] = None
    sriov_vf_device: Optional[int] = None
    sriov_offset: int = 8
    sriov_stride: int = 1
    reset_method: Optional[str] = "flr bus"
    physfn: Optional[str] = None

    @property
    def is_bridge(self) -> bool:
        return (self.klass >> 8) == 0x0604


@dataclass
class HostInfo:
    """What a scenario returns: the fake root and the addresses tests care about."""

    root: str
    release: str
    addresses: Dict[str, str] = field(default_factory=dict)
    groups: Dict[str, int] = field(default_factory=dict)
    mdevs: Dict[str, str] = field(default_factory=dict)
    extra: Dict[str, object] = field(default_factory=dict)

    def __getattr__(self, name: str):
        # host.t4, host.nvme_root … as attributes
        addresses = self.__dict__.get("addresses", {})
        if name in addresses:
            return addresses[name]
        raise AttributeError(name)


def _le16(value: int) -> bytes:
    return struct.pack("<H", value)


def config_space(spec: PciSpec) -> bytes:
    """A 256-byte type 0/1 configuration header lspci can decode."""
    cfg = bytearray(256)
    cfg[0:2] = _le16(spec.vendor)
    cfg[2:4] = _le16(spec.device)
    cfg[4:6] = _le16(0x0406 if spec.driver else 0x0000)  # memory + bus master when driven
    status = 0x0010 if spec.pcie_type else 0x0000          # capability list present
    cfg[6:8] = _le16(status)
    cfg[8] = spec.revision
    cfg[9] = spec.klass & 0xFF
    cfg[10] = (spec.klass >> 8) & 0xFF
    cfg[11] = (spec.klass >> 16) & 0xFF
    header = 0x01 if spec.is_bridge else 0x00
    cfg[14] = header | (0x80 if spec.multifunction else 0)
    if spec.is_bridge:
        bus = parse_addr(spec.addr)[1]
        sec = spec.secondary_bus if spec.secondary_bus is not None else bus + 1
        cfg[0x18], cfg[0x19], cfg[0x1A] = bus, sec, sec
    else:
        cfg[0x2C:0x2E] = _le16(spec.subsys[0])
        cfg[0x2E:0x30] = _le16(spec.subsys[1])
    cfg[0x3D] = 0x01  # INTA#
    if spec.pcie_type:
        cfg[0x34] = 0x40
        cfg[0x40] = 0x10                 # PCI_CAP_ID_EXP
        cfg[0x41] = 0x00                 # last capability
        cfg[0x42:0x44] = _le16(0x0002 | (PCIE_TYPES[spec.pcie_type] << 4))
    return bytes(cfg)


def pcie_type_of(config: Optional[bytes]) -> Optional[int]:
    """The PCIe device/port type from a config dump, None for conventional PCI or unknown."""
    if not config or len(config) < 64 or not (config[6] & 0x10):
        return None
    ptr = config[0x34] & 0xFC
    seen = 0
    while ptr and ptr + 3 < len(config) and seen < 48:
        if config[ptr] == 0x10:
            return (config[ptr + 2] >> 4) & 0xF
        ptr = config[ptr + 1] & 0xFC
        seen += 1
    return None


def modalias(vendor: int, device: int, subsys: Tuple[int, int], klass: int) -> str:
    # drivers/pci/pci-sysfs.c modalias_show
    return (f"pci:v{vendor:08X}d{device:08X}sv{subsys[0]:08X}sd{subsys[1]:08X}"
            f"bc{(klass >> 16) & 0xFF:02X}sc{(klass >> 8) & 0xFF:02X}i{klass & 0xFF:02X}")


class FakeRoot:
    """A fake machine under ``path``. Host paths (``/sys/...``) are joined under it."""

    def __init__(self, path: str, *, release: str = "6.1.0-56-amd64", create: bool = True) -> None:
        self.root = os.path.abspath(path)
        self.release = release
        if create:
            os.makedirs(self.root, exist_ok=True)
            self._skeleton()

    @classmethod
    def attach(cls, path: str) -> FakeRoot:
        """A FakeRoot over an existing tree (built earlier or recorded), changing nothing."""
        fr = cls(path, create=False)
        fr.release = (fr.read("/proc/sys/kernel/osrelease") or "").strip() or fr.release
        return fr

    # ------------------------------------------------------------ low-level
    def p(self, host_path: str) -> str:
        rel = host_path.lstrip("/")
        if ".." in rel.split("/"):
            raise ValueError(f"'..' in {host_path}")
        return os.path.join(self.root, rel) if rel else self.root

    def exists(self, host_path: str) -> bool:
        return os.path.lexists(self.p(host_path))

    def mkdir(self, host_path: str) -> str:
        os.makedirs(self.p(host_path), exist_ok=True)
        return host_path

    def write(self, host_path: str, text, mode: int = READ_WRITE) -> None:
        real = self.p(host_path)
        data = text if isinstance(text, bytes) else str(text).encode()
        try:
            fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(real), exist_ok=True)
            fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except PermissionError:  # a read-only attribute being rewritten (as root this is rare)
            os.chmod(real, 0o600)
            fd = os.open(real, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def attr(self, host_path: str, value, mode: int = READ_ONLY) -> None:
        """A sysfs attribute: the value and a newline, as show() functions print it."""
        self.write(host_path, f"{value}\n", mode)

    def read(self, host_path: str) -> Optional[str]:
        try:
            with open(self.p(host_path), encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return None

    def symlink(self, link: str, target: str) -> None:
        """``link`` → ``target`` (both host paths), stored relative as sysfs stores it."""
        real_link = self.p(link)
        os.makedirs(os.path.dirname(real_link), exist_ok=True)
        rel = os.path.relpath(target, os.path.dirname(link))
        if os.path.lexists(real_link):
            os.unlink(real_link)
        os.symlink(rel, real_link)

    def unlink(self, host_path: str) -> None:
        real = self.p(host_path)
        if os.path.islink(real) or os.path.isfile(real):
            os.unlink(real)
        elif os.path.isdir(real):
            shutil.rmtree(real)

    def readlink(self, host_path: str) -> Optional[str]:
        try:
            return os.readlink(self.p(host_path))
        except OSError:
            return None

    def resolve(self, host_path: str) -> str:
        """Follow links inside the root: exactly hostdev's own Host.resolve (one implementation)."""
        return Host(self.root).resolve(host_path)

    def _skeleton(self) -> None:
        for d in ("/sys/devices/virtual", "/sys/bus/pci/devices", "/sys/bus/pci/drivers",
                  "/sys/bus/pci/slots", "/sys/kernel", "/sys/class/net", "/sys/class/block",
                  "/sys/block", "/sys/module", "/sys/firmware/acpi/tables", "/proc/sys/kernel",
                  "/proc/net", "/dev", "/etc/modprobe.d", f"/lib/modules/{self.release}"):
            self.mkdir(d)
        for name in ("drivers_probe", "rescan"):
            self.write(f"/sys/bus/pci/{name}", "", WRITE_ONLY)
        self.write("/sys/bus/pci/uevent", "", WRITE_ONLY)
        self.attr("/sys/bus/pci/drivers_autoprobe", 1, READ_WRITE)
        self.attr("/sys/bus/pci/resource_alignment", "", READ_WRITE)
        self.attr("/proc/sys/kernel/osrelease", self.release)
        self.write("/proc/modules", "")
        self.write("/proc/mounts", "")
        self.write("/proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
        self.write("/proc/net/route",
                   "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n")
        self.write("/dev/null", "")
        self.set_cmdline(f"BOOT_IMAGE=/boot/vmlinuz-{self.release} root=/dev/sda1 ro quiet")
        self.attr("/sys/devices/virtual/net/lo/ifindex", 1)
        self.symlink("/sys/class/net/lo", "/sys/devices/virtual/net/lo")

    # ------------------------------------------------------------ kernel / cpu / boot
    def set_cmdline(self, cmdline: str) -> None:
        self.attr("/proc/cmdline", cmdline)

    def set_cpu(self, vendor: str = "intel", *, virt: bool = True, hypervisor: bool = False,
                cpus: int = 2, model: Optional[str] = None) -> None:
        """/proc/cpuinfo with the flags hostdev looks at (vmx/svm, hypervisor)."""
        intel = vendor == "intel"
        flags = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
                 "mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl "
                 "xtopology cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
                 "popcnt aes xsave avx f16c rdrand")
        if hypervisor:
            flags += " hypervisor"
        if virt:
            flags += " vmx ept vpid" if intel else " svm npt"
        flags += " lahf_lm abm" + ("" if intel else " cmp_legacy extapic cr8_legacy")
        model = model or ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz" if intel
                          else "AMD EPYC 7313 16-Core Processor")
        blocks = []
        for n in range(cpus):
            blocks.append(
                f"processor\t: {n}\nvendor_id\t: {'GenuineIntel' if intel else 'AuthenticAMD'}\n"
                f"cpu family\t: {6 if intel else 25}\nmodel\t\t: {106 if intel else 1}\n"
                f"model name\t: {model}\nphysical id\t: 0\nsiblings\t: {cpus}\ncore id\t\t: {n}\n"
                f"cpu cores\t: {cpus}\nflags\t\t: {flags}\n"
                + (f"vmx flags\t: {VMX_FLAGS}\n" if intel else "bugs\t\t: sysret_ss_attrs\n"))
        self.write("/proc/cpuinfo", "\n".join(blocks) + "\n")

    def set_iommu(self, kind: Optional[str], *, unit_device: Optional[str] = None,
                  interrupt_remapping: bool = True) -> None:
        """ACPI table and /sys/class/iommu unit: ``intel`` (DMAR, dmar0), ``amd`` (IVRS, ivhd0).

        Intel's unit is a virtual device (drivers/iommu/intel/dmar.c iommu_device_sysfs_add
        with no parent); AMD's hangs off its PCI function (drivers/iommu/amd/init.c).
        """
        if kind == "intel":
            self.write("/sys/firmware/acpi/tables/DMAR", b"DMAR\x50\x00\x00\x00\x01" + bytes(71), 0o400)
            unit = "/sys/devices/virtual/iommu/dmar0"
            name = "dmar0"
        elif kind == "amd":
            self.write("/sys/firmware/acpi/tables/IVRS", b"IVRS\x50\x00\x00\x00\x02" + bytes(71), 0o400)
            parent = f"{self.device_path(unit_device)}" if unit_device else "/sys/devices/virtual"
            unit = f"{parent}/iommu/ivhd0"
            name = "ivhd0"
        else:
            return
        self.mkdir(f"{unit}/devices")
        self.attr(f"{unit}/uevent", "", READ_WRITE)
        if kind == "intel":
            self.attr(f"{unit}/intel-iommu/version", "1:0")
            self.attr(f"{unit}/intel-iommu/cap", "d2008c40660462")
            self.attr(f"{unit}/intel-iommu/ecap", "f050da")
        else:
            self.attr(f"{unit}/amd-iommu/cap", "0x190b0000")
            self.attr(f"{unit}/amd-iommu/features", "0x2b8058f77ef22294")
        self.symlink(f"/sys/class/iommu/{name}", unit)
        irq = "IR-PCI-MSI" if interrupt_remapping else "PCI-MSI"
        self.write("/proc/interrupts",
                   "            CPU0       CPU1       \n"
                   "   0:         35          0   IO-APIC   2-edge      timer\n"
                   f"  24:          0          0  DMAR-MSI    0-edge      dmar0\n"
                   f"  25:       1520          0  {irq} 524288-edge      nvme0q0\n")

    def set_grub(self, cmdline_linux: str = "", cmdline_default: str = "quiet",
                 dropins: Optional[Dict[str, str]] = None) -> None:
        self.write("/etc/default/grub",
                   "# If you change this file, run 'update-grub' afterwards to update\n"
                   "# /boot/grub/grub.cfg.\n\n"
                   "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n"
                   "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
                   f'GRUB_CMDLINE_LINUX_DEFAULT="{cmdline_default}"\n'
                   f'GRUB_CMDLINE_LINUX="{cmdline_linux}"\n')
        if dropins is not None:
            self.mkdir("/etc/default/grub.d")
            for name, text in dropins.items():
                self.write(f"/etc/default/grub.d/{name}", text)

    def add_tools(self, *names: str) -> None:
        """Executables that exist on the fake host (SimKernel.run refuses the others)."""
        for name in names:
            directory = "/usr/bin" if name in ("mdevctl", "virsh", "lspci") else "/usr/sbin"
            self.write(f"{directory}/{name}", "#!/bin/sh\n# placeholder of the fake root\n", 0o755)

    def set_modules(self, available: Iterable[str], *, builtin: Iterable[str] = (),
                    loaded: Iterable[str] = ()) -> None:
        """/lib/modules/<release>/modules.{dep,alias,softdep,builtin,builtin.modinfo}.

        ``available`` modules are files a ``modprobe`` can load; ``builtin`` ones are in the
        kernel image; ``loaded`` are loaded at boot (and registered as by SimKernel).
        """
        base = f"/lib/modules/{self.release}"
        available = [catalog.normalize(n) for n in available]
        builtin = [catalog.normalize(n) for n in builtin]
        dep_lines, alias_lines, softdep_lines = [], [], []
        for name in available:
            mod = catalog.MODULES[name]
            deps = " ".join(catalog.MODULES[d].path for d in mod.deps)
            dep_lines.append(f"{mod.path}:{' ' + deps if deps else ''}")
            alias_lines.extend(f"alias {a} {name}" for a in _aliases(mod))
            if mod.softdeps_post:
                softdep_lines.append(f"softdep {name} post: {' '.join(mod.softdeps_post)}")
            self.write(f"{base}/{mod.path}", b"\x7fELF", 0o644)
        self.write(f"{base}/modules.dep", "\n".join(dep_lines) + ("\n" if dep_lines else ""))
        self.write(f"{base}/modules.alias",
                   "# Aliases extracted from modules themselves.\n" + "".join(line_ + "\n" for line_ in alias_lines))
        self.write(f"{base}/modules.softdep",
                   "# Soft dependencies extracted from modules themselves.\n"
                   + "".join(line_ + "\n" for line_ in softdep_lines))
        self.write(f"{base}/modules.builtin",
                   "".join(catalog.MODULES[n].path + "\n" for n in builtin))
        modinfo = b""
        for name in builtin:
            for a in _aliases(catalog.MODULES[name]):
                modinfo += f"{name}.alias={a}\0".encode()
        self.write(f"{base}/modules.builtin.modinfo", modinfo)
        for name in builtin:
            self.register_module(name, builtin=True)
        for name in loaded:
            self.register_module(catalog.normalize(name))

    def register_module(self, name: str, *, builtin: bool = False,
                        params: Optional[Dict[str, str]] = None) -> None:
        """What loading ``name`` leaves in sysfs (kernel/module/sysfs.c): /sys/module/NAME with
        initstate (loadable only), parameters/, the PCI driver directory and /proc/modules."""
        mod = catalog.MODULES[name]
        base = f"/sys/module/{name}"
        self.mkdir(base)
        if not builtin:
            self.attr(f"{base}/initstate", "live")
            self.attr(f"{base}/refcnt", 0)
            self.attr(f"{base}/coresize", 16384)
            self.mkdir(f"{base}/holders")
            for dep in mod.deps:
                if self.exists(f"/sys/module/{dep}/holders"):
                    self.symlink(f"/sys/module/{dep}/holders/{name}", base)
            names = [line_.split(" ", 1)[0] for line_ in (self.read("/proc/modules") or "").splitlines()]
            if name not in names:
                names.insert(0, name)
            self._render_proc_modules(names)
        merged = dict(mod.parameters)
        merged.update(params or {})
        for key, value in merged.items():
            self.attr(f"{base}/parameters/{key}", value, 0o644)
        if mod.pci_driver:
            self.add_driver(mod.pci_driver, module=name, builtin=builtin)
        if mod.mdev_driver:
            self.add_bus("mdev")
            self.add_driver(mod.mdev_driver, module=name, builtin=builtin, bus="mdev")
        if name == "vfio":
            self.write("/dev/vfio/vfio", "", 0o666)
        if name == "mdev":
            self.add_bus("mdev")

    def _render_proc_modules(self, names: List[str]) -> None:
        """/proc/modules (kernel/module/procfs.c m_show): name size refcnt used-by state addr;
        used-by lists the holders, each followed by a comma, or "-"."""
        lines = []
        for name in names:
            try:
                holders = sorted(os.listdir(self.p(f"/sys/module/{name}/holders")))
            except OSError:
                holders = []
            used = "".join(h + "," for h in holders) or "-"
            lines.append(f"{name} 16384 {len(holders)} {used} Live 0x0000000000000000\n")
            self.attr(f"/sys/module/{name}/refcnt", len(holders))
        self.write("/proc/modules", "".join(lines))

    def unregister_module(self, name: str) -> None:
        mod = catalog.MODULES[name]
        if mod.pci_driver:
            self.unlink(f"{PCI_DRIVERS}/{mod.pci_driver}")
        if mod.mdev_driver:
            self.unlink(f"/sys/bus/mdev/drivers/{mod.mdev_driver}")
        for dep in mod.deps:
            self.unlink(f"/sys/module/{dep}/holders/{name}")
        self.unlink(f"/sys/module/{name}")
        names = [line_.split(" ", 1)[0] for line_ in (self.read("/proc/modules") or "").splitlines()]
        self._render_proc_modules([n for n in names if n != name])
        if name == "vfio":
            self.unlink("/dev/vfio/vfio")
        if name == "mdev":
            self.unlink("/sys/bus/mdev")
            self.unlink("/sys/class/mdev_bus")

    def add_bus(self, bus: str) -> None:
        if self.exists(f"/sys/bus/{bus}/drivers_probe"):
            return
        self.mkdir(f"/sys/bus/{bus}/devices")
        self.mkdir(f"/sys/bus/{bus}/drivers")
        self.write(f"/sys/bus/{bus}/drivers_probe", "", WRITE_ONLY)
        self.write(f"/sys/bus/{bus}/uevent", "", WRITE_ONLY)
        self.attr(f"/sys/bus/{bus}/drivers_autoprobe", 1, READ_WRITE)

    def add_driver(self, name: str, *, module: Optional[str] = None, builtin: bool = False,
                   bus: str = "pci") -> str:
        """/sys/bus/BUS/drivers/NAME with bind/unbind (and new_id/remove_id on pci)."""
        base = f"/sys/bus/{bus}/drivers/{name}"
        self.mkdir(base)
        for attr in ("bind", "unbind", "uevent") + (("new_id", "remove_id") if bus == "pci" else ()):
            self.write(f"{base}/{attr}", "", WRITE_ONLY)
        if module and not builtin:
            self.symlink(f"{base}/module", f"/sys/module/{module}")
            self.symlink(f"/sys/module/{module}/drivers/{bus}:{name}", base)
        return base

    # ------------------------------------------------------------ PCI devices
    def device_path(self, addr: str) -> str:
        """The /sys/devices path of a PCI function that exists (via the bus link)."""
        link = self.readlink(f"{PCI_DEVICES}/{addr}")
        if link is None:
            raise KeyError(addr)
        return os.path.normpath(os.path.join(PCI_DEVICES, link))

    def _new_device_path(self, spec: PciSpec) -> str:
        if spec.parent:
            return f"{self.device_path(spec.parent)}/{spec.addr}"
        dom, bus, _, _ = parse_addr(spec.addr)
        root = f"{SYS_DEVICES}/pci{dom:04x}:{bus:02x}"
        if not self.exists(root):
            self.mkdir(f"{root}/power")
            self.attr(f"{root}/uevent", "", READ_WRITE)
        return f"{root}/{spec.addr}"

    def add_pci(self, addr: str, vendor: int, device: int, klass: int, *, at: Optional[str] = None,
                **kw) -> PciSpec:
        """Lay out one function; returns its spec. Keywords are PciSpec fields; ``at`` forces
        the /sys/devices directory (VFs sit next to their PF, not under it)."""
        spec = PciSpec(addr, vendor, device, klass, **kw)
        path = at or self._new_device_path(spec)
        a = lambda name, value, mode=READ_ONLY: self.attr(f"{path}/{name}", value, mode)  # noqa: E731
        self.mkdir(path)
        a("vendor", f"0x{spec.vendor:04x}")
        a("device", f"0x{spec.device:04x}")
        a("subsystem_vendor", f"0x{spec.subsys[0]:04x}")
        a("subsystem_device", f"0x{spec.subsys[1]:04x}")
        a("class", f"0x{spec.klass:06x}")
        a("revision", f"0x{spec.revision:02x}")
        a("numa_node", spec.numa_node, READ_WRITE)
        a("driver_override", spec.driver_override or "(null)", READ_WRITE)
        a("modalias", modalias(spec.vendor, spec.device, spec.subsys, spec.klass))
        a("enable", 1 if spec.driver else 0, READ_WRITE)
        a("irq", 0)
        a("local_cpulist", "0-1")
        a("local_cpus", "3")
        a("msi_bus", 1, READ_WRITE)
        a("d3cold_allowed", 1, READ_WRITE)
        a("broken_parity_status", 0, READ_WRITE)
        a("consistent_dma_mask_bits", 64)
        a("dma_mask_bits", 64)
        a("ari_enabled", 0)
        a("power_state", "D0")
        a("resource", "0x0000000000000000 0x0000000000000000 0x0000000000000000")
        if spec.boot_vga is not None:
            a("boot_vga", 1 if spec.boot_vga else 0)
        if spec.reset_method:
            a("reset_method", spec.reset_method, READ_WRITE)
            self.write(f"{path}/reset", "", WRITE_ONLY)
        self.write(f"{path}/remove", "", WRITE_ONLY)
        self.write(f"{path}/rescan", "", WRITE_ONLY)
        self.write(f"{path}/config", config_space(spec), READ_WRITE)
        self.mkdir(f"{path}/power")
        self.attr(f"{path}/power/control", "on", READ_WRITE)
        self.attr(f"{path}/power/runtime_status", "active")
        self.symlink(f"{path}/subsystem", "/sys/bus/pci")
        self.symlink(f"{PCI_DEVICES}/{spec.addr}", path)
        if spec.is_bridge:
            a("secondary_bus_number", spec.secondary_bus if spec.secondary_bus is not None
              else parse_addr(spec.addr)[1] + 1)
            a("subordinate_bus_number", spec.secondary_bus if spec.secondary_bus is not None
              else parse_addr(spec.addr)[1] + 1)
        if spec.sriov_totalvfs is not None:
            a("sriov_totalvfs", spec.sriov_totalvfs)
            a("sriov_numvfs", 0, READ_WRITE)
            a("sriov_offset", spec.sriov_offset)
            a("sriov_stride", spec.sriov_stride)
            a("sriov_vf_device", f"{spec.sriov_vf_device or spec.device:x}")
            a("sriov_drivers_autoprobe", 1, READ_WRITE)
        if spec.physfn:
            self.symlink(f"{path}/physfn", self.device_path(spec.physfn))
        self.write_uevent(spec.addr)
        if spec.iommu_group is not None:
            self.join_group(spec.addr, spec.iommu_group)
        if spec.driver:
            self.bind(spec.addr, spec.driver)
        return spec

    def write_uevent(self, addr: str) -> None:
        """The device's uevent as drivers/pci/pci-driver.c pci_uevent prints it."""
        path = self.device_path(addr)
        vendor = int(self.read(f"{path}/vendor") or "0", 16)
        device = int(self.read(f"{path}/device") or "0", 16)
        sv = int(self.read(f"{path}/subsystem_vendor") or "0", 16)
        sd = int(self.read(f"{path}/subsystem_device") or "0", 16)
        klass = int(self.read(f"{path}/class") or "0", 16)
        driver = self.readlink(f"{path}/driver")
        lines = []
        if driver:
            lines.append(f"DRIVER={os.path.basename(driver)}")
        lines += [f"PCI_CLASS={klass:X}", f"PCI_ID={vendor:04X}:{device:04X}",
                  f"PCI_SUBSYS_ID={sv:04X}:{sd:04X}", f"PCI_SLOT_NAME={addr}",
                  f"MODALIAS={modalias(vendor, device, (sv, sd), klass)}"]
        self.write(f"{path}/uevent", "".join(line_ + "\n" for line_ in lines), READ_WRITE)

    def bind(self, addr: str, driver: str, bus: str = "pci") -> None:
        """The links a successful probe leaves (drivers/base/dd.c driver_sysfs_add)."""
        base = f"/sys/bus/{bus}/drivers/{driver}"
        if not self.exists(base):
            self.add_driver(driver)
        path = self.device_path(addr) if bus == "pci" else self.mdev_path(addr)
        self.symlink(f"{path}/driver", base)
        self.symlink(f"{base}/{addr}", path)
        if bus == "pci":
            self.write_uevent(addr)
            self.attr(f"{path}/enable", 1, READ_WRITE)
        else:
            self._write_mdev_uevent(addr)

    def unbind(self, addr: str, bus: str = "pci") -> Optional[str]:
        path = self.device_path(addr) if bus == "pci" else self.mdev_path(addr)
        target = self.readlink(f"{path}/driver")
        if target is None:
            return None
        driver = os.path.basename(target)
        self.unlink(f"{path}/driver")
        self.unlink(f"/sys/bus/{bus}/drivers/{driver}/{addr}")
        if bus == "pci":
            self.write_uevent(addr)
            self.attr(f"{path}/enable", 0, READ_WRITE)
        else:
            self._write_mdev_uevent(addr)
        return driver

    # ------------------------------------------------------------ IOMMU groups
    def join_group(self, member: str, group: int, *, path: Optional[str] = None,
                   group_type: str = "DMA") -> None:
        """Put a device (PCI address or mdev UUID) in group N (drivers/iommu/iommu.c)."""
        base = f"{IOMMU_GROUPS}/{group}"
        if not self.exists(base):
            self.mkdir(f"{base}/devices")
            self.attr(f"{base}/type", group_type)
            self.attr(f"{base}/reserved_regions",
                      "0x00000000fee00000 0x00000000feefffff msi" if group_type != "unknown" else "")
        path = path or self.device_path(member)
        self.symlink(f"{base}/devices/{member}", path)
        self.symlink(f"{path}/iommu_group", base)
        unit = self._iommu_unit()
        if unit and member.count(":") == 2:
            self.symlink(f"{path}/iommu", unit)
            self.symlink(f"{unit}/devices/{member}", path)

    def leave_group(self, member: str, path: str) -> Optional[int]:
        target = self.readlink(f"{path}/iommu_group")
        if target is None:
            return None
        group = int(os.path.basename(target))
        self.unlink(f"{IOMMU_GROUPS}/{group}/devices/{member}")
        self.unlink(f"{path}/iommu_group")
        self.unlink(f"{path}/iommu")
        unit = self._iommu_unit()
        if unit:
            self.unlink(f"{unit}/devices/{member}")
        if not os.listdir(self.p(f"{IOMMU_GROUPS}/{group}/devices")):
            self.unlink(f"{IOMMU_GROUPS}/{group}")
        return group

    def _iommu_unit(self) -> Optional[str]:
        try:
            names = sorted(os.listdir(self.p("/sys/class/iommu")))
        except OSError:
            return None
        return self.resolve(f"/sys/class/iommu/{names[0]}") if names else None

    def free_group_id(self) -> int:
        """The lowest unused group number (iommu_group_alloc uses ida_alloc)."""
        used = set()
        try:
            used = {int(n) for n in os.listdir(self.p(IOMMU_GROUPS)) if n.isdigit()}
        except OSError:
            pass
        n = 0
        while n in used:
            n += 1
        return n

    # ------------------------------------------------------------ SR-IOV
    def vf_address(self, pf: str, index: int) -> str:
        path = self.device_path(pf)
        offset = int(self.read(f"{path}/sriov_offset") or "1")
        stride = int(self.read(f"{path}/sriov_stride") or "1")
        dom, bus, slot, func = parse_addr(pf)
        routing = (bus << 8 | slot << 3 | func) + offset + stride * index
        return format_addr(dom, routing >> 8, (routing >> 3) & 0x1F, routing & 0x7)

    def add_vf(self, pf: str, index: int, *, driver: Optional[str] = None,
               iommu_group: Optional[int] = None) -> str:
        """One VF of ``pf`` (drivers/pci/iov.c pci_iov_add_virtfn): sibling directory,
        virtfnN / physfn links, its own group when the PF's path has ACS."""
        ppath = self.device_path(pf)
        addr = self.vf_address(pf, index)
        vendor = int(self.read(f"{ppath}/vendor") or "0", 16)
        vf_device = int(self.read(f"{ppath}/sriov_vf_device") or "0", 16)
        sv = int(self.read(f"{ppath}/subsystem_vendor") or "0", 16)
        sd = int(self.read(f"{ppath}/subsystem_device") or "0", 16)
        klass = int(self.read(f"{ppath}/class") or "0", 16)
        numa = int(self.read(f"{ppath}/numa_node") or "-1")
        parent_link = self.readlink(f"{PCI_DEVICES}/{pf}")
        parent_dir = os.path.dirname(os.path.normpath(os.path.join(PCI_DEVICES, parent_link)))
        path = f"{parent_dir}/{addr}"
        self.add_pci(addr, vendor, vf_device, klass, subsys=(sv, sd), numa_node=numa,
                     reset_method="flr", at=path)
        self.symlink(f"{path}/physfn", ppath)
        self.symlink(f"{ppath}/virtfn{index}", path)
        if iommu_group is None:
            iommu_group = self.free_group_id() if self.exists(f"{ppath}/iommu_group") else None
        if iommu_group is not None:
            self.join_group(addr, iommu_group)
        if driver:
            self.bind(addr, driver)
        return addr

    def remove_vf(self, pf: str, index: int) -> str:
        ppath = self.device_path(pf)
        path = self.resolve(f"{ppath}/virtfn{index}")
        addr = os.path.basename(path)
        if self.readlink(f"{path}/driver"):
            self.unbind(addr)
        self.leave_group(addr, path)
        self.unlink(f"{ppath}/virtfn{index}")
        self.unlink(f"{PCI_DEVICES}/{addr}")
        self.unlink(path)
        return addr

    def set_numvfs(self, pf: str, count: int, *, driver: Optional[str] = None) -> List[str]:
        ppath = self.device_path(pf)
        current = int(self.read(f"{ppath}/sriov_numvfs") or "0")
        added = []
        for i in range(current, count):
            added.append(self.add_vf(pf, i, driver=driver))
        for i in reversed(range(count, current)):
            self.remove_vf(pf, i)
        self.attr(f"{ppath}/sriov_numvfs", count, READ_WRITE)
        return added

    # ------------------------------------------------------------ mdev
    def add_mdev_parent(self, parent_path: str, types: Sequence[Dict[str, object]],
                        *, class_name: str) -> None:
        """mdev_supported_types/TYPE/{name,available_instances,device_api,description,create,
        devices/} (drivers/vfio/mdev/mdev_sysfs.c) and /sys/class/mdev_bus/NAME.

        Each type is a dict: id (the directory name), name (None: no ``name`` file, like
        i915-GVTg_V5_4 on older kernels), available, device_api, description.
        """
        self.add_bus("mdev")
        for t in types:
            base = f"{parent_path}/mdev_supported_types/{t['id']}"
            self.mkdir(f"{base}/devices")
            if t.get("name") is not None:
                self.attr(f"{base}/name", t["name"])
            self.attr(f"{base}/available_instances", t.get("available", 1))
            self.attr(f"{base}/device_api", t.get("device_api", "vfio-pci"))
            if t.get("description") is not None:
                self.attr(f"{base}/description", t["description"])
            self.write(f"{base}/create", "", WRITE_ONLY)
        self.symlink(f"/sys/class/mdev_bus/{os.path.basename(parent_path)}", parent_path)

    def mdev_path(self, uuid: str) -> str:
        link = self.readlink(f"/sys/bus/mdev/devices/{uuid}")
        if link is None:
            raise KeyError(uuid)
        return os.path.normpath(os.path.join("/sys/bus/mdev/devices", link))

    def add_mdev(self, parent_path: str, type_id: str, uuid: str, *, driver: Optional[str],
                 iommu_group: Optional[int] = None) -> str:
        """An mdev (drivers/vfio/mdev/mdev_core.c, mdev_sysfs.c mdev_create_sysfs_files)."""
        path = f"{parent_path}/{uuid}"
        self.mkdir(f"{path}/power")
        self.write(f"{path}/remove", "", WRITE_ONLY)
        self.symlink(f"{path}/mdev_type", f"{parent_path}/mdev_supported_types/{type_id}")
        self.symlink(f"{parent_path}/mdev_supported_types/{type_id}/devices/{uuid}", path)
        self.symlink(f"{path}/subsystem", "/sys/bus/mdev")
        self.symlink(f"/sys/bus/mdev/devices/{uuid}", path)
        self._write_mdev_uevent(uuid)
        group = iommu_group if iommu_group is not None else self.free_group_id()
        # mdevs get an emulated group with no IOMMU domain (vfio_register_emulated_iommu_dev)
        self.join_group(uuid, group, path=path, group_type="unknown")
        if driver:
            self.bind(uuid, driver, bus="mdev")
        return path

    def _write_mdev_uevent(self, uuid: str) -> None:
        path = self.mdev_path(uuid)
        lines = []
        driver = self.readlink(f"{path}/driver")
        if driver:
            lines.append(f"DRIVER={os.path.basename(driver)}")
        type_link = self.readlink(f"{path}/mdev_type")
        if type_link:
            lines.append(f"MDEV_TYPE={os.path.basename(type_link)}")
        self.write(f"{path}/uevent", "".join(line_ + "\n" for line_ in lines), READ_WRITE)

    def add_nvidia_vgpu_vf(self, vf: str, creatable: Sequence[Tuple[int, str]],
                           current: int = 0) -> None:
        """NVIDIA's SR-IOV vGPU interface (Ampere and later, vGPU 16+ on kernels without
        mdev types on the VF): VF/nvidia/{creatable_vgpu_types,current_vgpu_type}."""
        path = f"{self.device_path(vf)}/nvidia"
        lines = ["ID    : vGPU Name"] + [f"{i:<6}: {name}" for i, name in creatable]
        self.write(f"{path}/creatable_vgpu_types", "\n".join(lines) + "\n", READ_ONLY)
        self.attr(f"{path}/current_vgpu_type", current, READ_WRITE)
        self.attr(f"{path}/vgpu_params", "", READ_WRITE)

    # ------------------------------------------------------------ net / block / mounts
    def add_netdev(self, name: str, addr: str, *, ifindex: int = 2, mac: str = "52:54:00:12:34:56",
                   default_route: bool = False, gateway: str = "0100000A") -> None:
        path = f"{self.device_path(addr)}/net/{name}"
        self.attr(f"{path}/ifindex", ifindex)
        self.attr(f"{path}/address", mac)
        self.attr(f"{path}/operstate", "up")
        self.symlink(f"{path}/device", self.device_path(addr))
        self.symlink(f"/sys/class/net/{name}", path)
        if default_route:
            text = self.read("/proc/net/route") or ""
            text += (f"{name}\t00000000\t{gateway}\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                     f"{name}\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
            self.write("/proc/net/route", text)

    def add_nvme_disk(self, controller: str, addr: str, disk: str, *,
                      partitions: Sequence[Tuple[str, Optional[str], str]] = ()) -> None:
        """nvmeN/nvmeNn1 under the controller, /sys/block link, and /proc/mounts lines.

        ``partitions``: (name, mountpoint or None, fstype; "swap" adds /proc/swaps).
        """
        ctrl = f"{self.device_path(addr)}/nvme/{controller}"
        self.attr(f"{ctrl}/model", "INTEL SSDPE2KX010T8")
        self.attr(f"{ctrl}/address", addr)
        self.symlink(f"{ctrl}/device", self.device_path(addr))
        self.symlink(f"/sys/class/nvme/{controller}", ctrl)
        dpath = f"{ctrl}/{disk}"
        self.attr(f"{dpath}/size", 1953525168)
        self.attr(f"{dpath}/dev", "259:0")
        self.symlink(f"{dpath}/device", ctrl)
        self.symlink(f"/sys/block/{disk}", dpath)
        self.symlink(f"/sys/class/block/{disk}", dpath)
        mounts = self.read("/proc/mounts") or ""
        swaps = self.read("/proc/swaps") or ""
        for n, (part, mountpoint, fstype) in enumerate(partitions, start=1):
            ppath = f"{dpath}/{part}"
            self.attr(f"{ppath}/partition", n)
            self.attr(f"{ppath}/dev", f"259:{n}")
            self.symlink(f"/sys/class/block/{part}", ppath)
            if fstype == "swap":
                swaps += f"/dev/{part}                          \tpartition\t8388604\t\t0\t\t-2\n"
            elif mountpoint:
                mounts += f"/dev/{part} {mountpoint} {fstype} rw,relatime 0 0\n"
        self.write("/proc/mounts", mounts)
        self.write("/proc/swaps", swaps)


def _aliases(mod: catalog.Module) -> List[str]:
    """modules.alias patterns from the id table (scripts/mod/file2alias.c do_pci_entry)."""
    out = []
    prefix = "vfio_pci:" if mod.override_only else "pci:"
    for vendor, device, klass, mask in mod.pci_ids:
        v = "*" if vendor is None else f"{vendor:08X}"
        d = "*" if device is None else f"{device:08X}"
        bc = f"{(klass >> 16) & 0xFF:02X}" if mask & 0xFF0000 else "*"
        sc = f"{(klass >> 8) & 0xFF:02X}" if mask & 0x00FF00 else "*"
        i = f"{klass & 0xFF:02X}" if mask & 0x0000FF else "*"
        out.append(f"{prefix}v{v}d{d}sv*sd*bc{bc}sc{sc}i{i}*")
    return out
