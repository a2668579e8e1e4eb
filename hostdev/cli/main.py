"""The console script: a TAB (``_HOSTDEV_COMPLETE`` set by the completion scripts) is answered by
cli/complete.py without importing typer or any command, a plain ``devices`` listing by
cli/listing.py (the command's own code, without typer's start-up); everything else runs the typer
app."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..errors import HostdevError


def main() -> None:
    """The ``hostdev`` entry point."""
    instruction = os.environ.get("_HOSTDEV_COMPLETE")
    if instruction:
        from .complete import main as complete

        if complete(instruction) == 0:
            sys.exit(0)
        # not ours (typer's complete_powershell …): the app's own completion handles it
    elif "devices" in sys.argv[1:]:
        from .listing import fast_main

        code = fast_main(sys.argv[1:])
        if code is not None:
            leave(code)
        # any other devices line (help, a bad option, a recording …): the typer app
    from .app import main as run

    run()


def leave(code: int) -> None:
    """Exit with ``code`` once stdout and stderr are flushed (finish_output), without the
    interpreter's teardown, which frees a listing's objects one by one (~4 ms at 4,096 functions):
    nothing of the fast paths needs it (no atexit handler, no file left open)."""
    failed = finish_output()
    if failed is not None:
        from ..render import Format, error

        error(failed, Format.table)  # stdout is gone: the line on stderr
        code = failed.exit_code
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def output_failed(exc: BaseException) -> Optional[HostdevError]:
    """errors.OutputError.of(exc): where ``exc`` is standard output's write failing, the error to
    report, with stdout sent to /dev/null from here on (host.discard_output), so that nothing more
    fails there; else None."""
    from ..errors import OutputError

    failed = OutputError.of(exc)
    if failed is not None:
        from ..host import discard_output

        discard_output()
    return failed


def finish_output() -> Optional[HostdevError]:
    """Flush standard output, where the end of what a command wrote may still wait: a failure
    here is stdout's. A reader that went away (BrokenPipeError: ``| head``) is no error, as in the
    commands themselves; any other failure (``> file`` on a full disk) is an OutputError (exit 5).
    After a failure stdout goes to /dev/null (host.discard_output), so that the interpreter's own
    last flush does not fail again (a traceback and exit 120)."""
    try:
        sys.stdout.flush()
        return None
    except BrokenPipeError:
        failed = None
    except OSError as exc:
        from ..errors import OutputError

        failed = OutputError(exc.strerror or str(exc))
    from ..host import discard_output

    discard_output()
    return failed
