"""What the host is using right now: mounted disks and swap, routed interfaces, firmware
framebuffers, open device nodes, and the interlocks that refuse to take such a device away.

Each use is followed down to the PCI function that carries it: a route through a bridge, bond,
team, VLAN, macvlan or VRF to the NICs below, a virtio NIC through its virtio device
(/sys/class/net/eth0/device is virtio2, whose parent is the PCI function), a filesystem through
LVM, dm-crypt, md and multipath (/sys/block/*/slaves) to the disks and their controllers.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

from . import pci
from .host import Host
from .model import PciDevice


def _mounted_block_devices(host: Host) -> List[Tuple[str, str]]:
    """(block device name, "mounted at /") for every mounted block device and active swap.

    /proc/self/mountinfo gives each mount's device number, which /sys/dev/block resolves even
    where /proc/mounts names a device node that does not exist (``/dev/root`` when the kernel
    mounted the root itself, without an initramfs); /proc/mounts is the fallback."""
    found: List[Tuple[str, str]] = []
    info = host.read_text("/proc/self/mountinfo")
    for line in (info or "").splitlines():
        fields = line.split()
        if len(fields) < 5 or " - " not in line:
            continue
        what = f"mounted at {fields[4]}"
        major, _, minor = fields[2].partition(":")
        if major != "0" and host.exists(f"/sys/dev/block/{major}:{minor}"):
            found.append((host.resolve(f"/sys/dev/block/{major}:{minor}").rsplit("/", 1)[-1], what))
            continue
        source = line.split(" - ", 1)[1].split()[1:2]   # fstype source options
        if source and source[0].startswith("/dev/"):
            found.append((host.resolve(source[0]).rsplit("/", 1)[-1], what))
    tables = (("/proc/swaps", "swap"),) if info else (("/proc/mounts", "mounted at {}"), ("/proc/swaps", "swap"))
    for table, what in tables:
        for line in (host.read_text(table) or "").splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[0].startswith("/dev/"):
                continue
            found.append((host.resolve(parts[0]).rsplit("/", 1)[-1], what.format(parts[1])))
    return found


def _block_devices_in_use(host: Host) -> Dict[str, List[str]]:
    """Whole-disk names → what uses them (["mounted at /", "swap"]), through partitions and
    every stacking that lists its parts in ``slaves`` (LVM and dm-crypt are dm, md, multipath)."""
    pending: List[tuple] = _mounted_block_devices(host)
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


def framebuffer_ranges(host: Host) -> List[tuple]:
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
    """The device's assigned ranges (first, last) from its ``resource`` file (pci.parse_resource)."""
    text = host.read_text(f"{pci.PCI_DEVICES}/{address}/resource") or ""
    return [(bar.start, bar.end) for bar in pci.parse_resource(text)]


# Character devices a host driver creates under the PCI device, and where they appear in /dev.
_DEV_NODE_DIRS = (("drm", "/dev/dri"), ("nvme", "/dev"), ("infiniband_verbs", "/dev/infiniband"))


class HostUse(NamedTuple):
    """What the host is using right now, read once per plan (not once per device: a plan for
    64 VFs would otherwise scan /proc 64 times)."""

    framebuffers: List[tuple]            # (start, end, name) of firmware framebuffers
    disks: Dict[str, List[str]]          # whole-disk name → its uses
    routed: Dict[str, List[tuple]]       # PCI function → [(its interface, the routed one, Route)]
    open_devices: Dict[str, List[str]]   # /dev path → ["comm (pid N)", …] holding it open
    ssh: Optional[Route] = None          # the route of the SSH connection this command runs in


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


class Route(NamedTuple):
    """One route of /proc/net/route or /proc/net/ipv6_route."""

    iface: str
    network: object            # ipaddress.IPv4Network or IPv6Network
    gateway: Optional[str]

    def __str__(self) -> str:
        # as `ip route` prints it
        dest = "default" if self.network.prefixlen == 0 else str(self.network)
        via = f" via {self.gateway}" if self.gateway else ""
        return f"{dest}{via} dev {self.iface}"


_RTF_GATEWAY = 0x2
_RTF_REJECT = 0x200
_RTF_LOCAL = 0x80000000


def _ipv4(text: str) -> ipaddress.IPv4Address:
    # /proc/net/route prints addresses as the kernel's __be32 in host (little-endian) order
    return ipaddress.IPv4Address(int.from_bytes(int(text, 16).to_bytes(4, "little"), "big"))


def routes(host: Host) -> List[Route]:
    """Every route of the main IPv4 table and of the IPv6 tables through a real interface.
    Left out: lo, rejects, the host's own addresses (RTF_LOCAL), and IPv6 link-local fe80::/10
    and multicast ff00::/8 routes, which the kernel adds to every interface that is up
    (net/ipv6/addrconf.c addrconf_add_linklocal, addrconf_add_mroute) and so say nothing of use."""
    found = []
    for line in (host.read_text("/proc/net/route") or "").splitlines()[1:]:
        parts = line.split()
        try:
            iface, dest, gateway, flags, mask = parts[0], _ipv4(parts[1]), _ipv4(parts[2]), int(parts[3], 16), \
                _ipv4(parts[7])
            network = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except (IndexError, ValueError):
            continue
        if iface != "lo" and not flags & _RTF_REJECT:
            found.append(Route(iface, network, str(gateway) if flags & _RTF_GATEWAY else None))
    for line in (host.read_text("/proc/net/ipv6_route") or "").splitlines():
        parts = line.split()
        try:
            dest = ipaddress.IPv6Address(int(parts[0], 16))
            network = ipaddress.IPv6Network(f"{dest}/{int(parts[1], 16)}", strict=False)
            gateway, flags, iface = ipaddress.IPv6Address(int(parts[4], 16)), int(parts[8], 16), parts[9]
        except (IndexError, ValueError):
            continue
        if iface == "lo" or flags & (_RTF_REJECT | _RTF_LOCAL) or dest.is_link_local or dest.is_multicast:
            continue
        found.append(Route(iface, network, str(gateway) if flags & _RTF_GATEWAY else None))
    return found


def ssh_interface(routes_: List[Route], ssh_connection: Optional[str]) -> Optional[Route]:
    """The route the SSH connection this command runs in leaves by (SSH_CONNECTION is
    "client_ip client_port server_ip server_port"): the longest prefix that holds the client."""
    try:
        client = ipaddress.ip_address((ssh_connection or "").split()[0].split("%")[0])
    except (IndexError, ValueError):
        return None
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped:
        client = client.ipv4_mapped
    matching = [r for r in routes_ if r.network.version == client.version and client in r.network]
    return max(matching, key=lambda r: r.network.prefixlen, default=None)


_PCI_NAME = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\Z")


def pci_function_of(host: Host, sys_path: str) -> Optional[str]:
    """The PCI function a device of sysfs sits on: the nearest PCI address in its real path
    (a virtio NIC is /sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0), None for a
    virtual device (a bridge, bond, VLAN … lives under /sys/devices/virtual)."""
    for part in reversed(host.resolve(sys_path).split("/")):
        if _PCI_NAME.match(part):
            return part
    return None


def lower_interfaces(host: Host, iface: str) -> List[str]:
    """The interfaces ``iface`` is stacked on: the lower_* links the kernel makes for every
    upper/lower pair (bond, team, VLAN, macvlan, VRF and bridge ports: net/core/dev.c
    netdev_adjacent_sysfs_add), plus a bridge's brif/ and a bond's bonding/slaves for kernels
    and shapes without them."""
    base = f"/sys/class/net/{iface}"
    names = {entry[len("lower_"):] for entry in host.listdir(base) if entry.startswith("lower_")}
    names.update(host.listdir(f"{base}/brif"))
    names.update((host.read_attr(f"{base}/bonding/slaves") or "").split())
    return sorted(names)


def routed_functions(host: Host, routes_: List[Route]) -> Dict[str, List[Tuple[str, str, Route]]]:
    """PCI function → [(interface on it, the interface that carries the route, the route)],
    each route followed down every stacking to the functions below it."""
    found: Dict[str, List[Tuple[str, str, Route]]] = {}
    for route in routes_:
        pending, seen = [route.iface], set()
        while pending:
            iface = pending.pop(0)
            if iface in seen:
                continue
            seen.add(iface)
            function = pci_function_of(host, f"/sys/class/net/{iface}")
            if function is not None:
                found.setdefault(function, []).append((iface, route.iface, route))
            pending.extend(lower_interfaces(host, iface))
    return found


def host_use(host: Host) -> HostUse:
    table = routes(host)
    ssh = ssh_interface(table, host.environ.get("SSH_CONNECTION"))
    return HostUse(framebuffer_ranges(host), _block_devices_in_use(host), routed_functions(host, table),
                   _open_devices(host), ssh)


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
    carried = use.routed.get(dev.address, [])
    if carried:
        # one reason, naming the most telling route: the SSH session's, else a default route
        iface, upper, route = min(carried, key=lambda c: (c[2] != use.ssh, c[2].network.prefixlen))
        under = f" (under {upper})" if upper != iface else ""
        ssh = " and the SSH connection this command runs in" if route == use.ssh else ""
        reasons.append(f"{dev.address} is network interface {iface}{under}, which carries a route ({route}){ssh}")
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
