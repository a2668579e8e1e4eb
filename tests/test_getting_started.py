"""docs/getting-started.md is the sandbox's transcript: every ``$ COMMAND`` of its console blocks,
run in order in the sandbox (tests/fakesys/sandbox.py, scripts/sandbox.py), prints exactly the
output under it. A change to hostdev's output, the sandbox's host or the page fails here until
``scripts/sandbox.py --page`` regenerates the page."""
import pathlib
import subprocess
import sys

import pytest

from tests.fakesys import sandbox

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_page_is_what_the_sandbox_prints():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/sandbox.py"), "--page", "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_page_runs_its_mutating_commands_and_names_only_what_the_host_has():
    page = (ROOT / "docs/getting-started.md").read_text()
    commands = [line[2:] for line in page.splitlines() if line.startswith("$ ")]
    # the mutating steps are run, not just shown (each through the sandbox's sudo)
    for step in ("sudo hostdev iommu enable --passthrough", "sudo reboot", "sudo hostdev modules load --persist",
                 "sudo hostdev bind 0000:17:00.0 --persist",
                 'sudo hostdev mdev create --parent 0000:65:00.0 --name "GRID T4-2A" --count 2 --persist'):
        assert step in commands, step
    # the mdev example's parent is the T4 and its type one the T4 offers (scenarios.T4_TYPES)
    assert "0000:41:00.0" not in page and "T4-1Q" not in page


@pytest.fixture
def box(tmp_path):
    return sandbox.build(str(tmp_path / "sandbox"))


def test_the_sandbox_changes_its_own_root(box):
    before = (box / "root/proc/cmdline").read_text()
    sandbox.run_in(box, "sudo hostdev bind 0000:17:00.0 --persist")
    driver = box / "root/sys/bus/pci/devices/0000:17:00.1/driver"
    assert driver.resolve().name == "vfio-pci"
    assert (box / "root/etc/hostdev/bindings.d").is_dir()
    sandbox.run_in(box, "sudo hostdev iommu enable --passthrough")
    assert "iommu=pt" not in before
    sandbox.run_in(box, "sudo reboot")
    after = (box / "root/proc/cmdline").read_text().split()
    # BOOT_IMAGE, root= and ro kept; then GRUB_CMDLINE_LINUX and _DEFAULT as the scenario sets them
    assert after[:3] == before.split()[:3]
    assert set(after[3:]) == {"intel_iommu=on", "iommu=pt", "quiet"}


def test_the_sandbox_sudo_runs_nothing_of_this_machine(box):
    result = subprocess.run([str(box / "bin/sudo"), "id"], capture_output=True, text=True)
    assert result.returncode == 2 and "runs only hostdev and reboot" in result.stderr
    with pytest.raises(RuntimeError, match="the sandbox has no ls"):
        sandbox.run_in(box, "ls /")
    with pytest.raises(RuntimeError, match="the sandbox has no /usr/bin/id"):
        sandbox.run_in(box, "/usr/bin/id")


def test_a_failing_page_command_is_an_error_not_an_output(box):
    with pytest.raises(RuntimeError, match="exited 2"):
        sandbox.run_in(box, "hostdev mdev create --parent 0000:41:00.0 --name 'GRID T4-1Q'")


def test_the_sandbox_refuses_a_directory_in_use(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    assert subprocess.run([sys.executable, str(ROOT / "scripts/sandbox.py"), str(tmp_path / "x")],
                          capture_output=True, text=True).returncode == 2
