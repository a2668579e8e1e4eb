"""The test suite's write guard (a pytest plugin: ``pytest_plugins = ["tests.guard"]``).

While a test's setup, call or teardown runs, an audit hook (PEP 578) refuses, BEFORE it
happens, any file-system change outside the temporary directories, and any program that
changes the machine (modprobe, update-grub, …). The refused call raises GuardViolation (a
PermissionError, so code under test sees an ordinary EPERM), and the test fails with the
path or program named, even when the code under test swallowed the exception.

Allowed: tempfile.gettempdir() and pytest's basetemp (after resolving symlinks), /dev/null,
/dev/full (every write fails: a full disk), /dev/tty, /dev/pts/*, and ``__pycache__/*.pyc``
(bytecode caches, import machinery).

Also sets HOSTDEV_TEST_GUARD=1 for the session: hostdev.host.Host refuses live-host changes in
every process the tests start, which this hook cannot see.

Inside the throwaway QEMU guest (``hostdev.testguest=1`` on /proc/cmdline) everything is
allowed: that kernel and its /sys exist to be written.

Audit hooks cannot be removed, so the hook stays installed and is gated by a flag.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import tempfile
import threading
from typing import Iterator, List, Optional

import pytest

from hostdev.host import in_test_guest

ENV = "HOSTDEV_TEST_GUARD"

# Programs that change the machine, refused by the basename of argv[0].
DENIED_PROGRAMS = frozenset({
    "modprobe", "insmod", "rmmod", "update-grub", "update-grub2", "grub-mkconfig", "grub2-mkconfig",
    "grubby", "update-initramfs", "dracut", "mkinitcpio", "mdevctl", "driverctl", "virsh",
    "kernel-install", "sysctl", "rpm-ostree", "bootctl", "efibootmgr", "reboot", "shutdown",
    "poweroff", "setpci",
})
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "busybox"})

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {
    # event: (indices of path arguments, index of the dir_fd for them or None)
    "os.remove": ((0,), 1),
    "os.rmdir": ((0,), 1),
    "os.mkdir": ((0,), 2),
    "os.symlink": ((1,), 2),
    "os.link": ((1,), 3),
    "os.chmod": ((0,), 2),
    "os.chown": ((0,), 3),
    "os.truncate": ((0,), None),
    "os.utime": ((0,), 3),
    "os.chflags": ((0,), None),
    "os.lchflags": ((0,), None),
    "os.setxattr": ((0,), None),
    "os.removexattr": ((0,), None),
    "shutil.rmtree": ((0,), 1),
    "shutil.copyfile": ((1,), None),
    "shutil.copymode": ((1,), None),
    "shutil.copystat": ((1,), None),
    "shutil.copytree": ((1,), None),
    "shutil.move": ((0, 1), None),
}


class GuardViolation(PermissionError):
    """A test tried to change the machine outside its temporary directory."""


class _State(threading.local):
    def __init__(self) -> None:
        self.in_hook = False
        self.open_dir_fd: Optional[int] = None


_state = _State()
_active = False
_violations: List[str] = []
_expected_stack: List[List[str]] = []
_allowed_roots: List[str] = []
_installed = False
_disabled_in_guest = False


def allow_root(path: str) -> None:
    """Allow writes under ``path`` too (resolved)."""
    real = os.path.realpath(path)
    if real not in _allowed_roots:
        _allowed_roots.append(real)


_NO_FOLLOW = frozenset({"os.remove", "os.rmdir", "os.rename", "os.symlink", "os.link", "os.mkdir",
                        "shutil.rmtree", "shutil.move"})


def _resolve(path, dir_fd: Optional[int], follow: bool = True) -> Optional[str]:
    if isinstance(path, int):
        # an fd-based call (fchmod, ftruncate, fdopen): judge the file the fd refers to
        try:
            return os.readlink(f"/proc/self/fd/{path}")
        except OSError:
            return None
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return None
    if not os.path.isabs(path):
        base = os.getcwd()
        if dir_fd is not None:
            try:
                base = os.readlink(f"/proc/self/fd/{dir_fd}")
            except OSError:
                base = os.getcwd()
        path = os.path.join(base, path)
    # resolve the directory (the file itself may not exist yet); a final symlink is followed
    # when the call writes through it (open, chmod …) but not when it replaces or removes
    # the name itself (unlink, rename, symlink)
    if follow:
        return os.path.realpath(path)
    head, tail = os.path.split(os.path.normpath(path))
    return os.path.join(os.path.realpath(head), tail)


def _allowed_path(real: str) -> bool:
    if real in ("/dev/null", "/dev/full", "/dev/tty", "/dev/ptmx") or real.startswith("/dev/pts/"):
        return True
    if real.startswith(("pipe:[", "socket:[", "anon_inode:")):
        return True  # an fd-based call on a pipe or socket (subprocess input=...): no file is written
    parent, name = os.path.split(real)
    if os.path.basename(parent) == "__pycache__" and ".pyc" in name:
        return True
    for root in _allowed_roots:
        if real == root or real.startswith(root.rstrip("/") + "/"):
            return True
    return False


def _violate(message: str) -> None:
    if _expected_stack:
        _expected_stack[-1].append(message)
    else:
        _violations.append(message)
    raise GuardViolation(1, f"hostdev test guard: {message}")


def _check_program(argv0, args) -> None:
    if argv0 is None:
        return
    name = os.path.basename(os.fsdecode(argv0) if isinstance(argv0, (bytes, os.PathLike)) else str(argv0))
    if name in DENIED_PROGRAMS:
        _violate(f"refused to run {name!r} ({' '.join(map(str, args or [argv0]))})")
    if name in SHELLS and args:
        words = [str(a) for a in args]
        if "-c" in words and words.index("-c") + 1 < len(words):
            try:
                tokens = shlex.split(words[words.index("-c") + 1])
            except ValueError:
                tokens = words[words.index("-c") + 1].split()
            for token in tokens:
                if os.path.basename(token) in DENIED_PROGRAMS:
                    _violate(f"refused to run {os.path.basename(token)!r} through {name} -c")


def _hook(event: str, args: tuple) -> None:
    if not _active or _state.in_hook:
        return
    if event == "open":
        path, mode, flags = args
        writing = False
        if isinstance(mode, str):
            writing = any(c in mode for c in "wax+")
        elif isinstance(flags, int):
            writing = bool(flags & _WRITE_FLAGS)
        if not writing or path is None:
            return
        dir_fd = _state.open_dir_fd
        _check_path(event, path, dir_fd)
    elif event == "os.rename":
        _check_path(event, args[0], args[2])
        _check_path(event, args[1], args[3])
    elif event in _PATH_EVENTS:
        indices, fd_index = _PATH_EVENTS[event]
        dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
        if isinstance(dir_fd, int) and dir_fd < 0:
            dir_fd = None
        for i in indices:
            if i < len(args):
                _check_path(event, args[i], dir_fd if isinstance(dir_fd, int) else None)
    elif event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        if isinstance(argv, (str, bytes)):
            argv = [argv]
        _check_program(executable if executable is not None else (argv[0] if argv else None), argv)
    elif event in ("os.exec", "os.posix_spawn"):
        _check_program(args[0], args[1])
    elif event == "os.spawn":
        _check_program(args[1], args[2])
    elif event == "os.system":
        command = args[0]
        command = os.fsdecode(command) if isinstance(command, bytes) else str(command)
        _check_program("sh", ["sh", "-c", command])


def _check_path(event: str, path, dir_fd: Optional[int]) -> None:
    if not isinstance(dir_fd, int) or dir_fd < 0:
        dir_fd = None  # audit events pass -1 for "no dir_fd"
    _state.in_hook = True
    try:
        real = _resolve(path, dir_fd, follow=event not in _NO_FOLLOW)
    finally:
        _state.in_hook = False
    if real is None or _allowed_path(real):
        return
    _violate(f"refused {event} on {real!r} (outside the test's temporary directory)")


_real_os_open = os.open


def _guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
    """os.open's audit event has no dir_fd; note it so the hook can resolve a relative path."""
    previous = _state.open_dir_fd
    _state.open_dir_fd = dir_fd
    try:
        return _real_os_open(path, flags, mode, dir_fd=dir_fd)
    finally:
        _state.open_dir_fd = previous


def install() -> None:
    """Install the hook once per process (it cannot be removed) and the dir_fd shim."""
    global _installed, _disabled_in_guest
    if _installed:
        return
    _installed = True
    os.environ[ENV] = "1"
    allow_root(tempfile.gettempdir())
    if in_test_guest():
        _disabled_in_guest = True
        return
    os.open = _guarded_os_open  # the audit event lacks dir_fd, so os.open is wrapped
    sys.addaudithook(_hook)


@contextlib.contextmanager
def active() -> Iterator[None]:
    """Guard the enclosed code (what the plugin does around each test phase)."""
    global _active
    previous = _active
    _active = not _disabled_in_guest
    try:
        yield
    finally:
        _active = previous


@contextlib.contextmanager
def expected_violations() -> Iterator[List[str]]:
    """Inside, violations are still refused but do not fail the test; yields their messages."""
    found: List[str] = []
    _expected_stack.append(found)
    try:
        yield found
    finally:
        _expected_stack.pop()


def take_violations() -> List[str]:
    out = list(_violations)
    _violations.clear()
    return out


# ------------------------------------------------------------------ pytest plugin
def pytest_configure(config) -> None:
    install()
    try:
        allow_root(str(config._tmp_path_factory.getbasetemp()))  # noqa: SLF001 (pytest's own)
    except Exception:  # noqa: BLE001 — basetemp is created lazily; tmp_path adds it per test
        pass
    config.addinivalue_line("markers", "guard_off: run without the write guard (never for host paths)")


def _phase_allowed(item) -> bool:
    return item.get_closest_marker("guard_off") is None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with active() if _phase_allowed(item) else contextlib.nullcontext():
        yield
    try:
        allow_root(str(item.config._tmp_path_factory.getbasetemp()))  # noqa: SLF001
    except Exception:  # noqa: BLE001
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with active() if _phase_allowed(item) else contextlib.nullcontext():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with active() if _phase_allowed(item) else contextlib.nullcontext():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    found = take_violations()
    if found:
        message = "hostdev test guard blocked:\n  " + "\n  ".join(found)
        report.outcome = "failed"
        previous = f"\n\n{report.longreprtext}" if report.longrepr else ""
        report.longrepr = message + previous
