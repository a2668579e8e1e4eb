"""docs/commands/*.md show hostdev's real output (scripts/gen-command-docs.py runs the CLI on the
test suite's fake hosts); a change to any command's output must regenerate them."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_command_pages_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/gen-command-docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
