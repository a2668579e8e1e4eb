#!/usr/bin/env python3
"""Write docs/hostdev.1 (a man page) from the CLI itself: every command, its arguments and options
with their help, from the same typer/click definitions as --help. `--check` exits 1 when stale.

    man ./docs/hostdev.1
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = ROOT / "docs" / "hostdev.1"


def esc(text: str) -> str:
    """Troff-safe text: backslashes doubled, a leading dot or quote protected."""
    text = " ".join((text or "").split()).replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def commands(group, prefix=()):
    """(words, click command) for every leaf command, in the order --help lists them."""
    import click

    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if cmd is None or cmd.hidden:
            continue
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:  # `hostdev devices` lists, `hostdev devices show` shows
                yield prefix + (name,), cmd
            yield from commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def _metavar(argument) -> str:
    """ADDR... or [ADDR...]: spelt here, not by click/typer, whose spelling changes by version."""
    name = (argument.metavar or argument.name.upper()).strip("[]")
    if argument.nargs == -1 and not name.endswith("..."):
        name += "..."
    return name if argument.required else f"[{name}]"


def render() -> str:
    import click
    import typer.main

    from hostdev import __version__
    from hostdev.cli.app import app

    root = typer.main.get_command(app)
    out = [f'.TH HOSTDEV 1 "" "hostdev {__version__}" "User Commands"',
           ".SH NAME", "hostdev \\- prepare Linux hosts for PCI and mediated\\-device passthrough (KubeVirt, libvirt)",
           ".SH SYNOPSIS", ".B hostdev", "[\\-\\-root PATH] COMMAND [OPTIONS] [ARGS]",
           ".SH DESCRIPTION", esc(root.help or ""),
           ".PP", esc("Every command takes -o table|json|yaml; data goes to stdout, messages to stderr. Commands "
                      "that change the host take --dry-run and need root. Exit codes: 0 done, 1 check: not "
                      "ready, 2 bad input, 3 refused by an interlock, 4 environment (not root, tool missing), "
                      "5 failed and rolled back."),
           ".SH GLOBAL OPTIONS"]
    for param in root.params:
        if isinstance(param, click.Option) and not param.hidden and param.help:
            out += [".TP", "\\fB" + esc(", ".join(param.opts)) + "\\fR", esc(param.help)]
    out.append(".SH COMMANDS")
    for words, cmd in commands(root):
        usage = " ".join(words)
        args = " ".join(esc(_metavar(p)) for p in cmd.params if isinstance(p, click.Argument))
        out += [".SS " + esc(f"hostdev {usage}") + (f" {args}" if args else ""), esc(cmd.help or "")]
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden and "--help" not in param.opts:
                value = "" if param.is_flag else " \\fI" + esc(param.metavar or param.type.name.upper()) + "\\fR"
                out += [".TP", "\\fB" + esc(", ".join(param.opts)) + "\\fR" + value, esc(param.help or "")]
    out += [".SH ENVIRONMENT", ".TP", "\\fBHOSTDEV_ROOT\\fR", esc("Act on the tree under this path instead of /."),
            ".SH FILES", ".TP", "/var/lib/hostdev/bindings.json", esc("original drivers of the devices hostdev moved"),
            ".TP", "/var/lib/hostdev/boot-args.json", esc("the kernel arguments hostdev added"),
            ".TP", "/etc/default/grub.d/hostdev.cfg", esc("hostdev's GRUB drop-in (Debian, Ubuntu)"),
            ".TP", "/etc/hostdev/bindings.d/", esc("persistent bindings, re-applied at boot"),
            ".TP", "/etc/modules-load.d/hostdev-vfio.conf, /etc/modprobe.d/hostdev-vfio.conf",
            esc("vfio modules at boot; softdeps"),
            ".SH SEE ALSO", "lspci(8), driverctl(8), mdevctl(8), virsh(1), kubectl(1); docs/ in the source tree"]
    return "\n".join(out) + "\n"


def main() -> int:
    from generated import sync

    return sync({PAGE: render()}, "gen-man.py")


if __name__ == "__main__":
    sys.exit(main())
