"""docs/hostdev.1 is generated from the CLI (scripts/gen-man.py) and must not go stale."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_committed_man_page_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/gen-man.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_command_has_a_section():
    page = (ROOT / "docs/hostdev.1").read_text()
    for words in ("devices", "devices show", "check", "bind", "iommu enable", "iommu disable", "modules load",
                  "apply", "mdev create", "kubevirt permitted", "inventory", "vm test"):
        assert f".SS hostdev {words}" in page.replace("\\-", "-"), words
