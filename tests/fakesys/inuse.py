"""Shapes of what a host uses, for fake roots: virtio NICs and disks, network stacking (bridge,
bond, VLAN), routes, LVM. Where they come from:

* virtio NIC and virtio-blk disk: recorded on the development VM (tests/data/dev-vm-firecracker,
  scripts/record-sysfs.py, Nov 2026): ``/sys/class/net/eth0 -> ../../devices/pci0000:00/
  0000:00:03.0/virtio2/net/eth0`` whose ``device`` is that virtio2 directory;
  ``/sys/block/vda -> ../devices/pci0000:00/0000:00:02.0/virtio1/block/vda``; /proc/net/route
  and /proc/self/mountinfo lines as that VM prints them.
* bridge, bond, VLAN: the links the kernel makes for every upper/lower pair
  (net/core/dev.c netdev_adjacent_sysfs_add: ``upper_X`` on the lower device, ``lower_Y`` on the
  upper one; ``master`` on a port), a bridge's ``brif/PORT`` (net/bridge/br_sysfs_if.c) and a
  bond's ``bonding/slaves`` (drivers/net/bonding/bond_sysfs.c). The same shapes are exercised on
  the real kernel by tests/behaviour/test_in_use.py.
* LVM: a dm device ``dm-N`` under /sys/devices/virtual/block with ``slaves/`` links to the
  physical volumes and ``dm/name``; /dev/mapper/VG-LV a link to ``../dm-N`` (udev's rule).
"""

from __future__ import annotations

import ipaddress
from typing import Optional, Sequence

from .builder import FakeRoot

ROUTE_HEADER = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
                "                                                       \n")


def _hex_le(address: str) -> str:
    """An IPv4 address as /proc/net/route prints it (the __be32 in little-endian hex)."""
    return int.from_bytes(ipaddress.IPv4Address(address).packed, "little").to_bytes(4, "big").hex().upper()


def add_virtio_nic(fr: FakeRoot, addr: str, virtio_index: int, name: str, *, ifindex: int = 2,
                   mac: str = "06:00:ac:10:00:02") -> str:
    """The virtio NIC shape of the dev VM: PCI function → virtioN → net/NAME. Returns its path."""
    virtio = f"{fr.device_path(addr)}/virtio{virtio_index}"
    fr.mkdir(virtio)
    path = f"{virtio}/net/{name}"
    fr.attr(f"{path}/ifindex", ifindex)
    fr.attr(f"{path}/address", mac)
    fr.attr(f"{path}/operstate", "up")
    fr.attr(f"{path}/type", 1)
    fr.symlink(f"{path}/device", virtio)
    fr.symlink(f"/sys/class/net/{name}", path)
    return path


def _virtual_netdev(fr: FakeRoot, name: str, ifindex: int) -> str:
    path = f"/sys/devices/virtual/net/{name}"
    fr.attr(f"{path}/ifindex", ifindex)
    fr.attr(f"{path}/operstate", "up")
    fr.attr(f"{path}/type", 1)
    fr.symlink(f"/sys/class/net/{name}", path)
    return path


def _stack(fr: FakeRoot, upper: str, lower: str, *, master: bool) -> None:
    upper_path = fr.resolve(f"/sys/class/net/{upper}")
    lower_path = fr.resolve(f"/sys/class/net/{lower}")
    fr.symlink(f"{upper_path}/lower_{lower}", lower_path)
    fr.symlink(f"{lower_path}/upper_{upper}", upper_path)
    if master:
        fr.symlink(f"{lower_path}/master", upper_path)


def add_bridge(fr: FakeRoot, name: str, ports: Sequence[str], *, ifindex: int = 10) -> None:
    path = _virtual_netdev(fr, name, ifindex)
    fr.mkdir(f"{path}/bridge")
    for port in ports:
        _stack(fr, name, port, master=True)
        port_path = fr.resolve(f"/sys/class/net/{port}")
        fr.attr(f"{port_path}/brport/state", 3)
        fr.symlink(f"{path}/brif/{port}", f"{port_path}/brport")


def add_bond(fr: FakeRoot, name: str, slaves: Sequence[str], *, ifindex: int = 11) -> None:
    path = _virtual_netdev(fr, name, ifindex)
    fr.attr(f"{path}/bonding/slaves", " ".join(slaves))
    fr.attr(f"{path}/bonding/mode", "active-backup 1")
    for slave in slaves:
        _stack(fr, name, slave, master=True)


def add_vlan(fr: FakeRoot, lower: str, vid: int, *, ifindex: int = 12) -> str:
    name = f"{lower}.{vid}"
    _virtual_netdev(fr, name, ifindex)
    _stack(fr, name, lower, master=False)
    return name


def set_routes(fr: FakeRoot, iface: str, *, gateway: Optional[str] = "192.0.2.1",
               network: str = "192.0.2.0/24", ipv6: Optional[str] = None) -> None:
    """/proc/net/route as the dev VM prints it: a default route via ``gateway`` (when given) and
    the connected ``network``, both on ``iface``; with ``ipv6`` (a prefix) its route too, plus
    the link-local and multicast routes every interface that is up has."""
    net = ipaddress.IPv4Network(network)
    lines = [ROUTE_HEADER]
    if gateway:
        lines.append(f"{iface}\t00000000\t{_hex_le(gateway)}\t0003\t0\t0\t0\t00000000\t0\t0\t0"
                     "                                                                               \n")
    lines.append(f"{iface}\t{_hex_le(str(net.network_address))}\t00000000\t0001\t0\t0\t0\t"
                 f"{_hex_le(str(net.netmask))}\t0\t0\t0"
                 "                                                                               \n")
    fr.write("/proc/net/route", "".join(lines))
    v6 = [f"fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
          f"00000000000000000000000000000000 00000100 00000002 00000000 00000001 {iface:>8}\n",
          f"ff000000000000000000000000000000 08 00000000000000000000000000000000 00 "
          f"00000000000000000000000000000000 00000100 00000003 00000000 00000001 {iface:>8}\n"]
    if ipv6:
        prefix = ipaddress.IPv6Network(ipv6)
        v6.insert(0, f"{prefix.network_address.packed.hex()} {prefix.prefixlen:02x} "
                     f"00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 "
                     f"00000000 00000001 {iface:>8}\n")
    fr.write("/proc/net/ipv6_route", "".join(v6))


def clear_routes(fr: FakeRoot) -> None:
    fr.write("/proc/net/route", ROUTE_HEADER)
    fr.write("/proc/net/ipv6_route", "")


def add_virtio_blk(fr: FakeRoot, addr: str, virtio_index: int, disk: str = "vda", *, major: int = 254,
                   partitions: int = 0) -> str:
    """The virtio-blk disk shape of the dev VM: PCI function → virtioN → block/vda (+ partitions)."""
    virtio = f"{fr.device_path(addr)}/virtio{virtio_index}"
    path = f"{virtio}/block/{disk}"
    fr.attr(f"{path}/dev", f"{major}:0")
    fr.attr(f"{path}/size", 41943040)
    fr.mkdir(f"{path}/slaves")
    fr.symlink(f"{path}/device", virtio)
    fr.symlink(f"/sys/block/{disk}", path)
    fr.symlink(f"/sys/class/block/{disk}", path)
    fr.symlink(f"/sys/dev/block/{major}:0", path)
    for n in range(1, partitions + 1):
        part = f"{path}/{disk}{n}"
        fr.attr(f"{part}/partition", n)
        fr.attr(f"{part}/dev", f"{major}:{n}")
        fr.symlink(f"/sys/class/block/{disk}{n}", part)
        fr.symlink(f"/sys/dev/block/{major}:{n}", part)
    return path


def add_lvm(fr: FakeRoot, vg: str, lv: str, pvs: Sequence[str], *, dm_index: int = 0, minor: int = 0) -> str:
    """A logical volume: dm-N over the physical volumes ``pvs`` (block device names)."""
    name = f"dm-{dm_index}"
    path = f"/sys/devices/virtual/block/{name}"
    fr.attr(f"{path}/dev", f"253:{minor}")
    fr.attr(f"{path}/dm/name", f"{vg}-{lv}")
    for pv in pvs:
        pv_path = fr.resolve(f"/sys/class/block/{pv}")
        fr.symlink(f"{path}/slaves/{pv}", pv_path)
        fr.symlink(f"{pv_path}/holders/{name}", path)
    fr.symlink(f"/sys/block/{name}", path)
    fr.symlink(f"/sys/class/block/{name}", path)
    fr.symlink(f"/sys/dev/block/253:{minor}", path)
    fr.symlink(f"/dev/mapper/{vg}-{lv}", f"/dev/{name}")
    fr.write(f"/dev/{name}", "")
    return f"/dev/mapper/{vg}-{lv}"


def set_mounts(fr: FakeRoot, mounts: Sequence[tuple]) -> None:
    """/proc/self/mountinfo and /proc/mounts for (major:minor, source, mountpoint, fstype)."""
    info, plain = [], []
    for n, (number, source, mountpoint, fstype) in enumerate(mounts, start=27):
        info.append(f"{n} 1 {number} / {mountpoint} rw,relatime - {fstype} {source} rw\n")
        plain.append(f"{source} {mountpoint} {fstype} rw,relatime 0 0\n")
    fr.write("/proc/self/mountinfo", "".join(info))
    fr.write("/proc/mounts", "".join(plain))
