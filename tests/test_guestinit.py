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
