#!/usr/bin/env python3
"""Build the sandbox of docs/getting-started.md: the host the page is written on (a fake root
with the simulated kernel of tests/fakesys, pci.ids, and a hostdev, sudo and reboot of its own),
where every command of the page, mutating ones included, prints what the page shows.

    scripts/sandbox.py DIR              # DIR: new or empty
    export PATH="DIR/bin:$PATH"         # then follow docs/getting-started.md
    scripts/sandbox.py --page [--check] # regenerate docs/getting-started.md's outputs (or check them)

Nothing in the sandbox reaches this machine: its hostdev acts on DIR/root only, its sudo runs
only the sandbox's hostdev and reboot. Details: tests/fakesys/sandbox.py.
"""
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = ROOT / "docs" / "getting-started.md"


def main(argv=None) -> int:
    from tests.fakesys import sandbox

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--page"]:
        from generated import sync

        with tempfile.TemporaryDirectory(prefix="hostdev-sandbox-") as tmp:
            base = sandbox.build(f"{tmp}/sandbox")
            text = sandbox.render_page(PAGE.read_text(), base)
        return sync({PAGE: text}, "sandbox.py --page", argv)
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        base = sandbox.build(argv[0])
    except FileExistsError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    print(f"sandbox ready: export PATH=\"{base / 'bin'}:$PATH\", then follow docs/getting-started.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
