"""Boot a real Linux kernel under QEMU (TCG) and run commands in it: the real-kernel test harness.

The guest is a throwaway machine: q35 with an emulated Intel IOMMU and a fixed set of emulated
PCI devices (see ``DEVICES``). A tiny busybox initramfs mounts the host's ``/`` read-only over
9p, puts tmpfs overlays on ``/etc /var /tmp /root /boot``, a tmpfs on ``/run`` and a writable 9p share
at ``/run/vmout``, chroots into the host's root and runs ``/run/vmout/cmd.sh``. The exit code of
that script is written to ``/run/vmout/rc`` and the guest powers off. Nothing the guest does can
reach the host's ``/sys`` or disk: every bind/unbind/modprobe happens in the guest's own kernel.

Only the standard library is used here, so the plugin can import this module anywhere. Every
host command runs with an argv list (no shell); the guest side is a busybox/dash script.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import lzma
import os
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from hostdev.host import TEST_GUEST_TOKEN

from . import speed

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "realkernel"
GUEST_SETUP = HERE / "guest_setup.sh"

# The token that tells hostdev (hostdev/host.py ``in_test_guest``) and the test guards that they
# run inside this throwaway guest. Never put it on a real machine's command line.
GUEST_TOKEN = TEST_GUEST_TOKEN
# no_timer_check: under TCG on a busy host the kernel's check that the timer interrupt arrives through
# the (interrupt-remapped) IO-APIC times out and it panics, "timer doesn't work through
# Interrupt-remapped IO-APIC" (arch/x86/kernel/apic/io_apic.c check_timer; seen here at load 14).
KERNEL_CMDLINE = ("console=ttyS0", "quiet", "loglevel=1", "panic=-1", "intel_iommu=on", "no_timer_check",
                  GUEST_TOKEN)

QEMU_BINARY = "qemu-system-x86_64"
# QEMU 10 from Debian's bookworm-backports, unpacked (never installed) by scripts/fetch-qemu.sh:
# Debian 12's QEMU 7.2 has no SR-IOV device, QEMU 8.0 added igb (the Intel 82576, with SR-IOV)
QEMU_CACHE = REPO_ROOT / ".cache" / "qemu" / "root"
QEMU_ENV = "HOSTDEV_VM_QEMU"   # "system": the QEMU on PATH even when the backport is unpacked
SRIOV_QEMU = (8, 0)
FETCH_QEMU = "scripts/fetch-qemu.sh"
DEFAULT_MEM = "2G"
DEFAULT_SMP = 2

# The emulated PCI devices, pinned to fixed addresses so BDFs are stable in tests:
#   00:10.0 edu (1234:11e8, no driver)      00:11.0 e1000e (8086:10d3)   00:12.0 pci-testdev (1b36:0005)
#   00:13.0 pcie-pci-bridge -> 01:01.0 edu + 01:03.0 e1000 (8086:100e), all three in one IOMMU group
#   00:14.0 virtio-net (1af4:1041): the cloud VM's NIC, for the route interlocks (tests/behaviour/test_in_use_real.py)
# The NICs have no netdev backend at all: the guest cannot send or receive a single packet.
DEVICES = (
    "edu,addr=0x10",
    "e1000e,addr=0x11,romfile=",
    "pci-testdev,addr=0x12",
    "pcie-pci-bridge,id=br1,bus=pcie.0,addr=0x13",
    "edu,bus=br1,addr=0x1",
    "e1000,bus=br1,addr=0x3,romfile=",
    "virtio-net-pci,addr=0x14,romfile=,disable-legacy=on",
    # a 1 TiB 64-bit prefetchable BAR2 (its shared memory), too large for a nested guest's default
    # 40-bit address space: vm test's BAR check (tests/behaviour/test_vm_bars_real.py). The backend
    # is never touched: reserve=off maps it without committing memory.
    "ivshmem-plain,memdev=bigbar,addr=0x1e",
)
# With a QEMU that has igb (``Qemu.sriov``): a PCIe root port at 00:1c.0 (bus 02; it has ACS, so
# what sits below it gets its own IOMMU groups) and the igb PF behind it, 0000:02:00.0 (8086:10c9,
# sriov_totalvfs 7), for the SR-IOV tests (tests/behaviour/test_sriov_real.py). Its VFs (8086:10ca)
# appear at First VF Offset 0x80, VF Stride 2 on bus 02: 02:10.0, 02:10.2, ...
SRIOV_DEVICES = (
    "pcie-root-port,id=rp1,bus=pcie.0,addr=0x1c,chassis=1",
    "igb,bus=rp1,addr=0x0,romfile=",
)
# The emulated IOMMU. aw-bits=39 (a 39-bit IOVA space) is QEMU 7.2's default, pinned because QEMU
# 9.2 raised it to 48: with 48 bits the nested QEMU's vfio maps ivshmem's 1 TiB BAR (at IOVA 1 TiB)
# through the guest's IOMMU, and the guest ran out of its 2 GiB doing it (OOM during
# tests/behaviour/test_vm_bars_real.py, first run under QEMU 10); with 39 that map is refused as
# under 7.2 and the guest keeps the shape every test was written against.
INTEL_IOMMU = "intremap=on,caching-mode=on,aw-bits=39"
# Objects the devices need (before them on the command line)
OBJECTS = ("memory-backend-ram,id=bigbar,size=1T,reserve=off,share=on",)
# The guest CPU's physical address bits: TCG's default is 40 (1 TiB), too few for the 1 TiB BAR
# above RAM and for a nested guest raised past 40 bits (libvirt refuses more bits than the host has)
PHYS_BITS = 46

# Modules the initramfs loads before it can mount the host's root (their dependencies are added
# from modules.dep; built-in ones are skipped).
INITRAMFS_MODULES = ("9p", "9pnet_virtio", "virtio_pci", "overlay")

MARKER = "@@hostdev-vm"
_MARKER_RE = re.compile(re.escape(MARKER) + r" (.*)$", re.M)
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

INIT_SCRIPT = r"""#!/bin/busybox sh
# /init of the hostdev real-kernel test initramfs (generated by tests/realkernel/vm.py)
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for m in $(cat /mods/order); do insmod /mods/$m.ko 2>/dev/null; done
die() { echo "@@hostdev-vm init-error=$1"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /newroot || die 9p-root-mount
mount -t tmpfs rw /rw
for d in etc var tmp root boot; do
  mkdir -p /rw/$d/u /rw/$d/w
  mount -t overlay ov_$d -o lowerdir=/newroot/$d,upperdir=/rw/$d/u,workdir=/rw/$d/w /newroot/$d || die overlay-$d
done
mount -t tmpfs run /newroot/run; mkdir -p /newroot/run/vmout
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmout /newroot/run/vmout || die 9p-vmout-mount
[ -f /newroot/run/vmout/cmd.sh ] || die no-cmd.sh
mount --move /proc /newroot/proc; mount --move /sys /newroot/sys; mount --move /dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm; mount -t devpts devpts /newroot/dev/pts; mount -t tmpfs shm /newroot/dev/shm
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null
hostname vmtest
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C.UTF-8
chroot /newroot /bin/sh -c 'cd /; exec /bin/sh /run/vmout/cmd.sh' </dev/null >/dev/console 2>&1
rc=$?
echo $rc > /newroot/run/vmout/rc; sync
echo "@@hostdev-vm rc=$rc"
poweroff -f
"""

_INITRAMFS_FORMAT = "1"  # bump when the layout (not the init script) changes


class HarnessError(Exception):
    """The guest could not be prepared (missing tool, kernel, module, ...); ``fix`` says what to do."""

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what + (f" (fix: {fix})" if fix else ""))
        self.what = what
        self.fix = fix


@dataclasses.dataclass(frozen=True)
class Missing:
    """One prerequisite that is not there, and how to get it."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} (fix: {self.fix})"


@dataclasses.dataclass(frozen=True)
class Kernel:
    version: str
    image: Path
    modules: Path


@dataclasses.dataclass(frozen=True)
class Qemu:
    """The QEMU that boots the guest."""

    binary: Path
    version: tuple                 # (major, minor, micro)
    data_dirs: tuple = ()          # -L: firmware and option ROMs, searched before the binary's own
    module_dir: Optional[Path] = None  # QEMU_MODULE_DIR: its own loadable modules, not the system's

    @property
    def sriov(self) -> bool:
        """Whether it emulates an SR-IOV device (igb, QEMU >= 8.0)."""
        return self.version >= SRIOV_QEMU

    @property
    def env(self) -> dict:
        return {"QEMU_MODULE_DIR": str(self.module_dir)} if self.module_dir else {}

    def describe(self) -> str:
        where = "bookworm-backports, unpacked" if self.module_dir else "system"
        return f"QEMU {'.'.join(map(str, self.version))} ({where}: {self.binary})"


@dataclasses.dataclass
class BootResult:
    rc: Optional[int]            # exit code of cmd.sh in the guest; None when the guest never reported one
    console: str                 # the serial console, \r and ANSI escapes removed
    wall: float                  # host seconds from QEMU start to QEMU exit
    timed_out: bool = False
    qemu_returncode: Optional[int] = None
    qemu_stderr: str = ""
    peak_rss_kib: Optional[int] = None
    error: Optional[str] = None  # why the run is unusable (timeout, QEMU error, init error), else None
    outdir: Optional[Path] = None
    markers: dict = dataclasses.field(default_factory=dict)
    host_unit_s: float = 0.0     # tests/realkernel/speed.py's unit measured on the host before the boot
    boot_allowance: float = 0.0  # seconds the watchdog allowed the boot before the guest's first announcement
    qemu: str = ""               # which QEMU booted it (Qemu.describe)

    @property
    def ok(self) -> bool:
        return self.error is None and self.rc is not None

    def console_tail(self, lines: int = 60) -> str:
        return "\n".join(self.console.rstrip("\n").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------- kernel
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run_text(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def kernel_version_from_depends(depends: str) -> Optional[str]:
    """The ABI version in linux-image-amd64's Depends (``linux-image-6.1.0-56-amd64 (= 6.1.192-2)``)."""
    match = re.search(r"linux-image-(\d[^\s,()|]*)", depends)
    return match.group(1) if match else None


def _version_key(version: str) -> list:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~]", version)]


def find_kernel(
    run: Runner = _run_text,
    boot_dir: Path = Path("/boot"),
    modules_root: Path = Path("/lib/modules"),
    package: str = "linux-image-amd64",
) -> Kernel:
    """The kernel to boot: the one ``package`` depends on, else the newest /boot/vmlinuz-* with modules.

    Raises HarnessError naming what is missing.
    """
    candidates: list = []
    try:
        proc = run(["dpkg-query", "-W", "-f=${Depends}", package])
        if proc.returncode == 0:
            version = kernel_version_from_depends(proc.stdout)
            if version:
                candidates.append(version)
    except OSError:
        pass  # no dpkg (not Debian): use /boot
    found = sorted(
        (p.name[len("vmlinuz-"):] for p in boot_dir.glob("vmlinuz-*")),
        key=_version_key, reverse=True)
    candidates += [v for v in found if v not in candidates]
    problems = []
    for version in candidates:
        image = boot_dir / f"vmlinuz-{version}"
        modules = modules_root / version
        if not image.is_file():
            problems.append(f"{image} does not exist")
            continue
        if not (modules / "modules.dep").is_file():
            problems.append(f"{modules}/modules.dep does not exist")
            continue
        if not os.access(image, os.R_OK):
            raise HarnessError(f"{image} is not readable by uid {os.getuid()}",
                               f"sudo chmod 0644 {image}, or run the tests as root")
        return Kernel(version, image, modules)
    detail = "; ".join(problems) or f"no {boot_dir}/vmlinuz-*"
    raise HarnessError(f"no bootable guest kernel ({detail})",
                       "sudo apt-get install --no-install-recommends linux-image-amd64")


# ---------------------------------------------------------------------------------------- QEMU
def parse_qemu_version(text: str) -> Optional[tuple]:
    """(major, minor, micro) from ``qemu-system-x86_64 --version`` (``QEMU emulator version 10.0.2 (Debian …)``)."""
    match = re.search(r"QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(p or 0) for p in match.groups()) if match else None


def find_qemu(cache: Path = QEMU_CACHE, which: Callable[[str], Optional[str]] = shutil.which,
              run: Runner = _run_text, environ=os.environ) -> Optional[Qemu]:
    """The QEMU to boot: the backport scripts/fetch-qemu.sh unpacked into ``cache`` when it runs,
    else the one on PATH (also with HOSTDEV_VM_QEMU=system); None when there is none."""
    candidates = []
    if environ.get(QEMU_ENV, "") != "system":
        binary = cache / "usr" / "bin" / QEMU_BINARY
        if binary.is_file():
            lib = cache / "usr" / "lib" / "x86_64-linux-gnu" / "qemu"
            candidates.append(Qemu(binary, (), (cache / "usr/share/qemu", cache / "usr/share/seabios"), lib))
    found = which(QEMU_BINARY)
    if found:
        candidates.append(Qemu(Path(found), ()))
    for qemu in candidates:
        try:
            proc = run([str(qemu.binary), "--version"])
        except OSError:
            continue
        version = parse_qemu_version(proc.stdout) if proc.returncode == 0 else None
        if version:
            return dataclasses.replace(qemu, version=version)
    return None


# ---------------------------------------------------------------------------------------- prereqs
def is_static_elf(path: Path) -> bool:
    """True when ``path`` is an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # ELF64 only (x86_64 busybox)
                return False
            endian = "<" if head[5] == 1 else ">"
            phoff, = struct.unpack_from(endian + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> Optional[Path]:
    for candidate in ("/bin/busybox", "/usr/bin/busybox", "/usr/lib/initramfs-tools/bin/busybox"):
        if is_static_elf(Path(candidate)):
            return Path(candidate)
    return None


def check_prerequisites(which: Callable[[str], Optional[str]] = shutil.which,
                        kernel_finder: Callable[[], Kernel] = find_kernel) -> tuple:
    """(Kernel or None, [Missing, ...]) for booting the guest. Builds nothing."""
    missing = []
    if not which(QEMU_BINARY):
        missing.append(Missing(f"{QEMU_BINARY} not found on PATH",
                               "sudo apt-get install --no-install-recommends qemu-system-x86"))
    kernel = None
    try:
        kernel = kernel_finder()
    except HarnessError as exc:
        missing.append(Missing(exc.what, exc.fix))
    if find_busybox() is None:
        missing.append(Missing("a statically linked busybox (/bin/busybox)",
                               "sudo apt-get install --no-install-recommends busybox-static"))
    if kernel is not None:
        try:
            initramfs_modules(kernel)
        except HarnessError as exc:
            missing.append(Missing(exc.what, exc.fix))
    return kernel, missing


# ---------------------------------------------------------------------------------------- initramfs
def _parse_modules_dep(text: str) -> dict:
    deps = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, _, rest = line.partition(":")
        deps[path.strip()] = rest.split()
    return deps


def _module_name(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", name)


def initramfs_modules(kernel: Kernel, wanted: Iterable[str] = INITRAMFS_MODULES) -> list:
    """Module files (relative to kernel.modules) to load in the initramfs, dependencies first."""
    deps = _parse_modules_dep((kernel.modules / "modules.dep").read_text())
    by_name = {_module_name(p).replace("-", "_"): p for p in deps}
    builtin_file = kernel.modules / "modules.builtin"
    builtin = set()
    if builtin_file.is_file():
        builtin = {_module_name(p).replace("-", "_") for p in builtin_file.read_text().split()}
    order: list = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            raise HarnessError(f"kernel module {name} is neither in {kernel.modules}/modules.dep nor built in",
                               f"reinstall the kernel's package (linux-image-{kernel.version})")
    return order


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if not zstd:
            raise HarnessError(f"{path} is zstd-compressed and zstd is not installed",
                               "sudo apt-get install zstd")
        return subprocess.run([zstd, "-qdc", str(path)], capture_output=True, check=True).stdout
    return data


class CpioWriter:
    """A minimal ``newc`` (SVR4, no CRC) cpio archive writer: enough for an initramfs."""

    def __init__(self) -> None:
        self._parts: list = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._ino += 1
        self._parts += [header, encoded, b"\0" * (-(len(header) + len(encoded)) % 4),
                        data, b"\0" * (-len(data) % 4)]

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def getvalue(self) -> bytes:
        trailer = CpioWriter()
        trailer._entry("TRAILER!!!", 0)
        return b"".join(self._parts + trailer._parts)


@contextlib.contextmanager
def cache_lock(cache_dir: Path = CACHE_DIR):
    """Hold the cache's build lock: scripts/test.sh runs test sessions side by side (the full-system
    image takes the mdev samples too), and one must not replace a build another is reading."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build_initramfs(kernel: Kernel, cache_dir: Path = CACHE_DIR) -> Path:
    """The gzip'ed initramfs for ``kernel``, built once and cached (key: kernel, /init, modules, busybox)."""
    with cache_lock(cache_dir):
        return _build_initramfs(kernel, cache_dir)


def _build_initramfs(kernel: Kernel, cache_dir: Path) -> Path:
    busybox = find_busybox()
    if busybox is None:
        raise HarnessError("no statically linked busybox", "sudo apt-get install busybox-static")
    modules = initramfs_modules(kernel)
    key = hashlib.sha256()
    key.update(f"{_INITRAMFS_FORMAT}\0{kernel.version}\0{INIT_SCRIPT}\0".encode())
    for rel in modules:
        st = (kernel.modules / rel).stat()
        key.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    key.update(hashlib.sha256(busybox.read_bytes()).digest())
    target = cache_dir / f"initramfs-{kernel.version}-{key.hexdigest()[:16]}.cpio.gz"
    if target.is_file():
        return target

    cpio = CpioWriter()
    for d in ("bin", "dev", "proc", "sys", "mods", "newroot", "rw"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    names = []
    for rel in modules:
        name = _module_name(rel)
        cpio.file(f"mods/{name}.ko", _read_module(kernel.modules / rel))
        names.append(name)
    cpio.file("mods/order", ("\n".join(names) + "\n").encode())

    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob(f"initramfs-{kernel.version}-*.cpio.gz"):
        old.unlink()  # a stale build for this kernel (other /init or modules)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".initramfs-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(gzip.compress(cpio.getvalue(), compresslevel=1, mtime=0))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------------------- mdev samples
MDEV_SAMPLES = ("mtty", "mdpy", "mbochs")


@dataclasses.dataclass
class MdevBuild:
    directory: Path
    ok: bool
    detail: str          # why it failed, or "cached"/"built in N s"
    log: Optional[Path] = None


def module_vermagic(path: Path) -> Optional[str]:
    """The vermagic string of a .ko (from its .modinfo section), or None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    match = re.search(rb"(?:^|\0)vermagic=([^\0]*)", data)
    return match.group(1).decode(errors="replace") if match else None


def mdev_dir(kernel_version: str, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"mdev-{kernel_version}"


def _linux_source_tarball(kernel_version: str, src_root: Path = Path("/usr/src")) -> Optional[Path]:
    series = ".".join(kernel_version.split(".")[:2]).split("-")[0]
    for ext in ("tar.xz", "tar.bz2", "tar.gz"):
        candidate = src_root / f"linux-source-{series}.{ext}"
        if candidate.is_file():
            return candidate
    return None


def build_mdev_samples(kernel: Kernel, cache_dir: Path = CACHE_DIR) -> MdevBuild:
    """Build the mtty/mdpy/mbochs sample mdev drivers for ``kernel`` out of tree (cached).

    The sources come from Debian's linux-source-<series> tarball, the build from the kernel's
    headers (/lib/modules/<ver>/build). Rebuilt when a module's vermagic is not ``kernel``'s.
    """
    with cache_lock(cache_dir):
        return _build_mdev_samples(kernel, cache_dir)


def _build_mdev_samples(kernel: Kernel, cache_dir: Path) -> MdevBuild:
    dest = mdev_dir(kernel.version, cache_dir)
    kos = [dest / f"{m}.ko" for m in MDEV_SAMPLES]
    if all((module_vermagic(k) or "").split(" ")[0] == kernel.version for k in kos):
        return MdevBuild(dest, True, "cached")
    build = kernel.modules / "build"
    if not (build / "Makefile").is_file():
        return MdevBuild(dest, False, f"no kernel headers at {build}: sudo apt-get install linux-headers-amd64")
    tarball = _linux_source_tarball(kernel.version)
    if tarball is None:
        series = ".".join(kernel.version.split(".")[:2])
        return MdevBuild(dest, False, f"no /usr/src/linux-source-{series}.tar.*: "
                                      f"sudo apt-get install linux-source-{series}")
    for tool in ("tar", "make", "gcc"):
        if not shutil.which(tool):
            return MdevBuild(dest, False, f"{tool} not found: sudo apt-get install gcc make tar xz-utils")
    top = tarball.name.split(".tar.")[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    log = cache_dir / f"mdev-{kernel.version}.build.log"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".mdev-build-") as work, open(log, "w") as out:
        steps = [
            ["tar", "-xf", str(tarball), "-C", work, "--wildcards", f"{top}/samples/vfio-mdev/*"],
            ["make", "-C", str(build), f"M={work}/{top}/samples/vfio-mdev", "-j2",
             "CONFIG_SAMPLE_VFIO_MDEV_MTTY=m", "CONFIG_SAMPLE_VFIO_MDEV_MDPY=m",
             "CONFIG_SAMPLE_VFIO_MDEV_MBOCHS=m", "modules"],
        ]
        for argv in steps:
            out.write("$ " + shlex.join(argv) + "\n")
            out.flush()
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
            if proc.returncode != 0:
                return MdevBuild(dest, False, f"'{argv[0]}' failed with rc {proc.returncode}", log)
        staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".mdev-new-"))
        for module in MDEV_SAMPLES:
            built = Path(work) / top / "samples" / "vfio-mdev" / f"{module}.ko"
            if not built.is_file():
                shutil.rmtree(staging)
                return MdevBuild(dest, False, f"{module}.ko was not built", log)
            shutil.copy2(built, staging / built.name)
        staging.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    return MdevBuild(dest, True, f"built in {time.monotonic() - started:.1f} s", log)


# ---------------------------------------------------------------------------------------- QEMU
def kernel_cmdline(extra: Sequence[str] = ()) -> str:
    return " ".join((*KERNEL_CMDLINE, *extra))


def qemu_argv(*, kernel_image: Path, initrd: Path, share: Path, console: Path,
              mem: str = DEFAULT_MEM, smp: int = DEFAULT_SMP, qemu: str = QEMU_BINARY,
              append: Sequence[str] = (), data_dirs: Sequence[Path] = (), sriov: bool = False) -> list:
    """The QEMU command line of the test guest (TCG, q35 + intel-iommu, fixed devices, no network).

    ``data_dirs``: -L directories (an unpacked QEMU's firmware); ``sriov``: add SRIOV_DEVICES."""
    argv = [qemu]
    for directory in data_dirs:
        argv += ["-L", str(directory)]
    argv += [
        "-accel", "tcg,tb-size=256",
        "-machine", "q35,kernel-irqchip=split",
        "-cpu", f"max,phys-bits={PHYS_BITS}",
        "-smp", str(smp),
        "-m", mem,
        "-nodefaults", "-display", "none", "-no-reboot",
        "-chardev", f"file,id=con,path={console}",
        "-serial", "chardev:con",
        "-device", f"intel-iommu,{INTEL_IOMMU}",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={share},mount_tag=vmout,security_model=none",
    ]
    for obj in OBJECTS:
        argv += ["-object", obj]
    for device in DEVICES + (SRIOV_DEVICES if sriov else ()):
        argv += ["-device", device]
    argv += ["-kernel", str(kernel_image), "-initrd", str(initrd), "-append", kernel_cmdline(append)]
    return argv


def parse_markers(console: str) -> dict:
    """``@@hostdev-vm key=value ...`` lines of the console as a dict (later lines win)."""
    markers = {}
    for match in _MARKER_RE.finditer(console):
        for token in match.group(1).split():
            key, sep, value = token.partition("=")
            if sep:
                markers[key] = value
    return markers


def clean_console(raw: bytes) -> str:
    return _ANSI_RE.sub("", raw.decode("utf-8", errors="replace").replace("\r", ""))


def write_cmd_script(path: Path, commands: Sequence[str], *, coldplug: bool = True) -> None:
    """The guest's /run/vmout/cmd.sh: timing markers, coldplug, then ``commands`` (shell lines).

    Its exit code is that of the last command.
    """
    lines = [
        "# generated by tests/realkernel/vm.py; runs as root inside the throwaway guest",
        f"echo \"{MARKER} cmd-start=$(cut -d' ' -f1 /proc/uptime)\"",
    ]
    if coldplug:
        lines += [f"/bin/sh {shlex.quote(str(GUEST_SETUP))} coldplug",
                  f"echo \"{MARKER} coldplug-done=$(cut -d' ' -f1 /proc/uptime)\""]
    lines += list(commands) or ["true"]
    path.write_text("\n".join(lines) + "\n")


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """QEMU gets SIGKILL if the test process dies, so a hung guest never outlives the session."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _stop(pid: int) -> Optional[tuple]:
    """SIGTERM, then SIGKILL after 5 s; returns wait4's (pid, status, rusage)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            done = os.wait4(pid, os.WNOHANG)
            if done[0] == pid:
                return done
            time.sleep(0.05)
    return None


class Watchdog:
    """When to give up on the guest: no progress within the allowance it last announced, or a cap."""

    def __init__(self, boot_allowance: float, cap: Optional[float], started: float) -> None:
        self.allowance = boot_allowance
        self.cap = cap
        self.started = started
        self.last_progress = started
        self.token: Optional[str] = None
        self.reason = ""

    def expired(self, announcement: Optional[tuple], now: float) -> bool:
        if announcement is not None and announcement[0] != self.token:
            self.token, self.allowance = announcement
            self.last_progress = now
        if self.cap is not None and now - self.started > self.cap:
            self.reason = f"the guest did not finish within {self.cap:.0f} s (HOSTDEV_VM_TIMEOUT)"
            return True
        if now - self.last_progress > self.allowance:
            phase = "the boot" if self.token is None else "a step"
            self.reason = (f"the guest made no progress for {now - self.last_progress:.0f} s: {phase} was "
                           f"allowed {self.allowance:.0f} s, measured from this machine's speed "
                           "(tests/realkernel/speed.py)")
            return True
        return False


def boot(commands: Sequence[str], outdir: Path, timeout: Optional[float] = None, *,
         boot_allowance: Optional[float] = None,
         mem: str = DEFAULT_MEM, smp: int = DEFAULT_SMP, kernel: Optional[Kernel] = None,
         coldplug: bool = True, append: Sequence[str] = (),
         on_console: Optional[Callable[[str], None]] = None) -> BootResult:
    """Boot the guest once, run ``commands`` (shell lines) in it, power off; never leaves QEMU running.

    ``outdir`` receives console.log, qemu.stderr and the guest's share ``vmout/`` (= /run/vmout in
    the guest: cmd.sh, rc and whatever the commands write there). ``on_console`` gets each new
    console line while the guest runs. Raises HarnessError when the guest cannot be prepared.

    The watchdog (tests/realkernel/speed.py): QEMU is killed when the guest makes no progress within
    the allowance it last announced in ``vmout/budget`` (before its first announcement:
    ``boot_allowance`` seconds, by default measured on this machine now), or, only when ``timeout``
    is given (HOSTDEV_VM_TIMEOUT), after ``timeout`` seconds in all.
    """
    qemu = find_qemu()
    if qemu is None:
        raise HarnessError(f"{QEMU_BINARY} not found on PATH",
                           "sudo apt-get install --no-install-recommends qemu-system-x86")
    kernel = kernel or find_kernel()
    initrd = build_initramfs(kernel)
    outdir = Path(outdir).resolve()
    for hidden in ("/run", "/proc", "/sys", "/dev"):
        if str(outdir).startswith(hidden + "/") or str(HERE).startswith(hidden + "/"):
            raise HarnessError(f"{outdir} or {HERE} is under {hidden}, which the guest does not see",
                               "keep the repository and HOSTDEV_VM_OUTDIR outside /run")
    share = outdir / "vmout"
    share.mkdir(parents=True, exist_ok=True)
    for stale in ("rc", "cmd.sh", "budget", "speed.jsonl"):
        (share / stale).unlink(missing_ok=True)
    write_cmd_script(share / "cmd.sh", commands, coldplug=coldplug)
    console_path = outdir / "console.log"
    console_path.write_bytes(b"")
    argv = qemu_argv(kernel_image=kernel.image, initrd=initrd, share=share, console=console_path,
                     mem=mem, smp=smp, qemu=str(qemu.binary), append=append, data_dirs=qemu.data_dirs,
                     sriov=qemu.sriov)
    (outdir / "qemu.argv").write_text(
        "".join(f"{k}={shlex.quote(v)} " for k, v in qemu.env.items()) + shlex.join(argv) + "\n")

    host_unit_s = speed.measure()
    if boot_allowance is None:
        boot_allowance = speed.allowance(speed.BOOT_HOST_UNITS, host_unit_s)
    budget_file = share / "budget"
    started = time.monotonic()
    watchdog = Watchdog(boot_allowance, timeout, started)
    timed_out = False
    waited = None
    seen = 0
    pending = b""
    with open(outdir / "qemu.stderr", "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                                env={**os.environ, **qemu.env}, preexec_fn=_die_with_parent)
        try:
            while True:
                waited = os.wait4(proc.pid, os.WNOHANG)
                if waited[0] == proc.pid:
                    break
                waited = None
                if on_console is not None:
                    with open(console_path, "rb") as handle:
                        handle.seek(seen)
                        chunk = handle.read()
                    seen += len(chunk)
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    for line in complete:
                        on_console(clean_console(line))
                if watchdog.expired(speed.read_announcement(budget_file), time.monotonic()):
                    timed_out = True
                    waited = _stop(proc.pid)
                    break
                time.sleep(0.1)
        finally:
            if waited is None and not timed_out:  # interrupted (KeyboardInterrupt, ...): never leave QEMU behind
                _stop(proc.pid)
        if waited is not None:
            proc.returncode = os.waitstatus_to_exitcode(waited[1])
    wall = time.monotonic() - started

    console = clean_console(console_path.read_bytes())
    if on_console is not None and pending:
        on_console(clean_console(pending))
    rc_file = share / "rc"
    rc = None
    if rc_file.is_file():
        text = rc_file.read_text().strip()
        rc = int(text) if text.lstrip("-").isdigit() else None
    markers = parse_markers(console)
    error = None
    if timed_out:
        error = watchdog.reason + "; QEMU was killed"
    elif "init-error" in markers:
        error = f"the guest's /init failed: {markers['init-error']}"
    elif rc is None and "Kernel panic" in console:
        error = "the guest kernel panicked (see the console below)"
    elif rc is None:
        error = f"the guest did not report an exit code (QEMU exit status {proc.returncode})"
    stderr = (outdir / "qemu.stderr").read_text(errors="replace")
    said = [line for line in stderr.splitlines() if line.strip() and "has no peer" not in line]
    if error and said:
        error += "; QEMU said: " + " | ".join(said[-5:])
    return BootResult(rc=rc, console=console, wall=wall, timed_out=timed_out,
                      qemu_returncode=proc.returncode, qemu_stderr=stderr,
                      peak_rss_kib=waited[2].ru_maxrss if waited is not None else None,
                      error=error, outdir=outdir, markers=markers, host_unit_s=host_unit_s,
                      boot_allowance=boot_allowance, qemu=qemu.describe())
