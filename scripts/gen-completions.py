#!/usr/bin/env python3
"""Write completions/ (bash, zsh, fish) and the command index hostdev/cli/index.py from the CLI
itself. `--check` exits 1 when any is stale.

The index is the command tree as data (every command, option, argument, choice and help text):
`hostdev --help` lists the commands from it without importing them, and a TAB is answered from it
without typer (hostdev/cli/complete.py). The scripts call hostdev back at tab time.
"""
import pathlib
import pprint
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FILES = {"bash": "hostdev.bash", "zsh": "_hostdev", "fish": "hostdev.fish"}
INDEX = ROOT / "hostdev" / "cli" / "index.py"


def _first_line(text) -> str:
    return " ".join((text or "").split("\n\n", 1)[0].split())


def _given(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if v is not None}


def node(command, ctx) -> dict:
    """One command of the click tree as plain data (its subcommands loaded: all modules)."""
    import click

    options, args = [], []
    for param in command.get_params(ctx):
        choices = list(param.type.choices) if isinstance(param.type, click.Choice) else None
        if isinstance(param, click.Option):
            if param.hidden:
                continue
            if choices is None and param.metavar and "|" in param.metavar:  # "kubevirt|libvirt"
                choices = [c for c in param.metavar.split("|") if c.islower()] or None
            options.append(_given({"names": list(param.opts) + list(param.secondary_opts),
                                   "value": not (param.is_flag or param.count), "metavar": param.metavar,
                                   "choices": [str(c) for c in choices] if choices else None,
                                   "help": _first_line(param.help)}))
        elif isinstance(param, click.Argument):
            args.append(_given({"metavar": param.metavar or param.name.upper(), "nargs": param.nargs,
                                "choices": [str(c) for c in choices] if choices else None}))
    commands = {}
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            commands[name] = node(sub, click.Context(sub, parent=ctx, info_name=name))
    return {"help": command.short_help or command.help or "", "options": options, "args": args,
            "commands": commands}


def index_text() -> str:
    import click
    import typer.main

    from hostdev.cli.app import app

    root = typer.main.get_command(app)
    tree = node(root, click.Context(root, info_name="hostdev", **root.context_settings))
    return ('"""The command tree as data, written by scripts/gen-completions.py from the typer app (do not\n'
            "edit; tests/test_completions.py fails when it is stale). `hostdev --help` lists the commands\n"
            'from it without importing them (cli/app.py); a TAB is answered from it (cli/complete.py)."""\n'
            "# ruff: noqa: E501\n\n"
            f"TREE = {pprint.pformat(tree, width=116, sort_dicts=False)}\n")


def main() -> int:
    from generated import sync  # scripts/ is on sys.path: the script runs from there

    from hostdev.cli.complete import script

    files = {ROOT / "completions" / name: script(shell) for shell, name in FILES.items()}
    files[INDEX] = index_text()
    return sync(files, "gen-completions.py")


if __name__ == "__main__":
    sys.exit(main())
