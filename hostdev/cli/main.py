"""The console script: a TAB (``_HOSTDEV_COMPLETE`` set by the completion scripts) is answered by
cli/complete.py without importing typer or any command, a plain ``devices`` listing by
cli/listing.py (the command's own code, without typer's start-up); everything else runs the typer
app."""

import os
import sys


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
    """Exit with ``code`` once stdout and stderr are flushed, without the interpreter's teardown,
    which frees a listing's objects one by one (~4 ms at 4,096 functions): nothing of the fast
    paths needs it (no atexit handler, no file left open). A flush that fails leaves the usual
    way, which reports it as every other command does."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - reported by the usual exit below
        sys.exit(code)
    os._exit(code)
