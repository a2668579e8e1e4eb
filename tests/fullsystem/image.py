"""The full-system test VM's disk image: Debian 12 from Debian's packages, GRUB on the disk.

Built by this module alone, on the host, without loop devices, mounts or grub-install on the host:

1. a wheelhouse of the project and its dependencies (``pip wheel``), and a tarball of the checkout;
2. ``mmdebstrap --mode=unshare`` (its own mount namespace) builds the root tree into a directory
   from the packages of recipe/packages.txt and ``linux-image-<the host's kernel ABI>`` (so that
   the mtty sample module the real-kernel harness builds for the host's kernel loads in the VM
   too), and runs recipe/customize.sh in it: the files of recipe/files, fstab, the mtty sample
   driver (loaded at boot, like a vendor's driver), and the project installed by scripts/install.sh
   from the wheelhouse (the VM reaches nothing);
3. the raw disk file gets an MBR partition table (``sfdisk`` on the file) and an ext4 file system
   made from the tree at the partition's offset (``mkfs.ext4 -d DIR -E offset=``);
4. a first QEMU boot of that disk with the tree's own kernel and initrd passed by -kernel/-initrd
   and ``init=/usr/local/sbin/hostdev-image-firstboot`` does what needs the disk as a block
   device: ``grub-install /dev/sda`` and ``update-grub``, then powers off. Later boots go SeaBIOS
   → GRUB from the disk → the kernel, with Debian's stock /etc/default/grub.

The image is cached under ``.cache/fullsystem/`` (git-ignored), named by a hash of its recipe
(every file of recipe/, scripts/install.sh, the runtime dependencies in pyproject.toml, this
module's FORMAT and the kernel version): a change to any of them builds a new one. Test runs never
write the cached image; they boot a qcow2 overlay over it (tests/fullsystem/machine.py).

``python -m tests.fullsystem.image`` builds (or finds) the image and prints its path; scripts/test.sh
starts it in the background so that the build overlaps the unit tests.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from tests.realkernel import vm

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
RECIPE = HERE / "recipe"
CACHE_DIR = Path(os.environ.get("HOSTDEV_FULLSYSTEM_CACHE", "") or REPO_ROOT / ".cache" / "fullsystem")
FORMAT = "1"            # bump when the way the image is made changes outside the recipe files
SUITE = "bookworm"
DISK_SIZE = 4 << 30     # bytes of the raw disk (sparse)
PART_START = 2048       # first sector of the root partition (1 MiB: room for GRUB's core.img)
FS_UUID = "5e1f0a6e-7d1c-4c3b-9b1a-0d15ea5e0001"  # fixed, so fstab and grub.cfg name it
FIRSTBOOT_OK = "@@hostdev-image firstboot=ok"
# the first boot: install GRUB, generate grub.cfg; about 60 s idle, in host units (speed.py)
FIRSTBOOT_HOST_UNITS = 3000.0
SOURCES_ENV = "HOSTDEV_IMAGE_SOURCES"

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Image:
    path: Path               # the raw disk image (never written by a test run)
    kernel_version: str      # Debian's kernel in it (= the host's, for the mtty module)
    key: str                 # the recipe hash in its name
    build_s: Optional[float]  # seconds the build took; None when it came from the cache


def recipe_files() -> list:
    files = sorted(p for p in RECIPE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files + [REPO_ROOT / "scripts" / "install.sh"]


def runtime_dependencies(pyproject: str) -> str:
    """The ``dependencies = [...]`` list of pyproject.toml as written: what install.sh puts into the
    image's venv. (Each run installs the checkout's own code over it, so only this list counts.)"""
    match = re.search(r"^dependencies\s*=\s*\[.*?^\]", pyproject, re.M | re.S)
    return match.group(0) if match else ""


def recipe_key(kernel_version: str, files: Optional[Sequence[Path]] = None,
               pyproject: Optional[str] = None) -> str:
    """A hash of everything the image is made from: file names relative to the repo, modes,
    contents, the project's runtime dependencies, the kernel version and FORMAT."""
    if pyproject is None:
        pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    digest = hashlib.sha256(f"format {FORMAT}\nkernel {kernel_version}\n".encode())
    digest.update(runtime_dependencies(pyproject).encode() + b"\n")
    for path in files if files is not None else recipe_files():
        rel = path.resolve().relative_to(REPO_ROOT)
        digest.update(f"{rel} {path.stat().st_mode & 0o777:o} {path.stat().st_size}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def packages(kernel_version: str) -> list:
    names = []
    for line in (RECIPE / "packages.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names + [f"linux-image-{kernel_version}"]


def apt_sources(environ=os.environ, apt_dir: Path = Path("/etc/apt")) -> list:
    """The host's apt source files for Debian bookworm (mmdebstrap pastes a file MIRROR verbatim).

    The VM's packages come from the mirror this machine is set up with; HOSTDEV_IMAGE_SOURCES
    names other files (space-separated)."""
    if environ.get(SOURCES_ENV):
        return environ[SOURCES_ENV].split()
    candidates = [apt_dir / "sources.list"] + sorted((apt_dir / "sources.list.d").glob("*"))
    found = []
    for path in candidates:
        if not path.is_file() or path.suffix not in (".list", ".sources"):
            continue
        text = path.read_text(errors="replace")
        if SUITE in text and "/debian" in text:
            found.append(str(path))
    if not found:
        raise vm.HarnessError("no apt source for Debian bookworm in /etc/apt/sources.list(.d)",
                              f"name one with {SOURCES_ENV}=/path/to/debian.sources")
    return found


def image_path(key: str, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"debian12-{key}.raw"


def _run(argv: Sequence[str], log_file, what: str, **kwargs) -> None:
    log_file.write(f"$ {shlex.join(argv)}\n")
    log_file.flush()
    proc = subprocess.run(list(argv), stdout=log_file, stderr=subprocess.STDOUT, check=False, **kwargs)
    if proc.returncode != 0:
        raise vm.HarnessError(f"{what} failed with rc {proc.returncode} (log {log_file.name})")


def source_tarball(dest: Path) -> None:
    """The checkout's files (tracked and untracked, not ignored), as scripts/install.sh expects."""
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
                            capture_output=True, check=True).stdout.split(b"\0")
    with tarfile.open(dest, "w") as tar:
        for name in sorted(n.decode() for n in listed if n):
            path = REPO_ROOT / name
            if path.is_file() and not path.is_symlink():
                tar.add(str(path), arcname=name, recursive=False)


CODE_FILE = "/opt/hostdev/.hostdev-code"  # in the image: the code key of the hostdev installed there


def code_key(repo: Path = None) -> str:
    """A hash of what a wheel of the checkout holds (hostdev/ and pyproject.toml, tracked and
    untracked, not ignored). Not part of the image's key: a code change does not rebuild the image,
    the run installs the checkout's wheel over it, unless the image was built from this very code
    (CODE_FILE; the usual case on CI, where the image is built in the same run)."""
    repo = REPO_ROOT if repo is None else repo
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "-co", "--exclude-standard",
                             "--", "hostdev", "pyproject.toml"], capture_output=True, check=True).stdout
    digest = hashlib.sha256()
    for name in sorted(n.decode() for n in listed.split(b"\0") if n):
        path = repo / name
        if path.is_file() and not path.is_symlink():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def wheelhouse(dest: Path, log_file) -> None:
    """Wheels of the project's dependencies and of the build backend, for install.sh in the VM."""
    _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(dest), str(REPO_ROOT), "setuptools>=77"],
         log_file, "pip wheel (the VM's wheelhouse)")


def partition_table(disk: Path, log_file) -> None:
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "always", str(disk)], log_file,
         "sfdisk on the image file", input=f"label: dos\nstart={PART_START}, type=83, bootable\n".encode())


def make_filesystem(disk: Path, tree: Path, log_file) -> None:
    fs_bytes = DISK_SIZE - PART_START * 512
    _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", FS_UUID, "-d", str(tree),
          "-E", f"offset={PART_START * 512}", str(disk), f"{fs_bytes // 1024}k"],
         log_file, "mkfs.ext4 -d on the image file")


def firstboot_argv(disk: Path, tree: Path, kernel_version: str, console: Path) -> list:
    return [vm.QEMU_BINARY, "-accel", "tcg,tb-size=256", "-machine", "q35", "-cpu", "max", "-smp", "2",
            "-m", "1G", "-nodefaults", "-display", "none", "-no-reboot",
            "-chardev", f"file,id=con,path={console}", "-serial", "chardev:con",
            "-drive", f"file={disk},format=raw,if=none,id=root,cache=unsafe", "-device", "ide-hd,drive=root,bus=ide.0",
            "-kernel", str(tree / "boot" / f"vmlinuz-{kernel_version}"),
            "-initrd", str(tree / "boot" / f"initrd.img-{kernel_version}"),
            "-append", "root=/dev/sda1 rw console=ttyS0 panic=-1 no_timer_check "
                       "init=/usr/local/sbin/hostdev-image-firstboot"]


def first_boot(disk: Path, tree: Path, kernel_version: str, workdir: Path, log_file) -> None:
    """GRUB onto the disk and grub.cfg, inside QEMU; the watchdog allowance from this machine's speed."""
    from tests.realkernel import speed
    console = workdir / "firstboot-console.log"
    argv = firstboot_argv(disk, tree, kernel_version, console)
    allowance = speed.allowance(FIRSTBOOT_HOST_UNITS)
    log_file.write(f"$ {shlex.join(argv)}  # allowed {allowance:.0f} s\n")
    log_file.flush()
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                       timeout=allowance, check=False)
    except subprocess.TimeoutExpired:
        raise vm.HarnessError(f"the image's first boot did not power off within {allowance:.0f} s "
                              f"(console {console})")
    text = vm.clean_console(console.read_bytes())
    log_file.write("--- first boot console ---\n" + text + "\n")
    if FIRSTBOOT_OK not in text:
        raise vm.HarnessError(f"grub-install/update-grub failed in the image's first boot (console {console})")


def build(kernel_version: str, dest: Path, log: Log, log_file) -> None:
    """Build the image into ``dest`` (see the module docstring). Raises HarnessError."""
    if vm.find_kernel().version != kernel_version:
        raise vm.HarnessError(f"the image's kernel {kernel_version} is not the host's {vm.find_kernel().version}: "
                              "the mtty module is built for the host's")
    for tool in ("mmdebstrap", "sfdisk", "mkfs.ext4", vm.QEMU_BINARY):
        if not shutil.which(tool):
            raise vm.HarnessError(f"{tool} not found", "sudo apt-get install --no-install-recommends "
                                  "$(grep -v '^#' scripts/apt-test-packages.txt)")
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".build-"))
    try:
        tree = work / "root"
        wheels = work / "wheelhouse"
        source = work / "source.tar"
        log(f"the mtty sample driver for {kernel_version}")
        mdev = vm.build_mdev_samples(vm.find_kernel())
        if not mdev.ok:
            raise vm.HarnessError(f"the mtty sample driver could not be built: {mdev.detail}")
        log("wheelhouse and source tarball")
        wheelhouse(wheels, log_file)
        source_tarball(source)
        log(f"mmdebstrap {SUITE} with linux-image-{kernel_version}")
        # the hook runs inside mmdebstrap's namespace; "$1" is the tree (mmdebstrap's argument)
        hook = (f'{shlex.quote(str(RECIPE / "customize.sh"))} "$1" {shlex.quote(str(RECIPE))} '
                f"{shlex.quote(str(source))} {shlex.quote(str(wheels))} {FS_UUID} "
                f"{shlex.quote(str(mdev.directory / 'mtty.ko'))} {kernel_version} {code_key()}")
        _run(["mmdebstrap", "--mode=unshare", "--variant=apt", "--format=directory",
              "--include=" + ",".join(packages(kernel_version)), f"--customize-hook={hook}",
              SUITE, str(tree), *apt_sources()],
             log_file, "mmdebstrap", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        log("disk file: sfdisk, mkfs.ext4 -d")
        disk = work / "disk.raw"
        with open(disk, "wb") as handle:
            handle.truncate(DISK_SIZE)
        partition_table(disk, log_file)
        make_filesystem(disk, tree, log_file)
        log("first boot in QEMU: grub-install /dev/sda, update-grub")
        first_boot(disk, tree, kernel_version, work, log_file)
        os.replace(disk, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure(kernel_version: Optional[str] = None, log: Log = lambda line: None,
           cache_dir: Path = CACHE_DIR) -> Image:
    """The cached image for the current recipe, built first when there is none (one builder at a
    time: a second caller waits for the first's build). Raises HarnessError."""
    if kernel_version is None:
        kernel_version = vm.find_kernel().version
    key = recipe_key(kernel_version)
    dest = image_path(key, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_file():
            return Image(dest, kernel_version, key, None)
        for old in [*cache_dir.glob("debian12-*.raw"), *cache_dir.glob("debian12-*.json")]:
            old.unlink()  # another recipe's image: rebuilt when needed again
        started = time.monotonic()
        log_path = cache_dir / "build.log"
        with open(log_path, "w") as log_file:
            build(kernel_version, dest, log, log_file)
        elapsed = time.monotonic() - started
        (cache_dir / f"debian12-{key}.json").write_text(json.dumps(
            {"kernel": kernel_version, "build_s": round(elapsed, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        return Image(dest, kernel_version, key, elapsed)


def main(argv: Sequence[str] = ()) -> int:
    try:
        image = ensure(log=lambda line: print(f"fullsystem image: {line}", file=sys.stderr, flush=True))
    except vm.HarnessError as exc:
        print(f"fullsystem image: {exc}", file=sys.stderr)
        return 1
    how = "cached" if image.build_s is None else f"built in {image.build_s:.0f} s"
    print(f"{image.path} ({how}; kernel {image.kernel_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
