"""The tiny initramfs of ``hostdev vm test --boot``: a static busybox and an /init that prints,
on the serial console, the vendor:device of every PCI function the guest kernel enumerated and
each line of its ``resource`` file (where the guest kernel placed each BAR), then powers the
guest off. Pure: bytes in, bytes out; the report is parsed back from the
console text.

The archive is the kernel's "newc" cpio format (Documentation/driver-api/early-userspace/
buffer-format.rst), gzip-compressed, which every distribution kernel unpacks.
"""

from __future__ import annotations

import gzip
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

REPORT_TAG = "@@hostdev-guest-pci"
BAR_TAG = "@@hostdev-guest-res"
DONE_TAG = "@@hostdev-guest-done"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox", "/usr/lib/initramfs-tools/bin/busybox")
# no_timer_check: a TCG guest on a busy host fails the kernel's timer-through-IO-APIC check and
# panics ("timer doesn't work through Interrupt-remapped IO-APIC", arch/x86/kernel/apic/io_apic.c)
CMDLINE = "console=ttyS0 panic=-1 loglevel=3 no_timer_check"

INIT = f"""#!/bin/busybox sh
# /init of hostdev's vm test guest: report the PCI functions this kernel sees, then power off
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for d in /sys/bus/pci/devices/*; do
  echo "{REPORT_TAG} ${{d##*/}} $(cat $d/vendor) $(cat $d/device)"
  i=0
  while read start end flags; do
    echo "{BAR_TAG} ${{d##*/}} $i $start $end $flags"
    i=$((i+1))
  done < $d/resource
done
echo "{DONE_TAG}"
poweroff -f
"""

# cpio mode bits
_DIR, _FILE, _CHR = 0o040000, 0o100000, 0o020000


def _program_headers(data: bytes) -> Optional[List[Tuple[int, int, int]]]:
    """(p_type, p_offset, p_filesz) of every program header of an ELF image, or None when
    ``data`` is not ELF (the ELF header and its program header table, elf(5))."""
    if data[:4] != b"\x7fELF" or len(data) < 64:
        return None
    is64, little = data[4] == 2, data[5] == 1
    order = "little" if little else "big"

    def num(offset: int, size: int) -> int:
        return int.from_bytes(data[offset:offset + size], order)

    phoff, phentsize, phnum = ((num(32, 8), num(54, 2), num(56, 2)) if is64 else
                               (num(28, 4), num(42, 2), num(44, 2)))
    headers = []
    for index in range(phnum):
        base = phoff + index * phentsize
        headers.append((num(base, 4), num(base + 8, 8), num(base + 32, 8)) if is64 else
                       (num(base, 4), num(base + 4, 4), num(base + 16, 4)))
    return headers


def is_static_elf(data: bytes) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP): it runs with no libraries."""
    headers = _program_headers(data)
    return headers is not None and all(p_type != 3 for p_type, _, _ in headers)  # 3: PT_INTERP


# The x86 boot protocol's bzImage header (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, the
# protocol version at 0x206, setup_sects at 0x1f1 (0 means 4), and from version 2.08 the
# compressed payload's offset and length (0x248, 0x24c) within the protected-mode code, which
# starts after the setup sectors.
_BZ_MAX_VMLINUX = 512 << 20
_PT_NOTE = 4
_XEN_ELFNOTE_PHYS32_ENTRY = 18  # include/xen/interface/elfnote.h: the PVH entry point


def bzimage_vmlinux(image: bytes) -> Optional[bytes]:
    """The uncompressed kernel (vmlinux, an ELF image) inside an x86 bzImage, or None when
    ``image`` is no bzImage or its payload is compressed with a method the standard library does
    not read (zstd, lz4, lzo: then boot the bzImage itself)."""
    import bz2
    import lzma
    import zlib

    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS" or int.from_bytes(image[0x206:0x208], "little") < 0x208:
        return None
    setup_sects = image[0x1F1] or 4
    start = (setup_sects + 1) * 512 + int.from_bytes(image[0x248:0x24C], "little")
    payload = image[start:start + int.from_bytes(image[0x24C:0x250], "little")]
    if payload[:2] == b"\x1f\x8b":
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif payload[:6] == b"\xfd7zXZ\x00":
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_XZ)
    elif payload[:3] == b"\x5d\x00\x00":
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    elif payload[:3] == b"BZh":
        decompressor = bz2.BZ2Decompressor()
    else:
        return None
    try:
        vmlinux = decompressor.decompress(payload, _BZ_MAX_VMLINUX)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None
    return vmlinux if vmlinux[:4] == b"\x7fELF" else None


def has_pvh_entry(elf: bytes) -> bool:
    """Whether an ELF kernel has the PVH entry point note (Xen's XEN_ELFNOTE_PHYS32_ENTRY; Linux
    with CONFIG_PVH): QEMU's -kernel then boots it directly, with no decompression in the guest."""
    for p_type, offset, size in _program_headers(elf) or []:
        if p_type != _PT_NOTE:
            continue
        note, end = offset, offset + size
        while note + 12 <= end:  # namesz, descsz, type; name and desc padded to 4 bytes (elf(5))
            namesz, descsz, n_type = (int.from_bytes(elf[note + i:note + i + 4], "little") for i in (0, 4, 8))
            name = elf[note + 12:note + 12 + namesz]
            if name == b"Xen\x00" and n_type == _XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            note += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def direct_boot_kernel(image: bytes) -> Optional[bytes]:
    """The uncompressed, directly bootable (PVH) kernel inside ``image``, or None.

    Why: under TCG, and worse nested in a TCG guest, the guest's own decompression of an XZ
    bzImage is most of the boot (Debian 12's kernel: 93 s to power-off against 32 s for the
    same kernel booted through PVH, measured on a loaded 2-core machine; docs/vm-test.md)."""
    vmlinux = bzimage_vmlinux(image)
    return vmlinux if vmlinux is not None and has_pvh_entry(vmlinux) else None


class _Entry(NamedTuple):
    name: str
    mode: int
    data: bytes = b""
    rdev: Tuple[int, int] = (0, 0)


def cpio_newc(entries: Sequence[_Entry]) -> bytes:
    """A newc cpio archive of ``entries`` (uid/gid 0, mtime 0: the same input, the same bytes)."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, entry in enumerate(list(entries) + [_Entry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (ino if entry.name != "TRAILER!!!" else 0, entry.mode, 0, 0,
                  2 if entry.mode & _DIR else 1, 0, len(entry.data), 0, 0, entry.rdev[0], entry.rdev[1],
                  len(name), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.extend(name)
        pad()
        out.extend(entry.data)
        pad()
    return bytes(out)


def build_initramfs(busybox: bytes) -> bytes:
    """The gzip'd initramfs: /init, /bin/busybox, /dev/console (the kernel opens it for init's
    output before any devtmpfs exists), and the mount points."""
    entries = [_Entry(d, _DIR | 0o755) for d in ("bin", "dev", "proc", "sys")]
    entries += [_Entry("dev/console", _CHR | 0o600, rdev=(5, 1)),
                _Entry("bin/busybox", _FILE | 0o755, busybox),
                _Entry("init", _FILE | 0o755, INIT.encode())]
    return gzip.compress(cpio_newc(entries), mtime=0)


class GuestReport(NamedTuple):
    """What the booted guest printed: address → "vvvv:dddd" of each PCI function it saw, and
    address → [(resource index, start, end, flags)] of its non-empty resources."""

    pci: Dict[str, str]
    done: bool
    console_seen: bool = True   # the console log had any text at all
    resources: Dict[str, List[Tuple[int, int, int, int]]] = {}

    def ids(self) -> List[str]:
        return sorted(set(self.pci.values()))


def parse_report(console: str) -> GuestReport:
    """The report lines in the guest's console output (kernel messages around them ignored)."""
    pci: Dict[str, str] = {}
    resources: Dict[str, List[Tuple[int, int, int, int]]] = {}
    done = False
    for line in console.replace("\r", "").splitlines():
        at = line.find(BAR_TAG)
        if at >= 0:
            words = line[at + len(BAR_TAG):].split()
            try:
                index, start, end, flags = int(words[1]), int(words[2], 16), int(words[3], 16), int(words[4], 16)
            except (IndexError, ValueError):
                continue
            if flags:
                resources.setdefault(words[0], []).append((index, start, end, flags))
            continue
        at = line.find(REPORT_TAG)
        if at >= 0:
            words = line[at + len(REPORT_TAG):].split()
            if len(words) == 3:
                pci[words[0]] = f"{_hex4(words[1])}:{_hex4(words[2])}"
        elif DONE_TAG in line:
            done = True
    return GuestReport(pci, done, bool(console.strip()), resources)


def _hex4(text: str) -> str:
    return text.lower().replace("0x", "").rjust(4, "0")


def default_kernel(release: Optional[str], exists) -> Optional[str]:
    """The host's own kernel image for ``release`` (/boot/vmlinuz-REL, or the distro's other
    spellings), or None; ``exists`` answers for a path."""
    if not release:
        return None
    for path in (f"/boot/vmlinuz-{release}", f"/boot/vmlinux-{release}", f"/usr/lib/modules/{release}/vmlinuz",
                 f"/lib/modules/{release}/vmlinuz"):
        if exists(path):
            return path
    return None
