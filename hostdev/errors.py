"""The hostdev error tree.

Every error below ``cli/`` is one of these. Each carries the fields that explain it and an
``exit_code`` from the documented table (docs/exit-codes.md), and renders as one line a tired
sysadmin can act on: what failed, on which device or file, and the fix. This module imports
nothing of ours.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional, Sequence

# Exit codes (docs/exit-codes.md). They are a contract with Ansible users: never renumber.
EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_ENVIRONMENT = 4
EXIT_FAILED = 5
EXIT_BUG = 70          # sysexits.h EX_SOFTWARE: an internal error, never a verdict
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it; SIGTERM too (after the rollback)


class HostdevError(Exception):
    """Base class. ``message`` says what failed; ``fix`` says what to do next."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, fix: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": self.message, "fix": self.fix,
                "exit_code": self.exit_code}


class UsageError(HostdevError):
    """Bad input from the user: a malformed address, an unknown option value."""

    exit_code = EXIT_USAGE


class InvalidAddressError(UsageError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"invalid PCI address {text!r}",
            fix="use DDDD:BB:SS.F as sysfs writes it (0000:65:00.0) or BB:SS.F (65:00.0); "
                "slot 00-1f, function 0-7",
        )
        self.text = text


class DeviceNotFoundError(UsageError):
    def __init__(self, address: str) -> None:
        super().__init__(f"no PCI device {address} on this host",
                         fix="run 'hostdev devices' to list the addresses")
        self.address = address


class RefusedError(HostdevError):
    """A safety interlock refused a destructive change (use --force to override)."""

    exit_code = EXIT_REFUSED


class HostEnvironmentError(HostdevError):
    """The environment cannot do what was asked: not root, a tool or module missing."""

    exit_code = EXIT_ENVIRONMENT


class NotRootError(HostEnvironmentError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} changes the live host and needs root",
                         fix="run it as root (sudo hostdev ...), or use --dry-run to see the plan")
        self.action = action


class OutsideRootError(HostdevError):
    """A path tried to leave the host root (a ``..`` or a symlink pointing out). A bug or an attack."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, root: str) -> None:
        super().__init__(f"path {path!r} resolves outside the host root {root!r}")
        self.path = path
        self.root = root


class SysfsWriteError(HostdevError):
    """One write to a sysfs attribute failed; the kernel's errno says why."""

    def __init__(self, path: str, value: str, errno: int, hint: Optional[str] = None) -> None:
        name = _errno.errorcode.get(errno, str(errno))
        super().__init__(f"writing {value!r} to {path} failed: {name} ({os.strerror(errno)})", fix=hint)
        self.path = path
        self.value = value
        self.errno = errno


class ConfigWriteError(HostdevError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}", fix="nothing was changed; check the disk and permissions")
        self.path = path


class ConfigReadError(HostEnvironmentError):
    """A file hostdev must edit exists but cannot be read (exit 4: nothing was changed)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}", fix="check the file's permissions and the disk")
        self.path = path


class CommandError(HostdevError):
    """An external command failed (or was not found: exit code 4)."""

    def __init__(self, argv: Sequence[str], rc: Optional[int], stdout: str = "", stderr: str = "") -> None:
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        if rc is None:
            self.exit_code = EXIT_ENVIRONMENT
            super().__init__(f"command not found: {argv[0]}", fix=f"install the package that provides {argv[0]}")
        else:
            last = (stderr or stdout).strip().splitlines()[-1:] or [""]
            super().__init__(f"'{' '.join(argv)}' exited {rc}: {last[0]}".rstrip(": "))


class OutputError(HostdevError):
    """Standard output could not be written (a full disk or quota behind ``>``): the result is
    lost, not what the command did, which stays done (exit 5)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot write standard output: {reason}",
                         fix="free space where the output goes, or send it elsewhere, and run it again")

    @classmethod
    def of(cls, exc: BaseException) -> Optional[OutputError]:
        """The OutputError for ``exc`` when it is a write of standard output that failed: an
        OSError of write(2) (no file name) that a full or failing file gives; else None. The
        commands' own files never get here (ConfigWriteError, SysfsWriteError)."""
        if not isinstance(exc, OSError) or exc.filename is not None or exc.errno not in _WRITE_ERRNOS:
            return None
        return cls(exc.strerror or str(exc))


_WRITE_ERRNOS = (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG, _errno.EIO)


class Interrupted(HostdevError):
    """SIGINT or SIGTERM arrived while a plan was being applied: it is rolled back like any
    failure (exit 130)."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class BugError(HostdevError):
    """Something that cannot happen did. The message says it is a bug."""

    exit_code = EXIT_BUG

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error (a bug in hostdev, please report it): {message}")
