"""The console script: a TAB (``_HOSTDEV_COMPLETE`` set by the completion scripts) is answered by
cli/complete.py without importing typer or any command; everything else runs the typer app."""

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
    from .app import main as run

    run()
