"""The session of one invocation (--root, output format, Host), kept in typer's context, and the
one place errors are rendered."""

import contextlib
import functools
import os
import re
import sys
from typing import Any, Callable, Iterator, List, Optional, Sequence

import click
import typer
from typer.core import TyperGroup

from ..errors import EXIT_BUG, EXIT_USAGE, BugError, HostdevError, UsageError
from ..host import Host, host_from_env
from ..render import Format, error, message
from .main import finish_output, output_failed

# Tests replace this to hand the CLI a Host with a simulated kernel.
host_factory: Callable[[Optional[str]], Host] = host_from_env


def _hwdb_for(h: Host):
    if not h.is_live:
        return None  # a fake or mounted root: this machine's hwdb would describe another host
    from ..udev import hwdb_pci_names

    return hwdb_pci_names()


# Tests replace this to hand a fake root a device-name lookup (what the udev hwdb would say).
hwdb_factory: Callable[[Host], Optional[Callable[[str, str], Optional[str]]]] = _hwdb_for


class Session:
    """One invocation: --root, the output format (errors are rendered in it too) and the Host,
    built once from them so that a command plans and applies on the same Host. The app's
    callback puts it in typer's context (``ctx.obj``); commands reach it through ``session()``."""

    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root
        self.recording: Optional[str] = None  # --root FILE: the recording unpacked into ``root``
        self.output = Format.table
        self.output_given: Optional[Format] = None  # -o before the command
        self.noted_no_pci_ids = False
        self._host: Optional[Host] = None

    @property
    def host(self) -> Host:
        if self._host is None:
            self._host = host_factory(self.root)
            self._host.recording = self.recording
        return self._host


def session() -> Session:
    """The running command's session (the root context's ``obj``; a new one outside typer)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Session()
    top = ctx.find_root()
    if not isinstance(top.obj, Session):
        top.obj = Session()
    return top.obj


def _session_of(ctx: click.Context) -> Session:
    top = ctx.find_root()
    if not isinstance(top.obj, Session):
        top.obj = Session()
    return top.obj


def _global_output(ctx: click.Context, value: Optional[Format]) -> None:
    """-o before the command (``hostdev -o json devices``): the format of every command that does
    not give its own."""
    if value is not None:
        current = _session_of(ctx)
        current.output = current.output_given = Format(value)


def output_option(default: Format = Format.table, help: str = "Output format: table, json or yaml.") -> Any:
    """The -o/--output option of a command: its own value, else the one given before the command,
    else ``default``. Kept in the session, so that errors are rendered in it too. The callback
    returns the name: typer converts it to the Format (str() of a member would not match)."""

    def resolve(ctx: click.Context, value: Optional[Format]) -> str:
        current = _session_of(ctx)
        current.output = Format(value) if value is not None else (current.output_given or default)
        return current.output.value

    return typer.Option(None, "--output", "-o", help=f"{help} (default {default.value}; may also come before "
                        "the command)", case_sensitive=False, callback=resolve, show_default=False)


OutputOption = output_option()
GlobalOutputOption = typer.Option(None, "--output", "-o", case_sensitive=False, callback=_global_output,
                                  help="Output format of the command (table, json or yaml), as if given after it.")


def host() -> Host:
    """The session's Host."""
    return session().host


def pci_names(override: Optional[str] = None, note: bool = True):
    """The session host's pci.ids (pciids.load), or --pci-ids ``override``. When there is none,
    a note (once per run; later with ``note`` False: note_names) says why names are hex IDs and
    how to fix it."""
    from .. import pciids

    names = pciids.load(session().host, override)
    if note:
        note_names(names)
    return names


def note_names(names) -> None:
    """The note of pci_names, once per run, when ``names`` found no pci.ids."""
    from .. import pciids

    current = session()
    if names.path is None and not current.noted_no_pci_ids:
        current.noted_no_pci_ids = True
        message(f"note: {pciids.missing_note(current.host)}", "warn")


def set_root(root: Optional[str]) -> Session:
    """Start the session for --root (HOSTDEV_ROOT): a directory, or a recording (``hostdev
    record FILE``), unpacked into a private temporary directory removed at exit. Raises
    UsageError when it is neither (a typo must not read as an empty host) or a bad archive."""
    current = session()
    if root is not None and os.path.isfile(root):
        current.root, current.recording = open_recording(root), root
        return current
    if root is not None and not os.path.isdir(root):
        what = "does not exist" if not os.path.lexists(root) else "is not a directory or a recording"
        raise UsageError(f"--root {root} {what}",
                         fix="give the directory that holds the tree (its sys, proc, etc) or a 'hostdev record' file")
    current.root = root
    return current


def open_recording(path: str) -> str:
    """Unpack the recording ``path`` into a new temporary directory (removed when hostdev exits);
    returns it. Raises UsageError (recording.RecordingError) for a bad archive."""
    import atexit
    import shutil
    import tempfile

    from .. import recording
    from ..host import unpack_archive

    directory = tempfile.mkdtemp(prefix="hostdev-recording-")
    atexit.register(shutil.rmtree, directory, True)
    unpack_archive(path, directory, lambda *m: recording.check_member(path, *m),
                   lambda count, total: recording.check_totals(path, count, total), recording.MANIFEST)
    return directory


def require_live_root(what: str) -> None:
    """Refuse a --root other than / for a command that acts through the running kernel or a
    hypervisor (libvirt's qemu:///system manages this machine's devices whatever the root):
    --root is never a way to reach the live machine. Raises UsageError."""
    root = session().root
    if root is not None and os.path.realpath(root) != "/":
        raise UsageError(f"{what} acts on the running machine through libvirt; it cannot act on --root {root}",
                         fix="run it without --root (HOSTDEV_ROOT) on the host itself")


def hwdb(h: Host):
    """The udev hwdb name lookup for ``h`` (udev.hwdb_pci_names on the live host), or None."""
    return hwdb_factory(h)


def set_output(fmt: Format) -> Format:
    """Remember the format so that errors are rendered in it too."""
    session().output = fmt
    return fmt


def complete_address(incomplete: str):
    """typer's own completion of ADDR arguments (reached only for shells cli/complete.py does not
    serve): the same answer as a TAB, the host's PCI addresses (HOSTDEV_ROOT or /)."""
    from .complete import host_values, matching

    try:
        return [value for value, _ in matching(host_values("address", host_from_env, {}), incomplete)]
    except (HostdevError, OSError):
        return []


def apply_plan(h: Host, plan, verb: str) -> None:
    """Apply a plan (anything with ``actions`` and ``apply(host, on_step)``) as root under
    hostdev's lock, with a progress bar on a terminal for long plans (64 VFs …); errors
    propagate to ``command``."""
    h.require_mutable(f"hostdev {verb}")
    with h.lock():
        if not (sys.stderr.isatty() and len(plan.actions) >= 20):
            plan.apply(h)
            return
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(verb, total=len(plan.actions))

            def step(index, total, action):
                progress.update(task, completed=index, description=action.description[:60])

            plan.apply(h, step)


@contextlib.contextmanager
def planning(h: Host, dry_run: bool, verb: str) -> Iterator[None]:
    """Make a plan (and then apply it) under hostdev's lock, so that it is made from the host as
    the run that applies it will find it (two binds of one device at once: the second plans
    after the first has finished). Nothing with --dry-run, which changes nothing and needs no
    root."""
    if dry_run:
        yield
        return
    h.require_mutable(f"hostdev {verb}")
    with h.lock():
        yield


def report_plan(plan, dry_run: bool, describe: bool = True) -> None:
    """A plan's notes, and with --dry-run (and ``describe``) what it would do, on stderr (for
    people); after a run, the files it wrote, removed or linked (Plan.files_changed)."""
    for note in plan.notes:
        message(f"note: {note}", "warn")
    if dry_run and describe:
        for action in plan.describe():
            message(f"would: {action['action']}")
    if not dry_run:
        verbs = {"write": "wrote", "remove": "removed", "link": "linked"}
        for change in plan.files_changed():
            message(f"{verbs[change['change']]}: {change['path']}")


def carry_out(h: Host, result, dry_run: bool, output: Format, verb: str, describe: bool = True) -> bool:
    """The common tail of a mutating command: apply ``result.plan`` (unless --dry-run or nothing
    to do; a result with its own ``apply``, as SR-IOV's two-phase plan, is applied itself), then
    write ``result.to_dict(dry_run)`` as json/yaml. Returns True when written; False when the
    caller draws its table, after the plan's notes (and with --dry-run and ``describe`` the steps)
    on stderr."""
    from ..render import emit

    if not dry_run and result.plan.changes:
        apply_plan(h, result if hasattr(result, "apply") else result.plan, verb)
    if emit(result.to_dict(dry_run), output):
        return True
    report_plan(result.plan, dry_run, describe)
    return False


def render_error(exc: HostdevError, output: Optional[Format] = None) -> None:
    """One line on stderr; with -o json (``output``, else the session's) also the error object
    on stdout (Ansible reads it)."""
    error(exc, output or session().output)


def command(fn: Callable[..., Optional[int]]) -> Callable[..., None]:
    """Wrap a command: its int result becomes the exit code; a HostdevError becomes one line
    on stderr and the error's exit code (docs/exit-codes.md). No tracebacks for user errors.
    SIGINT/SIGTERM raise Interrupted (a plan being applied rolls back; exit 130). Any other
    exception is a bug: one line saying so and EXIT_BUG (70), never 1, which is check's
    "not ready"; HOSTDEV_DEBUG=1 shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..signals import signals_roll_back

        try:
            with signals_roll_back():
                code = fn(*args, **kwargs)
        except HostdevError as exc:
            render_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place a bug is turned into an exit code
            failed = output_failed(exc)
            if failed is not None:  # stdout could not be written: no bug
                render_error(failed)
                raise typer.Exit(failed.exit_code) from None
            if os.environ.get("HOSTDEV_DEBUG") == "1":
                raise
            first = (str(exc).splitlines() or [""])[0]
            bug = BugError(f"{type(exc).__name__}: {first}".rstrip(": "))
            bug.fix = "run again with HOSTDEV_DEBUG=1 for the traceback"
            render_error(bug)
            raise typer.Exit(EXIT_BUG) from None
        if code:
            raise typer.Exit(code)

    return wrapper


def _output_in(args: Sequence[str]) -> Optional[Format]:
    """The last valid -o/--output in raw arguments: a usage error can stop click before it has
    parsed -o, and the error must still be JSON when the user asked for JSON."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output"):
            value = args[i + 1] if i + 1 < len(args) else ""
        elif arg.startswith("--output="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and not arg.startswith("--"):
            value = arg[2:]
        else:
            continue
        try:
            found = Format(value.lower())
        except ValueError:
            pass
    return found


def _one_line(text: str) -> str:
    """click's message on one line, each sentence once (typer and click both add "Did you mean
    'devices'?" to an unknown command)."""
    sentences: List[str] = []
    for sentence in re.split(r"(?<=[.?!])\s+", " ".join(text.split())):
        if sentence not in sentences:
            sentences.append(sentence)
    return " ".join(sentences)


class HostdevGroup(TyperGroup):
    """The app's top command group. A usage error anywhere (unknown command or option, a bad
    option value) is rendered as every other error is: one line on stderr, the JSON error object
    on stdout with -o json, exit 2 (docs/exit-codes.md) instead of click/typer's box."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:  # bare "hostdev": the help, as before
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
            code = exc.exit_code
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else (prog_name or "hostdev")
            render_error(UsageError(_one_line(exc.format_message()), fix=f"see '{where} -h'"), _output_in(argv))
            code = EXIT_USAGE
        except click.ClickException as exc:
            render_error(HostdevError(_one_line(exc.format_message())), _output_in(argv))
            code = exc.exit_code
        except click.Abort:
            message("Aborted!", "error")
            code = 1
        except OSError as exc:  # the help or --version written to a full disk, say
            failed = output_failed(exc)
            if failed is None:
                raise
            render_error(failed, _output_in(argv))
            code = failed.exit_code
        failed = finish_output()  # what is still buffered: its failure is reported here, not at exit
        if failed is not None:
            render_error(failed, _output_in(argv))
            code = failed.exit_code
        if standalone_mode:
            sys.exit(code)
        return code
