"""The typer application and the entry point that renders errors once.

The command modules are imported only when their command runs (or its help is shown): ``hostdev
--help`` lists them from the command index (cli/index.py, generated from this app), so a command
pays for its own imports only (docs/benchmarks.md)."""

import importlib
import sys
from typing import Optional

import typer
import typer.core
import typer.main

from .. import __version__
from ..errors import HostdevError
from ..render import Format
from .context import GlobalOutputOption, HostdevGroup, render_error, set_root

# name → (module under hostdev.cli, attribute, "group" for a typer app or "command" for a
# function), in the order --help lists them: typer lists commands before groups.
COMMANDS = {
    "check": ("check", "check", "command"),
    "bind": ("binding", "bind", "command"),
    "unbind": ("binding", "unbind", "command"),
    "restore": ("binding", "restore", "command"),
    "bindings": ("binding", "bindings", "command"),
    "inventory": ("inventory", "inventory", "command"),
    "apply": ("apply", "apply", "command"),
    "record": ("record", "record", "command"),
    "devices": ("devices", "app", "group"),
    "iommu": ("iommu", "app", "group"),
    "kubevirt": ("kubevirt", "app", "group"),
    "mdev": ("mdev", "app", "group"),
    "modules": ("modules", "app", "group"),
    "sriov": ("sriov", "app", "group"),
    "vm": ("vm", "app", "group"),
}


def load_command(name: str):
    """The click command of one entry of COMMANDS, built by typer as add_typer/command would."""
    module, attribute, kind = COMMANDS[name]
    target = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
    holder = typer.Typer()
    if kind == "group":
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(HostdevGroup):
    """hostdev's top-level group: each command's module is imported when the command is looked
    up to run; usage errors are rendered as one line (context.HostdevGroup). Listing them for
    --help uses stand-ins with the help text of the command index,
    the same text the real command has (tests/test_completions.py compares the two)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        for name in COMMANDS:
            stand_in = typer.core.TyperCommand(name)
            stand_in.lazy = True
            self.commands.setdefault(name, stand_in)

    def get_command(self, ctx, cmd_name):
        command = self.commands.get(cmd_name)
        if command is not None and getattr(command, "lazy", False) and not self._listing:
            command = self.commands[cmd_name] = load_command(cmd_name)
        return command

    def format_help(self, ctx, formatter) -> None:
        from .index import TREE  # only a listing needs the help texts

        for name, command in self.commands.items():
            if getattr(command, "lazy", False):
                # .get: scripts/gen-completions.py runs this app to write a stale or missing index anew
                command.help = TREE["commands"].get(name, {}).get("help")
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _completion_scripts() -> None:
    """--show-completion and --install-completion give completions/'s scripts, not typer's own
    (whose bash script pastes a PCI address after the ``0000:`` already typed: issue 17)."""
    from typer import _completion_shared

    from .complete import SHELLS, typer_template

    scripts = getattr(_completion_shared, "_completion_scripts", None)
    if isinstance(scripts, dict):
        scripts.update({shell: typer_template(shell) for shell in SHELLS})


_completion_scripts()

app = typer.Typer(
    cls=LazyGroup,
    name="hostdev",
    help="Prepare Linux hosts for PCI and mediated-device passthrough (KubeVirt, libvirt).",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"hostdev {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    root: Optional[str] = typer.Option(None, "--root", envvar="HOSTDEV_ROOT", metavar="PATH",
                                       help="Act on the tree under PATH, or on a recording (hostdev record "
                                            "FILE), instead of / (env HOSTDEV_ROOT)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    output: Optional[Format] = GlobalOutputOption,
) -> None:
    try:
        ctx.obj = set_root(root)
    except HostdevError as exc:
        render_error(exc)
        raise typer.Exit(exc.exit_code) from None


def main() -> None:
    """The console-script entry point."""
    app(prog_name="hostdev")
