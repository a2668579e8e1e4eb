"""What the host is using right now: mounted disks and swap, routed interfaces, firmware
framebuffers, open device nodes, and the interlocks that refuse to take such a device away."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from . import pci
from .host import Host
from .model import PciDevice


def _block_devices_in_use(host: Host) -> Dict[str, List[str]]:
    """Whole-disk names → what uses them (["mounted at /", "swap"]), through partitions and dm/md."""
    pending: List[tuple] = []
    for table, what in (("/proc/mounts", "mounted at {}"), ("/proc/swaps", "swap")):
        for line in (host.read_text(table) or "").splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[0].startswith("/dev/"):
                continue
            pending.append((host.resolve(parts[0]).rsplit("/", 1)[-1], what.format(parts[1])))
    result: Dict[str, List[str]] = {}
    seen = set()
    while pending:
        name, use = pending.pop(0)
        if (name, use) in seen:
            continue
        seen.add((name, use))
        real = host.resolve(f"/sys/class/block/{name}")
        if host.exists(f"{real}/partition"):  # a partition: its disk is the parent directory
            name = real.rsplit("/", 2)[-2]
        uses = result.setdefault(name, [])
        if use not in uses:
            uses.append(use)
        for slave in host.listdir(f"/sys/class/block/{name}/slaves"):
            pending.append((slave, use))
    return result


FRAMEBUFFERS = ("BOOTFB", "efifb", "simpledrm", "simple-framebuffer", "vesafb")


def _framebuffer_ranges(host: Host) -> List[tuple]:
    """(start, end, name) of the firmware framebuffers in /proc/iomem. Without root the kernel
    shows every address as 0: nothing can be told, so nothing is returned."""
    found = []
    for line in (host.read_text("/proc/iomem") or "").splitlines():
        span, _, name = line.strip().partition(" : ")
        if not any(name.startswith(fb) for fb in FRAMEBUFFERS):
            continue
        start, _, end = span.partition("-")
        try:
            first, last = int(start, 16), int(end, 16)
        except ValueError:
            continue
        if last:
            found.append((first, last, name))
    return found


def _bars(host: Host, address: str) -> List[tuple]:
    """The device's memory ranges from its ``resource`` file (start end flags per line)."""
    ranges = []
    for line in (host.read_text(f"{pci.PCI_DEVICES}/{address}/resource") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            try:
                first, last = int(parts[0], 16), int(parts[1], 16)
            except ValueError:
                continue
            if last:
                ranges.append((first, last))
    return ranges


# Character devices a host driver creates under the PCI device, and where they appear in /dev.
_DEV_NODE_DIRS = (("drm", "/dev/dri"), ("nvme", "/dev"), ("infiniband_verbs", "/dev/infiniband"))


class HostUse(NamedTuple):
    """What the host is using right now, read once per plan (not once per device: a plan for
    64 VFs would otherwise scan /proc 64 times)."""

    framebuffers: List[tuple]            # (start, end, name) of firmware framebuffers
    disks: Dict[str, List[str]]          # whole-disk name → its uses
    routed: set                          # interfaces that carry a route
    open_devices: Dict[str, List[str]]   # /dev path → ["comm (pid N)", …] holding it open


def _open_devices(host: Host) -> Dict[str, List[str]]:
    """Every /dev node some process holds open, with who holds it (all processes as root, only
    our own otherwise)."""
    found: Dict[str, List[str]] = {}
    for pid in host.listdir("/proc"):
        if not pid.isdigit():
            continue
        targets = {host.readlink(f"/proc/{pid}/fd/{fd}") for fd in host.listdir(f"/proc/{pid}/fd")}
        targets = {t for t in targets if t and t.startswith("/dev/")}
        if targets:
            holder = f"{host.read_attr(f'/proc/{pid}/comm') or '?'} (pid {pid})"
            for target in targets:
                found.setdefault(target, []).append(holder)
    return found


def host_use(host: Host) -> HostUse:
    routed = set()
    for table, column in (("/proc/net/route", 0), ("/proc/net/ipv6_route", -1)):
        for line in (host.read_text(table) or "").splitlines()[(1 if column == 0 else 0):]:
            parts = line.split()
            if parts:
                routed.add(parts[column])
    return HostUse(_framebuffer_ranges(host), _block_devices_in_use(host), routed, _open_devices(host))


def interlocks(host: Host, dev: PciDevice, use: Optional[HostUse] = None) -> List[str]:
    """Why taking ``dev`` from its driver would hurt this host (empty when it would not)."""
    use = use or host_use(host)
    reasons = []
    if dev.boot_vga:
        reasons.append(f"{dev.address} is the boot VGA device (the console is on it)")
    bars = _bars(host, dev.address) if use.framebuffers else []
    for first, last, name in use.framebuffers:
        # efifb/simpledrm holding a BAR: vfio-pci then fails with "BAR 0: can't reserve"
        if any(first <= bar_last and bar_first <= last for bar_first, bar_last in bars):
            reasons.append(f"{dev.address} has a BAR held by the firmware framebuffer {name} "
                           "(add initcall_blacklist=sysfb_init or video=efifb:off to the kernel arguments)")
    marker = f"/{dev.address}/"
    for disk, uses in sorted(use.disks.items()):
        if marker in host.resolve(f"/sys/class/block/{disk}") + "/":
            reasons.append(f"{dev.address} controls disk {disk} ({', '.join(uses)})")
    for iface in host.listdir("/sys/class/net"):
        if iface in use.routed and host.resolve(f"/sys/class/net/{iface}/device").rsplit("/", 1)[-1] == dev.address:
            reasons.append(f"{dev.address} is network interface {iface}, which carries a route")
    # an unbind would wait for these processes (pain point: nvidia-persistenced holding the GPU)
    for subdir, devdir in _DEV_NODE_DIRS:
        for name in host.listdir(f"{pci.PCI_DEVICES}/{dev.address}/{subdir}"):
            node = f"{devdir}/{name}"
            reasons.extend(f"{dev.address}: {holder} has {node} open" for holder in use.open_devices.get(node, []))
    return reasons


def vfio_group_holders(host: Host, group: int, use: Optional[HostUse] = None) -> List[str]:
    """Processes holding /dev/vfio/GROUP open ("qemu-system-x86 (pid 123)").

    A vfio-pci unbind blocks until the user closes the device (vfio_unregister_group_dev
    waits), so we look first. Without root only our own processes are visible.
    """
    opened = use.open_devices if use is not None else _open_devices(host)
    return list(opened.get(f"/dev/vfio/{group}", []))
