#!/usr/bin/env python3
"""Write completions/ (bash, zsh, fish) from the CLI itself. `--check` exits 1 when stale.

The scripts call hostdev back at tab time, so they complete every command and option of the
installed version and, for ADDR arguments, the PCI addresses of the host.
"""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = {"bash": "hostdev.bash", "zsh": "_hostdev", "fish": "hostdev.fish"}


def render(shell: str) -> str:
    env = dict(os.environ, _HOSTDEV_COMPLETE=f"source_{shell}")
    result = subprocess.run([sys.executable, "-m", "hostdev"], env=env, capture_output=True, text=True, check=False)
    text = result.stdout
    if not text.strip():
        raise SystemExit(f"no completion script for {shell}: {result.stderr.strip()}")
    # typer names the program after argv[0]; with "python -m hostdev" that is __main__.py
    text = text.replace("__main__.py", "hostdev").replace("_MAIN__PY_COMPLETE", "_HOSTDEV_COMPLETE")
    return text if text.endswith("\n") else text + "\n"


def main() -> int:
    from generated import sync  # scripts/ is on sys.path: the script runs from there

    return sync({ROOT / "completions" / name: render(shell) for shell, name in FILES.items()}, "gen-completions.py")

if __name__ == "__main__":
    sys.exit(main())
