"""The sandbox of docs/getting-started.md: the host the page is written on, as a fake root driven
by the simulated kernel, with a ``hostdev``, ``sudo`` and ``reboot`` of its own.

    scripts/sandbox.py DIR            # build it, then: export PATH="DIR/bin:$PATH"

Layout of DIR: ``root/`` (the fake root: sysfs, /proc, /etc, pci.ids …), ``bin/hostdev`` (this
checkout's hostdev on ``root/`` with the simulated kernel, so mutating commands work),
``bin/sudo`` (runs only the sandbox's hostdev and reboot, without privileges: the sandbox's
``sudo`` never reaches this machine), ``bin/reboot`` (the next boot's kernel arguments become
/proc/cmdline, as after a real reboot), ``state/`` (the counter behind the sandbox's UUIDs).

The host is tests/fakesys/scenarios.intel_host_t4 (an Ice Lake-SP server: Tesla T4, A10 with its
audio function, E810 with two VFs, QAT, NVMe root disk, Matrox boot VGA) with the T4 on NVIDIA's
vGPU host driver (mdev types GRID T4-1B/2B/2A, as in scenarios.T4_TYPES) and Debian 12's pci.ids
(tests/data/pci.ids-2023.04.10.xz) at /usr/share/misc/pci.ids, where Debian installs it. Its
layout (attributes, device directories, relative links) is checked against the real sysfs of the
machine the tests run on, recorded read-only (tests/test_getting_started.py).

Two things the sandbox makes deterministic, so that the page's outputs are exact: new mdev UUIDs
come from a counter (``00000000-0000-4000-8000-00000000000N``; a real host draws them at random),
and the lock and journal live under ``root/``.
"""

from __future__ import annotations

import lzma
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
PCI_IDS = REPO / "tests" / "data" / "pci.ids-2023.04.10.xz"
PCI_IDS_PATH = "/usr/share/misc/pci.ids"  # Debian's place (hostdev.pciids.SEARCH_PATHS)


def build_host(root: str):
    """The page's host under ``root`` (see the module docstring); returns its HostInfo."""
    from . import scenarios
    from .builder import FakeRoot

    info = scenarios.intel_host_t4(root, vgpu=True)
    fr = FakeRoot.attach(root)
    fr.write(PCI_IDS_PATH, lzma.decompress(PCI_IDS.read_bytes()), 0o644)
    return info


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def build(directory: str, python: Optional[str] = None) -> Path:
    """Make the sandbox in ``directory`` (new or empty). Raises FileExistsError otherwise."""
    base = Path(directory).resolve()
    if base.exists() and any(base.iterdir()):
        raise FileExistsError(f"{base} exists and is not empty")
    (base / "bin").mkdir(parents=True)
    (base / "state").mkdir()
    build_host(str(base / "root"))
    run = (f"PYTHONPATH={shlex.quote(str(REPO))} exec {shlex.quote(python or sys.executable)} "
           f"-m tests.fakesys.sandbox {shlex.quote(str(base))}")
    _script(base / "bin" / "hostdev", f'#!/bin/sh\n{run} hostdev "$@"\n')
    _script(base / "bin" / "reboot", f'#!/bin/sh\n{run} reboot "$@"\n')
    # sudo of the sandbox: no privileges, and nothing but the sandbox's own commands
    _script(base / "bin" / "sudo", (
        '#!/bin/sh\ncase "$1" in\n'
        f'  hostdev|reboot) {run} "$@" ;;\n'
        '  *) echo "sandbox sudo: runs only hostdev and reboot in the sandbox" >&2; exit 2 ;;\nesac\n'))
    return base


def _uuid_counter(state: Path):
    """uuid.uuid4 for the sandbox: ``00000000-0000-4000-8000-00000000000N``, N counting up across runs."""
    import uuid

    counter = state / "uuid"

    def next_uuid():
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(f"{n}\n")
        return uuid.UUID(f"00000000-0000-4000-8000-{n:012x}")

    return next_uuid


def hostdev(base: Path, argv: Sequence[str]) -> int:
    """Run hostdev with ``argv`` on the sandbox's root and simulated kernel; its exit code."""
    import uuid

    from hostdev.cli import context
    from hostdev.cli.app import app
    from hostdev.host import Host

    from .simkernel import SimKernel

    root = str(base / "root")
    kernel = SimKernel(root)
    context.host_factory = lambda _root: Host(root, kernel=kernel)
    uuid.uuid4 = _uuid_counter(base / "state")
    try:
        app(args=list(argv), prog_name="hostdev")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def reboot(base: Path) -> int:
    """The next boot's kernel arguments become /proc/cmdline (BOOT_IMAGE and root= kept)."""
    from hostdev.bootloader import read_boot_config
    from hostdev.host import Host
    from hostdev.kernel import read_cmdline

    host = Host(str(base / "root"))
    head = [a for a in read_cmdline(host) if a.startswith(("BOOT_IMAGE=", "root=")) or a in ("ro", "rw")]
    args = head + list(read_boot_config(host).args)
    (base / "root" / "proc" / "cmdline").write_text(" ".join(args) + "\n")
    return 0


# ------------------------------------------------------------------ the page
def run_in(base: Path, command: str) -> str:
    """What a user sees when typing ``command`` (one line of the page) in the sandbox's shell:
    stdout and stderr interleaved as printed. Only the sandbox's own programs run (bin/): the
    page never runs anything of this machine. Raises RuntimeError when the command fails."""
    import subprocess

    argv = shlex.split(command)
    program = base / "bin" / argv[0]
    if "/" in argv[0] or not program.is_file():
        raise RuntimeError(f"{command!r}: the sandbox has no {argv[0]} (only {', '.join(os.listdir(base / 'bin'))})")
    env = {"PATH": f"{base / 'bin'}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "LC_ALL": "C.UTF-8",
           "HOME": str(base / "state")}
    proc = subprocess.run([str(program), *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, env=env, cwd=str(base), text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{command!r} exited {proc.returncode} in the sandbox:\n{proc.stdout}")
    return proc.stdout


def render_page(text: str, base: Path) -> str:
    """``text`` (Markdown) with the output under every ``$ COMMAND`` of its ``console`` blocks
    replaced by what the command prints in the sandbox ``base``, run in page order (a block's
    commands are separated by a blank line)."""
    out: List[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        out.append(lines[i])
        if lines[i].strip() != "```console":
            i += 1
            continue
        i += 1
        commands = []
        while lines[i].strip() != "```":
            if lines[i].startswith("$ "):
                commands.append(lines[i][2:])
            i += 1
        shown = [f"$ {c}\n" + run_in(base, c) for c in commands]
        out.extend("\n".join(shown).rstrip("\n").split("\n"))
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[1] not in ("hostdev", "reboot"):
        print("usage: python -m tests.fakesys.sandbox DIR hostdev|reboot [ARGS...]", file=sys.stderr)
        return 2
    base = Path(argv[0])
    if not (base / "root" / "sys").is_dir():
        print(f"sandbox: {base} is not a sandbox (scripts/sandbox.py {base} makes one)", file=sys.stderr)
        return 2
    if argv[1] == "reboot":
        return reboot(base)
    return hostdev(base, argv[2:])


if __name__ == "__main__":
    sys.exit(main())
