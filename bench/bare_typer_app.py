"""The cold-start baseline: a bare typer app shaped like hostdev (a group with a callback and
one trivial subcommand), run by the same interpreter.

    .venv/bin/python bench/bare_typer_app.py --help
    .venv/bin/python bench/bare_typer_app.py hello
"""

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def _root() -> None:
    """A bare typer app."""


@app.command()
def hello() -> None:
    """Print one line."""
    print("hello")


if __name__ == "__main__":
    app()
