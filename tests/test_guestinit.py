"""The initramfs of hostdev vm test --boot, read back with the real cpio and gzip tools."""
import gzip
import os
import subprocess

import pytest

from hostdev import guestinit


def test_initramfs_lists_as_the_kernel_will_unpack_it(tmp_path):
    busybox = b"\x7fELF-not-really-busybox"
    archive = tmp_path / "initrd.img"
    archive.write_bytes(guestinit.build_initramfs(busybox))
    listing = subprocess.run(["cpio", "-itv"], input=gzip.decompress(archive.read_bytes()),
                             capture_output=True, check=True).stdout.decode()
    lines = {line.split()[-1]: line for line in listing.splitlines()}
    assert sorted(lines) == ["bin", "bin/busybox", "dev", "dev/console", "init", "proc", "sys"]
    assert lines["dev/console"].startswith("crw-------") and "5,   1" in lines["dev/console"]
    assert lines["init"].startswith("-rwxr-xr-x") and lines["bin"].startswith("drwxr-xr-x")
    # the same input gives the same bytes (no timestamps)
    assert guestinit.build_initramfs(busybox) == archive.read_bytes()


def test_init_reports_every_pci_function_then_powers_off():
    assert guestinit.INIT.startswith("#!/bin/busybox sh\n")
    assert 'echo "@@hostdev-guest-pci ${d##*/} $(cat $d/vendor) $(cat $d/device)"' in guestinit.INIT
    assert guestinit.INIT.rstrip().endswith("poweroff -f")


@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static is a test package")
def test_static_busybox_is_told_from_a_dynamic_program():
    with open("/bin/busybox", "rb") as handle:
        assert guestinit.is_static_elf(handle.read())
    with open("/bin/ls", "rb") as handle:
        assert not guestinit.is_static_elf(handle.read())
    assert not guestinit.is_static_elf(b"#!/bin/sh\n")


def test_default_kernel_is_the_running_release():
    present = {"/boot/vmlinuz-6.1.0-56-amd64"}
    assert guestinit.default_kernel("6.1.0-56-amd64", present.__contains__) == "/boot/vmlinuz-6.1.0-56-amd64"
    assert guestinit.default_kernel("6.8.0", present.__contains__) is None
    assert guestinit.default_kernel(None, present.__contains__) is None


# ---------------------------------------------------------------- the directly bootable (PVH) kernel
def _note(name: bytes, n_type: int, desc: bytes) -> bytes:
    """One ELF note: namesz, descsz, type, then name and desc each padded to 4 bytes (elf(5))."""
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return (len(name).to_bytes(4, "little") + len(desc).to_bytes(4, "little") + n_type.to_bytes(4, "little")
            + pad(name) + pad(desc))


def _elf64_with_notes(notes: bytes) -> bytes:
    """A 64-bit little-endian ELF executable whose one program header is a PT_NOTE (type 4) over
    ``notes``, which start at byte 120 (64-byte ELF header + one 56-byte program header)."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    header = (ident + (2).to_bytes(2, "little") + (0x3E).to_bytes(2, "little") + (1).to_bytes(4, "little")
              + (0).to_bytes(8, "little") + (64).to_bytes(8, "little") + (0).to_bytes(8, "little")
              + (0).to_bytes(4, "little") + (64).to_bytes(2, "little") + (56).to_bytes(2, "little")
              + (1).to_bytes(2, "little") + b"\0" * 6)
    phdr = ((4).to_bytes(4, "little") + (4).to_bytes(4, "little") + (120).to_bytes(8, "little")
            + b"\0" * 16 + len(notes).to_bytes(8, "little") + len(notes).to_bytes(8, "little")
            + (4).to_bytes(8, "little"))
    assert len(header) == 64 and len(phdr) == 56
    return header + phdr + notes


def _bzimage(payload: bytes, setup_sects: int = 1, version: int = 0x020F) -> bytes:
    """An x86 bzImage as Documentation/arch/x86/boot.rst lays it out: setup_sects at 0x1f1, "HdrS" at
    0x202, the version at 0x206, payload_offset/payload_length at 0x248/0x24c; the protected-mode
    code starts after (setup_sects + 1) sectors, the payload 16 bytes into it here."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = version.to_bytes(2, "little")
    setup[0x248:0x24C] = (16).to_bytes(4, "little")
    setup[0x24C:0x250] = len(payload).to_bytes(4, "little")
    return bytes(setup) + b"\x90" * 16 + payload + b"trailing code and data"


PVH_NOTE = _note(b"Xen\0", 18, (0x1000000).to_bytes(4, "little"))  # XEN_ELFNOTE_PHYS32_ENTRY
GNU_NOTE = _note(b"GNU\0", 3, b"\x11" * 20)                         # a build-id before it


def test_a_bzimage_kernel_with_the_pvh_note_is_taken_out_whatever_the_stdlib_compression():
    import bz2
    import lzma

    vmlinux = _elf64_with_notes(GNU_NOTE + PVH_NOTE)
    for compressed in (gzip.compress(vmlinux), lzma.compress(vmlinux, format=lzma.FORMAT_XZ),
                       lzma.compress(vmlinux, format=lzma.FORMAT_ALONE), bz2.compress(vmlinux)):
        assert guestinit.direct_boot_kernel(_bzimage(compressed)) == vmlinux
    # setup_sects 0 means 4 (boot.rst): the header says 0, the code starts after 5 sectors
    four = bytearray(_bzimage(gzip.compress(vmlinux), setup_sects=4))
    four[0x1F1] = 0
    assert guestinit.direct_boot_kernel(bytes(four)) == vmlinux


def test_no_direct_boot_without_the_note_or_a_payload_the_stdlib_reads():
    assert guestinit.direct_boot_kernel(_bzimage(gzip.compress(_elf64_with_notes(GNU_NOTE)))) is None
    # zstd (Ubuntu's kernels) and lz4: boot the bzImage itself
    assert guestinit.direct_boot_kernel(_bzimage(b"\x28\xb5\x2f\xfd" + b"\0" * 64)) is None
    assert guestinit.direct_boot_kernel(_bzimage(b"\x02\x21\x4c\x18" + b"\0" * 64)) is None
    # protocol before 2.08 has no payload fields; not a bzImage at all; a corrupt payload
    assert guestinit.direct_boot_kernel(_bzimage(gzip.compress(_elf64_with_notes(PVH_NOTE)), version=0x0207)) is None
    assert guestinit.direct_boot_kernel(b"MZ not a kernel") is None
    assert guestinit.direct_boot_kernel(_bzimage(b"\x1f\x8b" + b"\xff" * 64)) is None
    # a compressed payload that is not an ELF image
    assert guestinit.direct_boot_kernel(_bzimage(gzip.compress(b"not an ELF image" * 10))) is None


def test_debians_kernel_boots_directly():
    # linux-image-amd64 is a test package (scripts/apt-test-packages.txt): Debian's kernel is an XZ
    # bzImage with CONFIG_PVH=y, the case that makes the nested --boot fast
    images = sorted(p for p in os.listdir("/boot") if p.startswith("vmlinuz-"))
    assert images, "no /boot/vmlinuz-*: install linux-image-amd64 (scripts/apt-test-packages.txt)"
    with open(os.path.join("/boot", images[-1]), "rb") as handle:
        vmlinux = guestinit.direct_boot_kernel(handle.read())
    assert vmlinux is not None and vmlinux[:4] == b"\x7fELF" and guestinit.has_pvh_entry(vmlinux)
