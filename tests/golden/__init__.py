"""Golden files: expected outputs written out and read by a person, compared byte for byte.

``HOSTDEV_REGENERATE_GOLDEN=1`` rewrites them from the code (then read the diff before
committing: the files are the expectation, not the code's say-so).
"""
import os
import pathlib

from tests import guard

HERE = pathlib.Path(__file__).resolve().parent
REGENERATE = os.environ.get("HOSTDEV_REGENERATE_GOLDEN") == "1"


def check(folder: str, name: str, text: str) -> None:
    """Assert ``text`` equals tests/golden/FOLDER/NAME (or rewrite it when regenerating)."""
    path = HERE / folder / name
    if REGENERATE:
        guard.allow_root(str(path.parent))  # the one place a test may write into the checkout
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs (HOSTDEV_REGENERATE_GOLDEN=1 rewrites it)"
