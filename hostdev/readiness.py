"""Will this device work in a VM? Per-device readiness from what sysfs shows, and the fix for
the user's stack (KubeVirt or plain libvirt).

``read_facts`` reads one device through Host; ``evaluate`` is pure: facts in, one Check row per
concern out (large BARs against the guest firmware's 64-bit MMIO window, reset, the driver that
takes the device at boot, power state, NUMA node, option ROM, the IOMMU group's size). The
``bars``/``window`` helpers are also what ``vm test`` and ``kubevirt`` use to judge a guest.

Sources for the MMIO-window rules (docs/troubleshooting.md cites them for users):
- KubeVirt issue 11093: an EFI guest with a 24 GB+ GPU gets "NVRM: BAR0 is 0M @ 0x0"; the
  workaround is a hook sidecar adding ``-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=MiB``, and
  the maintainers point at ``cpu.model: host-passthrough`` (the guest then gets the host's
  physical address bits, RHEL-35391).
- Harvester issues 5619 (A30: BAR1 32 GiB, over OVMF's fixed 32 GiB window) and 8972 (the
  firmware sizes the window from the guest's physical address bits, 1/8 of the address space;
  host-passthrough fixes multi-GPU VMs).
- QEMU gives a CPU that is not host-passthrough 40 physical address bits; OVMF treats 40 bits on
  an Intel CPU as invalid and stays with its conservative layout (edk2 issue 9340, Gerd
  Hoffmann), so host-passthrough (or explicit bits) is what opens the dynamic window.
- libvirt's ``<cpu><maxphysaddr mode='emulate' bits='N'/>`` (libvirt 8.7, QEMU phys-bits) and
  ``mode='passthrough'`` (host-phys-bits, host-passthrough CPUs only).
- SeaBIOS (BIOS guests) places 64-bit BARs above RAM, aligned to their size, and does not check
  the guest's address width: a BAR past 2^phys-bits is programmed but the guest cannot reach it
  (measured with SeaBIOS 1.16.2 / QEMU 7.2: a 1 TiB BAR lands at 1-2 TiB with 40 bits).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import hostuse, journal, pci, rules
from .errors import UsageError
from .host import Host
from .model import FAIL, PASS, SKIP, WARN, Check, PciAddress, PciDevice
from .pci import ROM_INDEX, Bar, format_size, parse_resource

KUBEVIRT, LIBVIRT = "kubevirt", "libvirt"
STACKS = (KUBEVIRT, LIBVIRT)


GIB = 1 << 30
# OVMF without the dynamic window: PcdPciMmio64Size 0x800000000 (Harvester 5619's A30 did not fit)
OVMF_FIXED_WINDOW = 32 * GIB
# QEMU's phys-bits for a guest CPU that is not host-passthrough (TCG_PHYS_ADDR_BITS, and the
# default of named models under KVM); measured: qom-get phys-bits of a qemu64 CPU is 40.
DEFAULT_GUEST_PHYS_BITS = 40
# The dynamic OVMF window is 1/8 of the guest's physical address space (Harvester 8972)
EFI_WINDOW_SHIFT = 3
# Host drivers that take a GPU at boot (in-tree DRM drivers and NVIDIA's)
GPU_DRIVERS = ("nouveau", "nvidia", "amdgpu", "radeon", "i915", "xe", "nvidia_drm", "ast", "mgag200")


def device_bars(bars: Sequence[Bar]) -> List[Bar]:
    """The BARs a VM must map (0-5, memory and I/O), without the ROM and SR-IOV resources."""
    return [b for b in bars if b.index < ROM_INDEX]





def window_needed(bars: Sequence[Bar], count: int = 1) -> int:
    """Bytes of 64-bit MMIO window ``count`` such devices need: their 64-bit memory BARs,
    largest first (BAR sizes are powers of two, so that order leaves no alignment gaps)."""
    sizes = sorted((b.size for b in device_bars(bars) if b.is_64 and not b.is_io), reverse=True)
    return sum(sizes) * max(count, 1)


def _bits_for(size: int) -> int:
    return max(size - 1, 1).bit_length()


def phys_bits_needed(bars: Sequence[Bar], count: int = 1) -> Optional[int]:
    """Guest physical address bits that give ``count`` devices' 64-bit BARs room under both
    firmwares: EFI's dynamic window is 1/8 of the address space; BIOS places the BARs above
    RAM, aligned to the largest, which 2^(bits of the window + 1) always leaves room for.
    None when there is no 64-bit BAR."""
    window = window_needed(bars, count)
    if not window:
        return None
    return max(_bits_for(window) + EFI_WINDOW_SHIFT, DEFAULT_GUEST_PHYS_BITS)


def reachable(start: int, size: int, phys_bits: Optional[int]) -> bool:
    """A guest BAR at ``start`` lies inside a guest address space of ``phys_bits`` bits."""
    return phys_bits is None or start + size <= 1 << phys_bits


class DeviceFacts(NamedTuple):
    """What ``evaluate`` needs about one PCI function, as read from sysfs (values verbatim)."""

    device: PciDevice
    bars: Tuple[Bar, ...]
    reset_method: Optional[str]            # None: no reset_method file (kernel < 5.15)
    power_state: Optional[str]
    d3cold_allowed: Optional[str]
    numa_nodes: int                        # NUMA nodes of the host (0 when unknown)
    parent_bridge: Optional[str]           # the PCI bridge above it, None on a root bus
    behind_bridge: Tuple[str, ...]         # other functions on the same secondary bus, not of this card
    path_bridges: Tuple[str, ...]          # PCI bridges from the root down to the device
    group_members: Tuple[str, ...]
    framebuffer: Optional[str]             # the firmware framebuffer holding one of its BARs
    persisted_driver: Optional[str]        # hostdev's persistent binding (bind --persist)
    host_phys_bits: Optional[int]          # /proc/cpuinfo "address sizes"


def _phys_bits(cpuinfo: str) -> Optional[int]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "address sizes":
            words = value.split()
            if words and words[0].isdigit():
                return int(words[0])
    return None


def _is_pci_name(name: str) -> bool:
    try:
        PciAddress.parse(name)
    except UsageError:
        return False
    return ":" in name


def read_facts(host: Host, dev: PciDevice, persisted: Optional[Dict[str, str]] = None,
               framebuffers: Optional[List[tuple]] = None) -> DeviceFacts:
    """Read what ``evaluate`` needs about ``dev``. ``persisted``/``framebuffers``: pass them
    when reading many devices (each is one scan of the host)."""
    base = f"{pci.PCI_DEVICES}/{dev.address}"
    bars = tuple(parse_resource(host.read_text(f"{base}/resource") or ""))
    path = host.resolve(base)
    chain = [part for part in path.split("/") if _is_pci_name(part)]
    bridges = tuple(chain[:-1])
    parent = bridges[-1] if bridges else None
    own_slot = PciAddress.parse(dev.address).slot_address
    if parent:
        siblings = [n for n in host.listdir(path.rsplit("/", 1)[0]) if _is_pci_name(n)]
    else:
        siblings = []
    behind = tuple(sorted(n for n in siblings if PciAddress.parse(n).slot_address != own_slot))
    members = tuple(pci.group_members(host, dev.iommu_group)) if dev.iommu_group is not None else ()
    if framebuffers is None:
        framebuffers = hostuse.framebuffer_ranges(host)
    held = None
    for first, last, name in framebuffers:
        if any(first <= b.end and b.start <= last for b in bars if not b.is_io):
            held = name
            break
    nodes = [n for n in host.listdir("/sys/devices/system/node") if n.startswith("node") and n[4:].isdigit()]
    if persisted is None:
        persisted = journal.persisted(host)
    return DeviceFacts(dev, bars, host.read_attr(f"{base}/reset_method"), host.read_attr(f"{base}/power_state"),
                       host.read_attr(f"{base}/d3cold_allowed"), len(nodes), parent, behind, bridges, members,
                       held, persisted.get(dev.address), _phys_bits(host.read_text("/proc/cpuinfo") or ""))


# ---------------------------------------------------------------- the rows

def check_bars(facts: DeviceFacts, stack: str = KUBEVIRT, count: int = 1) -> Check:
    """Large BARs against the guest firmware's 64-bit MMIO window (``count``: such devices per VM)."""
    bars = device_bars(facts.bars)
    evidence = "resource: " + ("; ".join(f"{b.describe()} at 0x{b.start:x}-0x{b.end:x} (flags 0x{b.flags:x})"
                                         for b in bars) or "no BARs")
    if not bars:
        return Check("bar-mmio", SKIP, "the device shows no BARs (resource is empty or unreadable)", evidence)
    window = window_needed(bars, count)
    low32 = sum(b.size for b in bars if not b.is_io and not b.is_64)
    per = f" for {count} such devices" if count > 1 else ""
    if low32 > 1 * GIB:
        return Check("bar-mmio", FAIL, f"{format_size(low32)} of 32-bit BARs do not fit below 4 GiB", evidence,
                     "the device cannot be given to a VM with a standard x86 firmware layout")
    if window <= OVMF_FIXED_WINDOW:
        summary = (f"64-bit BARs need {format_size(window)}{per}: fits every firmware's default window"
                   if window else "no 64-bit BARs: fits below 4 GiB")
        return Check("bar-mmio", PASS, summary, evidence)
    bits = phys_bits_needed(bars, count) or DEFAULT_GUEST_PHYS_BITS
    largest = max((b for b in bars if b.is_64), key=lambda b: b.size)
    evidence += (f"; needs a 64-bit MMIO window of {format_size(window)}{per}; OVMF's fixed window is "
                 f"{format_size(OVMF_FIXED_WINDOW)}, a {DEFAULT_GUEST_PHYS_BITS}-bit guest's dynamic one "
                 f"{format_size((1 << DEFAULT_GUEST_PHYS_BITS) >> EFI_WINDOW_SHIFT)}; "
                 f"{bits} physical address bits give {format_size((1 << bits) >> EFI_WINDOW_SHIFT)}")
    host_bits = facts.host_phys_bits
    if host_bits:
        evidence += f"; this host's CPU has {host_bits} physical address bits"
    enough_host = host_bits is None or host_bits >= bits
    summary = (f"{largest.describe()}: the guest firmware's default 64-bit MMIO window is too small "
               f"(needs {format_size(window)}{per}, {bits} guest physical address bits)")
    return Check("bar-mmio", WARN if enough_host else FAIL, summary, evidence,
                 mmio_fix(stack, window, bits, enough_host))


def mmio_fix(stack: str, window: int, bits: int, host_has_bits: bool = True) -> str:
    """What to set so that a guest's 64-bit MMIO window holds ``window`` bytes."""
    mib = 1 << max(_bits_for(window) - 20, 0)   # X-PciMmio64Mb: a power of two in MiB
    if not host_has_bits:
        return (f"this host's CPU has fewer than {bits} physical address bits: no guest setting can give the "
                "window; use fewer such devices per VM")
    if stack == LIBVIRT:
        return (f"in the domain XML: <cpu mode='host-passthrough'><maxphysaddr mode='passthrough'/></cpu> "
                f"(or <cpu><maxphysaddr mode='emulate' bits='{bits}'/></cpu>, libvirt 8.7+); an older OVMF "
                "(fixed 32 GiB window) also needs <qemu:commandline><qemu:arg value='-fw_cfg'/>"
                f"<qemu:arg value='name=opt/ovmf/X-PciMmio64Mb,string={mib}'/></qemu:commandline>; "
                f"test it: hostdev vm test ADDR --phys-bits {bits}")
    return ("in the VM spec: spec.template.spec.domain.cpu.model: host-passthrough (the guest gets the host's "
            "physical address bits and the firmware sizes its window from them; KubeVirt issue 11093, Harvester "
            "issue 8972). KubeVirt has no field for the MMIO window itself: with an older OVMF (fixed 32 GiB) "
            "and EFI (spec.template.spec.domain.firmware.bootloader.efi) add a hook sidecar passing "
            f"-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string={mib}, or boot with BIOS firmware")


def check_reset(facts: DeviceFacts) -> Check:
    method = facts.reset_method
    evidence = f"reset_method: {method!r}" if method is not None else "reset_method: (no such file)"
    if method is None:
        return Check("reset", SKIP, "the kernel does not show the reset method (reset_method is new in 5.15)",
                     evidence)
    methods = method.split()
    if not methods:
        return Check("reset", FAIL, "the device cannot be reset (reset_method is empty)", evidence,
                     "state leaks from one VM to the next and a restart may hang: use another device or slot; "
                     "AMD GPUs may need the vendor-reset module")
    if methods == ["bus"]:
        if facts.behind_bridge:
            evidence += f"; also behind bridge {facts.parent_bridge}: {', '.join(facts.behind_bridge)}"
            return Check("reset", FAIL, f"only a bus reset, which also resets {', '.join(facts.behind_bridge)}",
                         evidence, "give every function behind the bridge to the same VM, or move the card "
                                   "to a slot of its own (vfio cannot reset it otherwise)")
        return Check("reset", PASS, "bus reset only (no FLR), and the card is alone behind its bridge", evidence)
    return Check("reset", PASS, f"resettable ({', '.join(methods)})", evidence)


def check_boot_driver(facts: DeviceFacts) -> Check:
    dev = facts.device
    evidence = (f"driver: {dev.driver or '(none)'}; boot_vga: {dev.boot_vga}; "
                f"persistent binding: {facts.persisted_driver or '(none)'}")
    if facts.framebuffer:
        evidence += f"; /proc/iomem: a BAR is held by {facts.framebuffer}"
        return Check("boot-driver", FAIL, f"the firmware framebuffer {facts.framebuffer} holds a BAR", evidence,
                     "add initcall_blacklist=sysfb_init (or video=efifb:off) to the kernel arguments and "
                     "reboot; vfio-pci fails with \"BAR 0: can't reserve\" otherwise")
    if rules.is_vfio_driver(dev.driver):
        if facts.persisted_driver:
            return Check("boot-driver", PASS, f"on {dev.driver}, and bound again at every boot", evidence)
        return Check("boot-driver", WARN, f"on {dev.driver} now, but nothing binds it at boot", evidence,
                     f"hostdev bind {dev.address} --persist")
    if dev.driver in GPU_DRIVERS:
        return Check("boot-driver", WARN, f"{dev.driver} takes it at boot", evidence,
                     f"hostdev bind {dev.address} --persist (re-binds it to vfio-pci at boot); or blacklist "
                     f"{dev.driver} when no other device needs it")
    if dev.boot_vga:
        return Check("boot-driver", WARN, "the boot VGA device: the firmware and console draw on it", evidence,
                     "pass through a GPU that is not the boot display, or boot the host headless")
    if dev.driver:
        return Check("boot-driver", PASS, f"on {dev.driver}; hostdev bind moves it to vfio-pci", evidence)
    return Check("boot-driver", PASS, "no driver takes it", evidence)


def check_power(facts: DeviceFacts) -> Check:
    state = facts.power_state
    evidence = f"power_state: {state or '(no such file)'}; d3cold_allowed: {facts.d3cold_allowed}"
    if state is None:
        return Check("power-state", SKIP, "the kernel does not show the power state", evidence)
    if state == "D3cold":
        return Check("power-state", WARN, "in D3cold (powered off): it must wake before a VM can use it", evidence,
                     f"keep it powered: echo on > /sys/bus/pci/devices/{facts.device.address}/power/control "
                     "(some devices do not come back from D3cold)")
    if state in ("error", "unknown"):
        return Check("power-state", FAIL, f"power state {state}: the device does not answer", evidence,
                     "check dmesg for the device; a reboot or a rescan may bring it back")
    return Check("power-state", PASS, f"powered ({state})", evidence)


def check_numa(facts: DeviceFacts, stack: str = KUBEVIRT) -> Check:
    node = facts.device.numa_node
    evidence = f"numa_node: {node if node is not None else -1}; host NUMA nodes: {facts.numa_nodes}"
    if facts.numa_nodes == 1 or (facts.numa_nodes == 0 and node is None):
        return Check("numa", PASS, "single NUMA node host" if facts.numa_nodes else "no NUMA information",
                     evidence)
    if node is None:
        return Check("numa", WARN, "the firmware does not say which NUMA node the device is on", evidence,
                     "nothing to pin against; check the slot's socket in the board manual")
    fix = ("dedicatedCpuPlacement: true and numa.guestMappingPassthrough with hugepages, on a node where the "
           "Topology Manager policy is single-numa-node" if stack == KUBEVIRT else
           f"<numatune><memory mode='strict' nodeset='{node}'/></numatune> and vCPUs pinned to node {node}'s CPUs")
    return Check("numa", PASS, f"on NUMA node {node}: keep the VM's CPUs and memory there ({fix})", evidence)


def check_rom(facts: DeviceFacts) -> Check:
    rom = next((b for b in facts.bars if b.index == ROM_INDEX), None)
    if rom is None:
        return Check("option-rom", PASS, "no option ROM: the guest firmware has nothing to run", "resource line 6: "
                     "empty")
    evidence = f"resource line 6: 0x{rom.start:x}-0x{rom.end:x} ({format_size(rom.size)})"
    if facts.device.base_class == 0x03:
        return Check("option-rom", PASS, f"has a {format_size(rom.size)} option ROM (the guest's firmware runs it "
                     "for a display)", evidence)
    return Check("option-rom", PASS, f"has a {format_size(rom.size)} option ROM", evidence)


def check_group(facts: DeviceFacts) -> Check:
    dev = facts.device
    if dev.iommu_group is None:
        return Check("iommu-group", FAIL, "no IOMMU group", "iommu_group: (no link)", "hostdev iommu enable")
    slot = PciAddress.parse(dev.address).slot_address
    others = []
    for member in facts.group_members:
        if member in facts.path_bridges:
            continue
        if _is_pci_name(member) and PciAddress.parse(member).slot_address == slot:
            continue
        others.append(member)
    evidence = (f"group {dev.iommu_group}: {', '.join(facts.group_members)}; path: "
                f"{' > '.join(facts.path_bridges + (dev.address,))}")
    if not others:
        return Check("iommu-group", PASS, f"group {dev.iommu_group} holds only this card", evidence)
    above = facts.parent_bridge or "the root complex"
    return Check("iommu-group", WARN,
                 f"group {dev.iommu_group} also holds {', '.join(others)}: no ACS isolation between them at "
                 f"{above}", evidence,
                 "the whole group goes to one VM (hostdev bind takes them all); for smaller groups use a slot "
                 "on a root port with ACS (pcie_acs_override only hides the problem)")


def evaluate(facts: DeviceFacts, stack: str = KUBEVIRT, count: int = 1) -> List[Check]:
    """Every readiness row for one device, in the order a person would fix them."""
    return [check_group(facts), check_boot_driver(facts), check_reset(facts), check_bars(facts, stack, count),
            check_power(facts), check_numa(facts, stack), check_rom(facts)]


class DeviceReadiness(NamedTuple):
    address: str
    checks: Tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    @property
    def worst(self) -> str:
        statuses = {c.status for c in self.checks}
        return next((s for s in (FAIL, WARN, PASS) if s in statuses), SKIP)

    def to_dict(self) -> dict:
        return {"address": self.address, "ready": self.ready, "checks": [c.to_dict() for c in self.checks]}


def assess(host: Host, devices: Sequence[PciDevice], stack: str = KUBEVIRT, count: int = 1) -> List[DeviceReadiness]:
    """Readiness of each device (the host-wide scans done once)."""
    persisted = journal.persisted(host)
    framebuffers = hostuse.framebuffer_ranges(host)
    return [DeviceReadiness(d.address, tuple(evaluate(read_facts(host, d, persisted, framebuffers), stack, count)))
            for d in devices]


def mmio_warnings(host: Host, wanted: Dict[str, int], stack: str = KUBEVIRT) -> List[str]:
    """One warning per ``vvvv:dddd`` in ``wanted`` (ID → how many one VM gets) whose device on
    this host needs a larger 64-bit MMIO window than a VM gets by default, with the fix.
    IDs no device on this host has are skipped (nothing to read the BARs from)."""
    found = []
    for pci_id, count in sorted(wanted.items()):
        dev = next((d for d in pci.list_devices(host) if d.pci_id == pci_id.lower()), None)
        if dev is None:
            continue
        bars = parse_resource(host.read_text(f"{pci.PCI_DEVICES}/{dev.address}/resource") or "")
        facts = DeviceFacts(dev, tuple(bars), None, None, None, 0, None, (), (), (), None, None,
                            _phys_bits(host.read_text("/proc/cpuinfo") or ""))
        row = check_bars(facts, stack, count)
        if row.status in (WARN, FAIL):
            found.append(f"warning: {pci_id.upper()} ({dev.address}): {row.summary}; fix: {row.fix}")
    return found
