#!/usr/bin/env python3
"""Generate a synthetic sysfs tree with N PCI functions under ROOT (ROOT/sys/...).

    python bench/gen_tree.py ROOT N [--force]

The tree is what ``hostdev --root ROOT`` and ``lspci -A linux-sysfs -O sysfs.path=ROOT/sys/bus/pci``
(note: lspci's sysfs.path is the PCI bus directory, default /sys/bus/pci, not the sysfs mount)
both read. It mirrors the kernel's layout:

* ``sys/devices/pciDDDD:00/DDDD:00:SS.F[/DDDD:BB:SS.F]`` — a host bridge and root ports on bus 00
  of each domain, one card behind each root port on its own bus;
* ``sys/bus/pci/devices/ADDR`` — relative links to the device directories;
* ``sys/bus/pci/drivers/NAME/ADDR`` and ``ADDR/driver`` — relative links both ways;
* ``sys/kernel/iommu_groups/G/devices/ADDR`` and ``ADDR/iommu_group`` — relative links;
* attributes as the kernel writes them (``"0x10de\\n"``, ``"(null)\\n"``, ``resource`` lines,
  ``uevent`` with DRIVER/PCI_CLASS/PCI_ID/PCI_SUBSYS_ID …),
  ``sriov_*`` on PFs, ``virtfnN``/``physfn`` links, ``mdev_supported_types`` on vGPU parents,
  and a 256-byte ``config`` (the type 0/1 header) that lspci reads.

The card mix cycles: an NVIDIA T4 on ``nvidia`` with mdev types, an Intel E810 (2 PFs, 8 VFs
each), a Samsung NVMe, an RTX 3090 + its audio function on vfio-pci (one IOMMU group), a
ConnectX-6 (1 PF, 16 VFs), an A100 on vfio-pci. Every function has its own IOMMU group except
the GPU + audio pair. Exactly N functions are written (the last card is cut short if needed).

Standard library only; never writes outside ROOT and refuses ROOT=/ or the real /sys.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import time

# ------------------------------------------------------------------ the card catalogue
# (vendor, device, subsystem vendor, subsystem device, class, revision, driver)
HOST_BRIDGE = (0x1022, 0x1480, 0x1022, 0x1480, 0x060000, 0x00, None)
ROOT_PORT = (0x1022, 0x1483, 0x1022, 0x1453, 0x060400, 0x00, "pcieport")
T4 = (0x10DE, 0x1EB8, 0x10DE, 0x12A2, 0x030200, 0xA1, "nvidia")
RTX3090 = (0x10DE, 0x2204, 0x10DE, 0x147D, 0x030000, 0xA1, "vfio-pci")
RTX3090_AUDIO = (0x10DE, 0x1AEF, 0x10DE, 0x147D, 0x040300, 0xA1, "vfio-pci")
A100 = (0x10DE, 0x20B0, 0x10DE, 0x134F, 0x030200, 0xA1, "vfio-pci")
E810_PF = (0x8086, 0x1593, 0x8086, 0x0002, 0x020000, 0x02, "ice")
E810_VF = (0x8086, 0x1889, 0x8086, 0x0000, 0x020000, 0x02, "iavf")
CX6_PF = (0x15B3, 0x101B, 0x15B3, 0x0007, 0x020000, 0x00, "mlx5_core")
CX6_VF = (0x15B3, 0x101C, 0x15B3, 0x0007, 0x020000, 0x00, "mlx5_core")
NVME = (0x144D, 0xA80A, 0x144D, 0xA813, 0x010802, 0x00, "nvme")

MDEV_TYPES = ("nvidia-222", "nvidia-223", "nvidia-224", "nvidia-230")


def card_gpu_mdev():
    return [dict(ident=T4, mdev=True, boot_vga=False)]


def card_gpu_audio():
    # one IOMMU group for both functions (no ACS between functions of a consumer GPU)
    return [dict(ident=RTX3090, boot_vga=True, shared_group=True, override="vfio-pci"),
            dict(ident=RTX3090_AUDIO, shared_group=True, override="vfio-pci")]


def card_e810():
    pfs = [dict(ident=E810_PF, pf=True, total_vfs=128, vfs=[]) for _ in range(2)]
    out = list(pfs)
    for pf_index, pf in enumerate(pfs):
        for i in range(8):
            vf = dict(ident=E810_VF if i % 2 == 0 else E810_VF[:6] + ("vfio-pci",), vf_of=pf_index, vf_index=i)
            pf["vfs"].append(vf)
            out.append(vf)
    return out


def card_cx6():
    pf = dict(ident=CX6_PF, pf=True, total_vfs=127, vfs=[])
    out = [pf]
    for i in range(16):
        vf = dict(ident=CX6_VF if i < 8 else CX6_VF[:6] + ("vfio-pci",), vf_of=0, vf_index=i)
        pf["vfs"].append(vf)
        out.append(vf)
    return out


def card_nvme():
    return [dict(ident=NVME)]


def card_a100():
    return [dict(ident=A100, override="vfio-pci")]


CARDS = (card_gpu_mdev, card_e810, card_nvme, card_gpu_audio, card_cx6, card_a100)


# ------------------------------------------------------------------ file content
def config_space(ident, header_type: int, multifunction: bool, bus: int = 0, secondary: int = 0) -> bytes:
    """The 256-byte configuration space lspci reads (no capability list)."""
    vendor, device, svid, sdid, cls, rev, _ = ident
    cfg = bytearray(256)
    struct.pack_into("<HHHH", cfg, 0, vendor, device, 0x0406, 0x0000)
    cfg[8] = rev
    cfg[9] = cls & 0xFF
    cfg[10] = (cls >> 8) & 0xFF
    cfg[11] = (cls >> 16) & 0xFF
    cfg[14] = header_type | (0x80 if multifunction else 0)
    if header_type == 0:
        struct.pack_into("<HH", cfg, 0x2C, svid, sdid)
        cfg[0x3D] = 1
    else:
        cfg[0x18], cfg[0x19], cfg[0x1A] = bus, secondary, secondary
    return bytes(cfg)


def resource_text(count: int, base: int) -> bytes:
    lines = []
    for i in range(count):
        if i < 2 and base:
            start = base + i * 0x1000000
            lines.append(f"0x{start:016x} 0x{start + 0xFFFFFF:016x} 0x{0x140204:016x}\n")
        else:
            lines.append(f"0x{0:016x} 0x{0:016x} 0x{0:016x}\n")
    return "".join(lines).encode()


_ZERO_RES_BRIDGE = resource_text(17, 0)
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write(dfd: int, name: str, data: bytes) -> None:
    fd = os.open(name, _FLAGS, 0o644, dir_fd=dfd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ layout
class Fn:
    """One function to write."""

    __slots__ = ("addr", "path", "ident", "spec", "group", "header", "multi", "bus", "secondary", "pf_addr",
                 "vf_addrs", "numa")

    def __init__(self, addr, path, ident, spec, header=0, multi=False, bus=0, secondary=0, numa=0):
        self.addr, self.path, self.ident, self.spec = addr, path, ident, spec
        self.header, self.multi, self.bus, self.secondary, self.numa = header, multi, bus, secondary, numa
        self.group = None
        self.pf_addr = None
        self.vf_addrs = []


def plan(n: int):
    """The list of functions: exact count n, valid addresses, several domains."""
    fns = []
    domain = -1
    bus00_slot = bus00_func = next_bus = 0
    card_index = 0

    def new_domain():
        nonlocal domain, bus00_slot, bus00_func, next_bus
        domain += 1
        bus00_slot, bus00_func, next_bus = 0, 0, 1
        addr = f"{domain:04x}:00:00.0"
        fns.append(Fn(addr, f"devices/pci{domain:04x}:00/{addr}", HOST_BRIDGE, {}, numa=domain % 2))
        bus00_slot = 1

    new_domain()
    while len(fns) < n:
        if bus00_slot > 0x1F or next_bus > 0xFF:
            new_domain()
            continue
        # a root port on bus 00 (8 per slot, like AMD's GPP bridges)
        rp_addr = f"{domain:04x}:00:{bus00_slot:02x}.{bus00_func}"
        bus = next_bus
        rp = Fn(rp_addr, f"devices/pci{domain:04x}:00/{rp_addr}", ROOT_PORT, {}, header=1, multi=True,
                bus=0, secondary=bus, numa=domain % 2)
        fns.append(rp)
        bus00_func += 1
        if bus00_func == 8:
            bus00_slot, bus00_func = bus00_slot + 1, 0
        next_bus += 1
        if len(fns) >= n:
            break
        specs = CARDS[card_index % len(CARDS)]()
        card_index += 1
        specs = specs[: n - len(fns)]
        card = []
        for i, spec in enumerate(specs):
            slot, func = divmod(i, 8)
            addr = f"{domain:04x}:{bus:02x}:{slot:02x}.{func}"
            fn = Fn(addr, f"{rp.path}/{addr}", spec["ident"], spec, multi=len(specs) > 1, numa=domain % 2)
            card.append(fn)
        # SR-IOV links (PFs come first in each card; VFs name their PF by index)
        pfs = [f for f in card if f.spec.get("pf")]
        for f in card:
            if "vf_of" in f.spec and f.spec["vf_of"] < len(pfs):
                pf = pfs[f.spec["vf_of"]]
                f.pf_addr = pf.addr
                pf.vf_addrs.append(f.addr)
        fns.extend(card)
    # IOMMU groups: one per function, the GPU + audio pair shares the GPU's
    group = -1
    prev = None
    for f in fns:
        if f.spec.get("shared_group") and prev is not None and prev.spec.get("shared_group") \
                and f.ident is RTX3090_AUDIO:
            f.group = group
        else:
            group += 1
            f.group = group
        prev = f
    return fns


def _write_function(sysdir: str, f: Fn, base: int) -> None:
    """Attributes, config and links of one function (its directory exists)."""
    full = os.path.join(sysdir, f.path)
    vendor, device, svid, sdid, cls, rev, driver = f.ident
    dfd = os.open(full, os.O_RDONLY | os.O_DIRECTORY)
    try:
        w = _write
        w(dfd, "vendor", b"0x%04x\n" % vendor)
        w(dfd, "device", b"0x%04x\n" % device)
        w(dfd, "subsystem_vendor", b"0x%04x\n" % svid)
        w(dfd, "subsystem_device", b"0x%04x\n" % sdid)
        w(dfd, "class", b"0x%06x\n" % cls)
        w(dfd, "revision", b"0x%02x\n" % rev)
        w(dfd, "numa_node", b"%d\n" % f.numa)
        w(dfd, "local_cpulist", b"0-15\n" if f.numa == 0 else b"16-31\n")
        w(dfd, "driver_override", (f.spec.get("override") or "(null)").encode() + b"\n")
        w(dfd, "irq", b"%d\n" % (f.group % 200 + 24))
        w(dfd, "enable", b"1\n" if driver else b"0\n")
        w(dfd, "reset_method", b"flr bus\n")
        modalias = b"pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X" % (
            vendor, device, svid, sdid, cls >> 16, (cls >> 8) & 0xFF, cls & 0xFF)
        w(dfd, "modalias", modalias + b"\n")
        # drivers/pci/pci-driver.c pci_uevent() after the driver core's DRIVER= line
        w(dfd, "uevent", (b"DRIVER=%s\n" % driver.encode() if driver else b"")
          + b"PCI_CLASS=%X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\nMODALIAS=%s\n" % (
              cls, vendor, device, svid, sdid, f.addr.encode(), modalias))
        if f.header == 1:
            w(dfd, "resource", _ZERO_RES_BRIDGE)
            w(dfd, "config", config_space(f.ident, 1, f.multi, f.bus, f.secondary))
        else:
            w(dfd, "resource", resource_text(13, base))
            w(dfd, "config", config_space(f.ident, 0, f.multi))
        if cls >> 8 == 0x0300:
            w(dfd, "boot_vga", b"1\n" if f.spec.get("boot_vga") else b"0\n")
        if f.spec.get("pf"):
            w(dfd, "sriov_totalvfs", b"%d\n" % f.spec["total_vfs"])
            w(dfd, "sriov_numvfs", b"%d\n" % len(f.vf_addrs))
            w(dfd, "sriov_offset", b"8\n")
            w(dfd, "sriov_stride", b"1\n")
            w(dfd, "sriov_vf_device", b"%04x\n" % (E810_VF[1] if vendor == 0x8086 else CX6_VF[1]))
            w(dfd, "sriov_drivers_autoprobe", b"1\n")
            for i, vf in enumerate(f.vf_addrs):
                os.symlink(f"../{vf}", f"virtfn{i}", dir_fd=dfd)
        if f.pf_addr:
            os.symlink(f"../{f.pf_addr}", "physfn", dir_fd=dfd)
        if f.spec.get("mdev"):
            for t in MDEV_TYPES:
                tdir = os.path.join(full, "mdev_supported_types", t)
                os.makedirs(os.path.join(tdir, "devices"))
                _write_plain(os.path.join(tdir, "name"), f"GRID T4-{t[-1]}Q\n")
                _write_plain(os.path.join(tdir, "available_instances"), "4\n")
                _write_plain(os.path.join(tdir, "device_api"), "vfio-pci\n")
        up = "../" * (f.path.count("/") + 1)  # from the device directory back to sys/
        os.symlink(f"{up}bus/pci", "subsystem", dir_fd=dfd)
        os.symlink(f"{up}kernel/iommu_groups/{f.group}", "iommu_group", dir_fd=dfd)
        if driver:
            os.symlink(f"{up}bus/pci/drivers/{driver}", "driver", dir_fd=dfd)
    finally:
        os.close(dfd)
    os.symlink(f"../../../{f.path}", os.path.join(sysdir, "bus", "pci", "devices", f.addr))
    if driver:
        os.symlink(f"../../../../{f.path}", os.path.join(sysdir, "bus", "pci", "drivers", driver, f.addr))
    os.symlink(f"../../../../{f.path}", os.path.join(sysdir, "kernel", "iommu_groups", str(f.group), "devices", f.addr))


_WORK = None  # (sysdir, fns) for forked workers


def _worker(part: range) -> int:
    sysdir, fns = _WORK
    for i in part:
        _write_function(sysdir, fns[i], 0xF0000000 + i * 0x2000000)
    return len(part)


def generate(root: str, n: int, jobs: int = 1) -> int:
    """Write the tree; ``jobs`` > 1 writes functions from forked processes (the file system,
    not Python, is the bottleneck: ~15k files/s on ext4, ~25k/s on tmpfs per process)."""
    global _WORK
    sysdir = os.path.join(root, "sys")
    fns = plan(n)
    drivers_dir = os.path.join(sysdir, "bus", "pci", "drivers")
    groups_dir = os.path.join(sysdir, "kernel", "iommu_groups")
    for d in (os.path.join(sysdir, "bus", "pci", "devices"), drivers_dir, groups_dir,
              os.path.join(sysdir, "bus", "pci", "slots")):
        os.makedirs(d, exist_ok=True)
    # shared directories first, so that workers only create entries inside them
    drivers = {f.ident[6] for f in fns if f.ident[6]} | {"vfio-pci", "pci-stub"}
    for name in sorted(drivers):
        ddir = os.path.join(drivers_dir, name)
        os.mkdir(ddir)
        for attr in ("bind", "unbind", "new_id", "remove_id"):
            _write_plain(os.path.join(ddir, attr), "")
    for group in sorted({f.group for f in fns}):
        gdir = os.path.join(groups_dir, str(group))
        os.makedirs(os.path.join(gdir, "devices"))
        _write_plain(os.path.join(gdir, "type"), "DMA-FQ\n")
    for f in fns:  # parents before children: plan() lists a root port before its card
        os.makedirs(os.path.join(sysdir, f.path), exist_ok=True)
    jobs = max(1, min(jobs, len(fns) // 512 or 1))
    if jobs == 1 or not hasattr(os, "fork"):
        _WORK = (sysdir, fns)
        _worker(range(len(fns)))
    else:
        import multiprocessing

        _WORK = (sysdir, fns)
        ctx = multiprocessing.get_context("fork")
        parts = [range(i, len(fns), jobs) for i in range(jobs)]
        with ctx.Pool(jobs) as pool:
            pool.map(_worker, parts)
    return len(fns)


def _write_plain(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


PCI_IDS_PATHS = ("/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids")


def copy_pci_ids(root: str, source) -> None:
    """hostdev reads pci.ids under its --root (ROOT/usr/share/misc/pci.ids); lspci reads the
    host's. Copy the host's so both name devices from the same database."""
    if source == "none":
        return
    if source is None:
        source = next((p for p in PCI_IDS_PATHS if os.path.exists(p)), None)
        if source is None:
            print("gen_tree: no pci.ids on this host; hostdev will print no names", file=sys.stderr)
            return
    dest = os.path.join(root, "usr", "share", "misc", "pci.ids")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(source, dest)


def _refuse_unsafe(root: str) -> None:
    real = os.path.realpath(root)
    if real == "/" or os.path.realpath(os.path.join(real, "sys")) == "/sys" or real.startswith(("/sys", "/proc")):
        sys.exit(f"gen_tree: refusing to write under {real!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="directory to create the tree in (ROOT/sys/...)")
    parser.add_argument("n", type=int, help="number of PCI functions")
    parser.add_argument("--force", action="store_true", help="remove ROOT/sys first if it exists")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="writer processes (default 1; more helps on tmpfs, hurts on ext4)")
    parser.add_argument("--pci-ids", default=None, metavar="FILE",
                        help="pci.ids to copy to ROOT/usr/share/misc/pci.ids (default: the host's); "
                             "'none' to copy nothing")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("N must be at least 1")
    _refuse_unsafe(args.root)
    sysdir = os.path.join(args.root, "sys")
    if os.path.lexists(sysdir):
        if not args.force:
            sys.exit(f"gen_tree: {sysdir} exists (use --force to replace it)")
        shutil.rmtree(sysdir)
    start = time.perf_counter()
    count = generate(args.root, args.n, args.jobs)
    copy_pci_ids(args.root, args.pci_ids)
    print(f"gen_tree: {count} functions under {os.path.join(args.root, 'sys')} "
          f"in {time.perf_counter() - start:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
