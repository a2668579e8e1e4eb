"""Host: the one door to the machine.

Every file read, directory listing, link lookup, write and command of hostdev goes through a
``Host``. Its ``root`` is ``/`` on a real host, a temporary tree in tests, or ``/`` inside the
QEMU test guest; the same domain code runs on all three.

Paths are always given as they would be on the host (``/sys/bus/pci/devices``) and joined
under the root by stripping the leading ``/`` (curtin's ``target_path``), never by testing a
string prefix. Symbolic links are resolved inside the root (``resolve``), so a link in a fake
or recorded tree cannot lead out of it.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import sys
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from .errors import (
    CommandError,
    ConfigReadError,
    ConfigWriteError,
    HostEnvironmentError,
    NotRootError,
    OutsideRootError,
    SysfsWriteError,
    UsageError,
)

_MAX_LINKS = 40  # the kernel's own limit on symlinks followed in one lookup (MAXSYMLINKS)
_READ_CHUNK = 65536
_READ_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_DIRECTORY_NOFOLLOW = _OPEN_DIRECTORY | os.O_NOFOLLOW

# Set in the environment of every process the test suite starts (tests/conftest.py): a
# hostdev started by a test refuses to change the live host, whatever uid it has.
TEST_GUARD_ENV = "HOSTDEV_TEST_GUARD"
# A directory of our own, not /run/lock (world-writable on Debian: see Host.lock).
LOCK_DIR = "/run/hostdev"
LOCK_FILE = f"{LOCK_DIR}/lock"
BACKUP_SUFFIX = ".hostdev.bak"
# Where programs are looked up under a root (a root shell's PATH; sbin first).
PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


_UNKNOWN = object()


def _link_target(parent: str, target: str) -> Optional[str]:
    """The normalised host path a link in directory ``parent`` (a resolved, normalised host path:
    "/" or "/a/b") with ``target`` leads to, as a chroot resolves it: an absolute target starts at
    the root, leading ``..`` climb the parent's own parents and never above "/". None for a ``..``
    after a name (only a step-by-step walk answers that)."""
    parts = [p for p in target.split("/") if p not in ("", ".")]
    stack = [] if target.startswith("/") or parent == "/" else parent.split("/")[1:]
    up = 0
    while up < len(parts) and parts[up] == "..":
        up += 1
    if up:
        del parts[:up]
        del stack[max(0, len(stack) - up):]
    if ".." in parts:
        return None
    return "/" + "/".join(stack + parts)


def _readlink(real: str) -> Optional[str]:
    """The target of the link at real path ``real``, or None when it is not a link."""
    try:
        return os.readlink(real)
    except OSError:
        return None


class CommandResult(NamedTuple):
    argv: Tuple[str, ...]
    rc: int
    stdout: str
    stderr: str


class Kernel:
    """What a simulated kernel provides (tests/fakesys/simkernel.py implements it; duck-typed,
    not a typing.Protocol, which costs milliseconds of start-up)."""

    def write(self, path: str, value: str) -> None:
        """Apply a write to a sysfs attribute; raise OSError(errno) as the kernel would."""

    def run(self, argv: Sequence[str]) -> CommandResult:
        """Run a command (modprobe …) against the simulated machine."""


class Host:
    """A machine seen through ``root``.

    ``kernel`` (tests only) replaces real sysfs writes and commands with a simulation.
    Raises OutsideRootError for paths that leave the root.
    """

    def __init__(self, root: str = "/", *, kernel: Optional[Kernel] = None) -> None:
        if not root:
            raise HostEnvironmentError("the host root is empty", fix="pass --root PATH or unset HOSTDEV_ROOT")
        self.root = os.path.abspath(root)
        self._root_prefix = self.root.rstrip("/")  # joined before a normalised host path
        self.kernel = kernel
        self.is_live = kernel is None and os.path.realpath(self.root) == "/"
        # the process environment describes the live machine only (SSH_CONNECTION …); tests set it
        self.environ: Dict[str, str] = dict(os.environ) if self.is_live else {}
        self._locks = 0  # how deep this Host is inside lock()
        self._links: Optional[Dict[str, Optional[str]]] = None  # link targets while links_unchanged()
        self._resolved: Dict[str, str] = {}  # host path → resolved host path, while links_unchanged()
        self._followed: Dict[str, int] = {}  # host path → links its lookup follows (none: absent), likewise
        self._link_dirs: Dict[Tuple[str, str], Optional[str]] = {}  # see _dir_path_unchecked, likewise
        self.recording: Optional[str] = None  # the archive ``root`` was unpacked from (read-only)

    def __repr__(self) -> str:
        return f"Host(root={self.root!r}{', simulated' if self.kernel else ''})"

    # ---------------------------------------------------------------- paths
    def path(self, path: str, *, follow: bool = True) -> str:
        """The real filesystem path of host path ``path`` (absolute, as on the host).

        Under a root other than ``/`` every symlink in it is resolved inside the root, as a
        chroot would (``resolve``): an absolute link (``var/lib -> /elsewhere``) or one that
        climbs out (``../../..``) stays in the tree, and the kernel never follows a link out of
        it. ``follow=False`` leaves the last component alone (readlink, unlink, symlink).
        Raises OutsideRootError for a ``..`` in ``path`` itself or a link loop.
        """
        rel = path.lstrip("/")
        if rel == "":
            return self.root
        if ".." in rel and ".." in rel.split("/"):
            raise OutsideRootError(path, self.root)
        if self.root == "/":
            return "/" + rel  # the kernel resolves as a chroot to / would
        if follow:
            return self._under_root(self.resolve(path))
        head, _, name = rel.rpartition("/")
        return os.path.join(self._under_root(self.resolve("/" + head)), name)

    def _under_root(self, resolved: str) -> str:
        # ``resolved`` is a normalised host path ("/" or "/a/b"); the root has no trailing "/"
        # (abspath) except when it is "/" itself
        if resolved == "/":
            return self.root
        return resolved if self.root == "/" else self.root + resolved

    def resolve(self, path: str) -> str:
        """Follow every symlink in ``path`` inside the root; returns the host path.

        Absolute link targets restart at the root and ``..`` never climbs above it, as in a
        chroot. Raises OutsideRootError on a link loop.
        """
        if self._links is not None:
            normal: Optional[str] = path
            if "//" in path or "/." in path or path.endswith("/") or not path.startswith("/"):
                names = [p for p in path.split("/") if p not in ("", ".")]
                # a ".." of the path itself goes up from where the links before it led: the walk's job
                normal = None if ".." in names else "/" + "/".join(names)
            if normal is not None:
                resolved = self._resolve_remembered(normal, 0)
                if resolved is not None:
                    return resolved
        parts = [p for p in path.split("/") if p not in ("", ".")]
        parts.reverse()  # a stack: the next component last
        base = self.root.rstrip("/")
        done: List[str] = []
        real = base
        links = self._links
        followed = 0
        while parts:
            part = parts.pop()
            if part == "..":
                if done:
                    done.pop()
                    real = base + "".join("/" + p for p in done)
                continue
            candidate = real + "/" + part
            if links is None:
                target = _readlink(candidate)
            else:
                target = links.get(candidate, _UNKNOWN)
                if target is _UNKNOWN:
                    target = links[candidate] = _readlink(candidate)
            if target is None:
                done.append(part)
                real = candidate
                continue
            followed += 1
            if followed > _MAX_LINKS:
                raise OutsideRootError(path, self.root)
            if target.startswith("/"):
                done, real = [], base
            parts.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
        return "/" + "/".join(done)

    def _resolve_remembered(self, path: str, depth: int) -> Optional[str]:
        """``resolve`` of a normalised host path while links_unchanged: a directory's
        resolution is remembered, so a path costs its last component (and the link there, if
        any) once its parent is known. None where only the step-by-step walk gives the answer
        (a ``..`` after a name inside a link's target, a deep chain of links, a lookup that
        follows more than _MAX_LINKS links in all, which the walk refuses): the caller walks."""
        known = self._resolved.get(path)
        if known is not None:
            return known
        if path == "/" or depth > _MAX_LINKS:
            return "/" if path == "/" else None
        head, _, name = path.rpartition("/")
        parent = self._resolved.get(head)  # most often known: the directory of the last one
        if parent is None:
            parent = self._resolve_remembered(head or "/", depth)
            if parent is None:
                return None
        resolved = (parent if parent != "/" else "") + "/" + name  # unless it is a link
        candidate = self._root_prefix + resolved
        target = self._links.get(candidate, _UNKNOWN)
        if target is _UNKNOWN:
            target = self._links[candidate] = _readlink(candidate)
        followed = self._followed.get(head, 0)  # the links the lookup of the parent follows
        if target is not None:
            within = _link_target(parent, target)
            if within is None:
                return None
            resolved = self._resolve_remembered(within, depth + 1)
            if resolved is None:
                return None
            # the kernel counts every link of one lookup (MAXSYMLINKS), remembered or not
            followed += 1 + self._followed.get(within, 0)
            if followed > _MAX_LINKS:
                return None
        if followed:
            self._followed[path] = followed
        self._resolved[path] = resolved
        return resolved

    def _dir_path_unchecked(self, path: str) -> Tuple[str, bool]:
        """(real path of directory ``path``, checked): as ``path()`` resolves it, except that inside
        links_unchanged the last component of the link's target at ``path`` (a listing's
        ``/sys/bus/pci/devices/ADDR`` → ``…/ADDR``) is not checked for being a link itself
        (checked False): the caller opens it with O_NOFOLLOW, so the kernel refuses a link there
        instead of following it, and then resolves with ``path()``. Saves a readlink that fails for
        every function."""
        rel = path.lstrip("/")
        if (self._links is None or self.root == "/" or rel == "" or "//" in rel or "/." in rel
                or rel.startswith(".") or rel.endswith("/")):
            return self.path(path), True
        path = "/" + rel
        known = self._resolved.get(path)
        if known is not None:
            return self._under_root(known), True
        head, _, name = path.rpartition("/")
        parent = self._resolve_remembered(head or "/", 0)
        if parent is None:
            return self.path(path), True
        resolved = (parent if parent != "/" else "") + "/" + name
        candidate = self._root_prefix + resolved
        target = self._links.get(candidate, _UNKNOWN)
        if target is _UNKNOWN:
            target = self._links[candidate] = _readlink(candidate)
        links = self._followed.get(head, 0)  # the links the lookup of the parent follows
        if target is None:  # not a link: checked
            if links:
                self._followed[path] = links
            self._resolved[path] = resolved
            return self._under_root(resolved), True
        cut = target.rfind("/") + 1
        followed_name = target[cut:]
        if followed_name in ("", ".", ".."):
            return self.path(path), True  # the walk
        # the directory the target's name is in, as a real path ending in "/", is the same for
        # every link of this directory whose target starts the same way (a bus's links to the
        # functions of one card): worked out once
        key = (head, target[:cut])
        within = self._link_dirs.get(key, _UNKNOWN)
        if within is _UNKNOWN:
            within = self._link_dirs[key] = self._link_dir(head, parent, target[:cut])
        if within is None:
            return self.path(path), True
        return within + followed_name, False

    def _link_dir(self, head: str, parent: str, prefix: str) -> Optional[str]:
        """For _dir_path_unchecked: the real path, ending in "/", of the directory that a link in
        host directory ``head`` (resolved: ``parent``) whose target starts with ``prefix`` (all
        of it up to the last "/") names its last component in; None where only path() answers."""
        followed_head = _link_target(parent, prefix)
        if followed_head is None:
            return None
        followed_parent = self._resolve_remembered(followed_head, 1)
        links = self._followed.get(head, 0)  # the links the lookup of the link's directory follows
        if followed_parent is None or links + 1 + self._followed.get(followed_head, 0) > _MAX_LINKS:
            return None  # the walk: the kernel counts every link of the lookup
        return self._root_prefix + (followed_parent if followed_parent != "/" else "") + "/"

    @contextlib.contextmanager
    def links_unchanged(self) -> Iterator[None]:
        """Inside, each link under the root is read once (``resolve`` remembers its target):
        for a read-only scan such as the listing, where nothing can change a link (4,096
        functions: ~10 link lookups each, most of them shared). Nothing may be written inside."""
        outer = self._links, self._resolved, self._followed, self._link_dirs
        if self._links is None:
            self._links, self._resolved, self._followed, self._link_dirs = {}, {}, {}, {}
        try:
            yield
        finally:
            self._links, self._resolved, self._followed, self._link_dirs = outer

    # ---------------------------------------------------------------- reads
    def exists(self, path: str) -> bool:
        return os.path.exists(self.path(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(self.path(path))

    def listdir(self, path: str) -> List[str]:
        """Sorted entry names; [] when the directory is missing."""
        try:
            return sorted(os.listdir(self.path(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_text(self, path: str) -> Optional[str]:
        """The whole file as text, or None when it does not exist or cannot be read."""
        try:
            with open(self.path(path), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
            return None
        except OSError:
            # sysfs attributes can refuse a read (EIO, ENODEV, EINVAL) on some devices
            return None

    def read_bytes(self, path: str) -> Optional[bytes]:
        """The whole file as bytes, or None when it cannot be read."""
        try:
            with open(self.path(path), "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def read_attr(self, path: str) -> Optional[str]:
        """A sysfs-style attribute: the text with surrounding whitespace stripped, or None."""
        text = self.read_text(path)
        return None if text is None else text.strip()

    def readlink(self, path: str) -> Optional[str]:
        """The target of a symlink as stored, or None when it is not a link."""
        try:
            return os.readlink(self.path(path, follow=False))
        except OSError:
            return None

    def link_name(self, path: str) -> Optional[str]:
        """Basename of a symlink's target (``driver`` → ``vfio-pci``), or None."""
        target = self.readlink(path)
        return os.path.basename(target.rstrip("/")) if target else None

    def scan_attrs(self, directory: str, names: Sequence[str], links: Sequence[str] = (),
                   entries: Sequence[str] = ()
                   ) -> Tuple[Dict[str, Optional[str]], Dict[str, Optional[str]], Dict[str, bool]]:
        """``scan_dirs`` of one directory, as dicts: (attribute → stripped text or None, link →
        target basename or None, entry → exists); all None/False when the directory is not there."""
        row = self.scan_dirs((directory,), names, links, entries)[0]
        if row is None:
            return dict.fromkeys(names), dict.fromkeys(links), dict.fromkeys(entries, False)
        values = dict(zip(names, row))
        targets = dict(zip(links, row[len(names):]))
        present = dict(zip(entries, row[len(names) + len(links):]))
        return values, targets, present  # type: ignore[return-value]

    def scan_dirs(self, directories: Iterable[str], names: Sequence[str], links: Sequence[str] = (),
                  entries: Sequence[str] = ()) -> List[Optional[list]]:
        """Read many small attributes of many directories quickly (the listing hot path).

        Each directory is resolved once (``path``: every link in it inside the root) and opened;
        each attribute is then one ``openat``/``read``/``close`` relative to it, each link one
        ``readlinkat`` (its target's basename), each entry one ``faccessat``: about 16 system
        calls per PCI function, never ``config``, and the kernel walks one name per call instead
        of the whole path again (on a tree under a deep --root, a fifth of the listing's time).
        One loop for all directories: a listing pays no call per function for it.

        Returns, per directory in order, one list: the attributes' stripped texts (None: not
        there or unreadable), then the links' target basenames (None: not a link), then whether
        each entry is there; None for a directory that is not there.
        """
        open_, read, close, readlink, access = os.open, os.read, os.close, os.readlink, os.access
        exists = os.F_OK
        rows: List[Optional[list]] = []
        for directory in directories:
            # every link up to the directory is resolved inside the root; the directory itself, when
            # not checked, is opened with O_NOFOLLOW: a link there is refused, then resolved by path()
            real, checked = self._dir_path_unchecked(directory)
            try:
                at = open_(real, _OPEN_DIRECTORY if checked else _OPEN_DIRECTORY_NOFOLLOW)
            except OSError:
                at = -1
            if at < 0 and not checked:
                try:
                    at = open_(self.path(directory), _OPEN_DIRECTORY)
                except OSError:
                    pass
            if at < 0:
                rows.append(None)
                continue
            row: list = []
            try:
                for name in names:
                    try:
                        # attributes are never links; a link planted in a tree must not lead out
                        fd = open_(name, _READ_NOFOLLOW, dir_fd=at)
                    except OSError:
                        row.append(None)
                        continue
                    try:
                        row.append(read(fd, _READ_CHUNK).decode("utf-8", "replace").strip())
                    except OSError:
                        row.append(None)
                    finally:
                        close(fd)
                for name in links:
                    try:
                        row.append(readlink(name, dir_fd=at).rstrip("/").rpartition("/")[2])  # the basename
                    except OSError:
                        row.append(None)
                for name in entries:
                    # faccessat: no stat result and no exception for the usual answer, "not there"
                    row.append(access(name, exists, dir_fd=at, follow_symlinks=False))
            finally:
                close(at)
            rows.append(row)
        return rows

    # ---------------------------------------------------------------- writes
    def require_mutable(self, action: str) -> None:
        """Refuse to change the live host unless we are root and not under the test suite, and
        any change to a recording (``--root FILE``: read-only; --dry-run plans still work).

        Raises NotRootError (exit 4), HostEnvironmentError or UsageError (a recording, exit 2).
        """
        if self.recording is not None:
            raise UsageError(f"{action}: --root {self.recording} is a recording, which hostdev only reads",
                             fix="add --dry-run to see the plan, or run it on the recorded host")
        if not self.is_live:
            return
        if os.environ.get(TEST_GUARD_ENV) == "1" and not in_test_guest():
            raise HostEnvironmentError(
                f"{action}: refusing to change the live host from the test suite",
                fix="tests must use a fake root (--root) or the QEMU guest")
        if os.geteuid() != 0:
            raise NotRootError(action)

    def write_attr(self, path: str, value: str, hint: Optional[str] = None) -> None:
        """One in-place write to a sysfs attribute. Raises SysfsWriteError with the kernel's errno."""
        self.require_mutable(f"writing {path}")
        try:
            if self.kernel is not None:
                self.kernel.write(path, value)
                return
            fd = os.open(self.path(path), os.O_WRONLY)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise SysfsWriteError(path, value, exc.errno or _errno.EIO, hint) from None

    def read_config(self, path: str) -> Optional[str]:
        """A configuration file exactly as written, for editing: no newline translation (CRLF
        stays CRLF), bytes that are not UTF-8 (a Latin-1 comment) kept as surrogate escapes so
        that writing the text back reproduces them. None when the file does not exist.
        Raises ConfigReadError when it exists but cannot be read."""
        try:
            with open(self.path(path), "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ConfigReadError(path, exc.strerror or str(exc)) from None
        return data.decode("utf-8", "surrogateescape")

    def write_file(self, path: str, text: str, *, backup: bool = True, mode: int = 0o644) -> bool:
        """Replace a config file atomically (temp file, fsync, rename, fsync of the directory).

        ``text`` is written byte for byte as ``read_config`` returns it. A symlink is followed
        inside the root and its target edited (the link stays a link). With ``backup`` the
        administrator's original is kept as ``TARGET.hostdev.bak`` the first time and never
        overwritten. Returns False, touching nothing, when the content is already ``text``.
        Raises ConfigWriteError (and ConfigReadError).
        """
        old = self.read_config(path)
        if old == text:
            return False
        self.require_mutable(f"writing {path}")
        real = self.path(path)
        try:
            _make_dirs(os.path.dirname(real))
            if old is not None:
                mode = os.stat(real).st_mode & 0o7777
                if backup and not os.path.lexists(real + BACKUP_SUFFIX):
                    self._atomic_write(real + BACKUP_SUFFIX, old, mode)
            self._atomic_write(real, text, mode)
        except OSError as exc:
            raise ConfigWriteError(path, exc.strerror or str(exc)) from None
        return True

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> bool:
        """Replace a binary file of ours atomically (no backup); False when it already holds ``data``.
        Raises ConfigWriteError."""
        if self.read_bytes(path) == data:
            return False
        self.require_mutable(f"writing {path}")
        real = self.path(path)
        try:
            _make_dirs(os.path.dirname(real))
            self._atomic_write(real, data, mode)
        except OSError as exc:
            raise ConfigWriteError(path, exc.strerror or str(exc)) from None
        return True

    @staticmethod
    def _atomic_write(real: str, text, mode: int) -> None:
        """Write ``text`` (str as UTF-8 with surrogate escapes, or bytes) to a temp file beside
        ``real``, fsync, rename, then fsync the directory so that the rename itself survives a
        crash (rename(2) is atomic but not durable until the directory is synced)."""
        import tempfile

        directory = os.path.dirname(real)
        fd, tmp = tempfile.mkstemp(prefix=".hostdev-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, real)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(directory)

    def lock(self, timeout: float = 30.0):
        """An exclusive lock on LOCK_FILE under the root, so that two hostdev runs never
        interleave their plans and writes; re-entrant for one Host. Raises HostEnvironmentError
        after ``timeout`` seconds or when the lock cannot be taken safely.

        The lock's directory is ours (LOCK_DIR, made 0755; refused when another user owns it or
        others may write to it: /run/lock is world-writable, where a planted symlink would make
        root open any file). The file is opened with O_NOFOLLOW and never truncated: the pid is
        written over its first bytes, padded to a fixed width."""
        import contextlib
        import fcntl
        import time

        @contextlib.contextmanager
        def held():
            if self._locks:  # this Host holds it already (a plan made under it, then applied)
                self._locks += 1
                try:
                    yield
                finally:
                    self._locks -= 1
                return
            fd = self._open_lock()
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise HostEnvironmentError(
                                f"another hostdev is changing this host (it holds {LOCK_FILE})",
                                fix="wait for it to finish, then run again") from None
                        time.sleep(0.05)
                    except OSError as exc:
                        raise HostEnvironmentError(f"cannot lock {LOCK_FILE}: {exc.strerror or exc}") from None
                try:
                    os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)
                except OSError:
                    pass  # the pid is only a hint for people; the flock is the lock
                self._locks = 1
                try:
                    yield
                finally:
                    self._locks = 0
            finally:
                os.close(fd)  # closing releases the flock

        return held()

    def _open_lock(self) -> int:
        """The lock file's descriptor (see ``lock``). Raises HostEnvironmentError."""
        import stat

        directory = self.path(LOCK_DIR)
        try:
            _make_dirs(os.path.dirname(directory))
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                pass  # a file there: the open below says "Not a directory"
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise HostEnvironmentError(f"cannot open the lock directory {LOCK_DIR}: {exc.strerror or exc}",
                                       fix="check the disk and permissions") from None
        try:
            info = os.fstat(dfd)
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise HostEnvironmentError(
                    f"the lock directory {LOCK_DIR} is owned by uid {info.st_uid} or writable by others "
                    f"(mode {stat.S_IMODE(info.st_mode):o}): refusing to use it",
                    fix=f"remove {LOCK_DIR}; hostdev makes it again, owned by the user it runs as")
            try:
                fd = os.open(os.path.basename(LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=dfd)
            except OSError as exc:
                raise HostEnvironmentError(f"cannot open {LOCK_FILE}: {exc.strerror or exc}",
                                           fix="it must be a regular file; remove it if it is not") from None
        finally:
            os.close(dfd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(fd)
            raise HostEnvironmentError(f"{LOCK_FILE} is not a plain file of its own (a hard link?)",
                                       fix=f"remove {LOCK_FILE}")
        return fd

    def symlink(self, target: str, path: str) -> bool:
        """Make ``path`` a symlink to ``target`` (what ``systemctl enable`` does for a unit);
        False when it already is one. Raises ConfigWriteError."""
        if self.readlink(path) == target:
            return False
        self.require_mutable(f"linking {path}")
        real = self.path(path, follow=False)
        try:
            _make_dirs(os.path.dirname(real))
            if os.path.lexists(real):
                os.unlink(real)
            os.symlink(target, real)
        except OSError as exc:
            raise ConfigWriteError(path, exc.strerror or str(exc)) from None
        _fsync_dir(os.path.dirname(real))
        return True

    def remove_file(self, path: str) -> bool:
        """Delete a file of ours (a link itself, not its target); False when it was not there.
        Raises ConfigWriteError."""
        self.require_mutable(f"removing {path}")
        real = self.path(path, follow=False)
        try:
            os.unlink(real)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigWriteError(path, exc.strerror or str(exc)) from None
        _fsync_dir(os.path.dirname(real))
        return True

    def which(self, program: str) -> Optional[str]:
        """The path under the root of ``program`` in the usual PATH directories, or None."""
        for directory in PROGRAM_DIRS:
            if os.path.isfile(self.path(f"{directory}/{program}")):
                return f"{directory}/{program}"
        return None

    # ---------------------------------------------------------------- commands
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 300,
            mutating: bool = True) -> CommandResult:
        """Run ``argv`` (never through a shell) with ``LC_ALL=C``.

        A mutating command against a non-live root without a simulated kernel is refused: it
        would act on the machine we run on, not on the root. Raises CommandError (rc None when
        the program is missing) and HostEnvironmentError.
        """
        import subprocess

        argv = [str(a) for a in argv]
        if self.kernel is not None:
            try:
                result = self.kernel.run(argv)
            except FileNotFoundError:
                raise CommandError(argv, None) from None
        else:
            if mutating:
                if not self.is_live:
                    raise HostEnvironmentError(
                        f"cannot run '{' '.join(argv)}' for root {self.recording or self.root}: "
                        "it would act on this machine",
                        fix="run hostdev on the target host itself (root /)")
                self.require_mutable(f"running {argv[0]}")
            # Ansible's shell: and sudo's secure_path may leave out the sbin directories where
            # update-grub, grubby and modprobe live (ANCHORS.md, pain point 4): add them.
            path = os.environ.get("PATH", "").split(os.pathsep)
            env = dict(os.environ, LC_ALL="C",
                       PATH=os.pathsep.join([p for p in path if p] + [d for d in PROGRAM_DIRS if d not in path]))
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                                      stdin=subprocess.DEVNULL, check=False)
            except FileNotFoundError:
                raise CommandError(argv, None) from None
            except subprocess.TimeoutExpired as exc:
                raise CommandError(argv, -1, "", f"timed out after {exc.timeout:.0f} s") from None
            result = CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and result.rc != 0:
            raise CommandError(argv, result.rc, result.stdout, result.stderr)
        return result


def read_document(path: str, what: str, fix: str = "check the path", limit: int = 16 * 1024 * 1024) -> str:
    """The UTF-8 text of a file named on the command line (a profile, a CR, an inventory), at
    most ``limit`` bytes (documents.MAX_BYTES). Raises UsageError."""
    from .errors import UsageError

    try:
        data = read_user_file(path, limit)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}", fix=fix) from None
    if len(data) > limit:
        raise UsageError(f"{what} {path}: is more than the {limit} bytes hostdev reads", fix="is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path}: is not UTF-8 text (byte {exc.start})", fix="save it as UTF-8") from None


def _fsync_dir(directory: str) -> None:
    """Make a rename or unlink in ``directory`` durable. Best effort: some filesystems refuse
    fsync on a directory (EINVAL), and the change itself has already been made."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_user_file(path: str, limit: Optional[int] = None) -> bytes:
    """A file the user named on the command line (``--pci-ids FILE``): a path on this
    machine, not under the host root; with ``limit`` at most ``limit + 1`` bytes are read (so
    that the caller can tell a file that is too big). Raises OSError."""
    with open(path, "rb") as handle:
        return handle.read() if limit is None else handle.read(limit + 1)


def write_archive(path: str, entries: Iterable[Tuple[str, Any]]) -> int:
    """Write ``entries`` (name, member with ``kind`` file/dir/link, ``data``, ``target``, ``mode``:
    recording.Member) as a gzip tar at ``path``, a NEW file on this machine (not under the host
    root). Returns its size in bytes. Raises FileExistsError when ``path`` exists, OSError."""
    import io
    import tarfile

    handle = open(path, "xb")
    try:
        with handle, tarfile.open(fileobj=handle, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name, member in entries:
                info = tarfile.TarInfo(name)
                info.mode = member.mode
                info.uname = info.gname = "root"
                if member.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif member.kind == "link":
                    info.type = tarfile.SYMTYPE
                    info.linkname = member.target
                    tar.addfile(info)
                else:
                    info.size = len(member.data)
                    tar.addfile(info, io.BytesIO(member.data))
        return os.path.getsize(path)
    except BaseException:
        os.unlink(path)  # no half-written recording left behind
        raise


def unpack_archive(source: str, dest: str, check_member: Callable[..., Optional[str]],
                   check_totals: Callable[[int, int], None], manifest: str) -> bytes:
    """Unpack the archive ``source`` (a file on this machine) into the empty directory ``dest``:
    every member is first passed to ``check_member(name, kind, size, target)`` (which raises for a
    bad one and returns the host path it unpacks to, None for the manifest) and the running count
    and size to ``check_totals``, all before anything is written; links are made last, so that
    no member is ever written through one. Returns the manifest's bytes. Raises UsageError."""
    import tarfile

    def bad(problem: str) -> UsageError:
        return UsageError(f"--root {source}: {problem}", fix="give a file made by 'hostdev record', or a directory")

    try:
        tar = tarfile.open(source, "r:*")
    except tarfile.TarError:
        raise bad("not a hostdev recording (not a tar archive)") from None
    except OSError as exc:
        raise bad(f"cannot read it ({exc.strerror or exc})") from None
    with tar:
        members = []
        total = 0
        try:
            for info in tar:
                kind = ("file" if info.isreg() else "dir" if info.isdir() else "link" if info.issym()
                        else "hard link" if info.islnk() else "device or fifo")
                path = check_member(info.name, kind, info.size, info.linkname)
                total += info.size
                check_totals(len(members) + 1, total)
                members.append((info, kind, path))
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise bad(f"a damaged archive ({exc})") from None
        if not any(path is None for _, _, path in members):
            raise bad(f"not a hostdev recording (no {manifest})")
        data = b""
        try:
            for info, kind, path in sorted(members, key=lambda m: m[1] == "link"):
                if path is None:
                    data = tar.extractfile(info).read()
                    continue
                real = os.path.join(dest, path.lstrip("/"))
                if kind == "dir":
                    _make_dirs(real)
                    continue
                _make_dirs(os.path.dirname(real))
                if kind == "link":
                    os.symlink(info.linkname, real)
                    continue
                with open(real, "xb") as out:
                    out.write(tar.extractfile(info).read())
                os.chmod(real, info.mode & 0o755)  # no set-id bits
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise bad(f"cannot unpack it ({getattr(exc, 'strerror', None) or exc})") from None
        return data


def _make_dirs(path: str) -> None:
    """The directory ``path`` and each missing one above it, every one made 0755 (less the umask):
    os.makedirs gives its mode to the last only, 0777 to the others. A real path (under the root,
    resolved); one made meanwhile by another process is fine, as with ``exist_ok``."""
    if os.path.isdir(path):
        return
    _make_dirs(os.path.dirname(path))
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def discard_output() -> None:
    """Send standard output to /dev/null from here on: after errors.OutputError, so that nothing
    more fails there, the interpreter's last flush included (it would print a traceback and
    exit 120)."""
    try:
        out = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a file (a test's capture): nothing to do
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, out)
    finally:
        os.close(null)


TEST_GUEST_TOKEN = "hostdev.testguest=1"


def in_test_guest(cmdline: str = "/proc/cmdline") -> bool:
    """True inside the throwaway QEMU guest of the real-kernel tests (tests/realkernel), whose
    kernel command line carries TEST_GUEST_TOKEN. Reads the running kernel's command line, not
    the root's: it is about the machine this process runs on."""
    try:
        with open(cmdline, encoding="utf-8") as handle:
            return TEST_GUEST_TOKEN in handle.read().split()
    except OSError:
        return False


def host_from_env(root: Optional[str] = None) -> Host:
    """The Host for ``--root`` or ``HOSTDEV_ROOT``, default ``/``."""
    return Host(root if root is not None else os.environ.get("HOSTDEV_ROOT", "/"))


Runner = Callable[[Sequence[str]], CommandResult]
