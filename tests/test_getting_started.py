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


def _pci_shape(members):
    """address → (device directory, the names recorded in it, its links resolved as host paths)."""
    import posixpath

    shape = {}
    for link in (p for p in members if p.startswith("/sys/bus/pci/devices/")):
        path = posixpath.normpath(posixpath.join("/sys/bus/pci/devices", members[link].target))
        names = {posixpath.basename(p) for p in members if posixpath.dirname(p) == path}
        links = {posixpath.basename(p): posixpath.normpath(posixpath.join(path, m.target))
                 for p, m in members.items() if posixpath.dirname(p) == path and m.kind == "link"}
        shape[posixpath.basename(link)] = (path, names, links)
    return shape


def test_the_sandbox_has_the_shape_of_this_real_host(tmp_path):
    """The sandbox's PCI functions are laid out as this machine's (recorded read-only, as
    ``hostdev record`` does): every attribute every real function has is there, device
    directories under /sys/devices/pciDDDD:BB, and relative links that resolve to the bus and
    driver directories as the kernel's do."""
    from hostdev import recording
    from hostdev.host import Host

    real = _pci_shape(recording.record(Host("/")))
    assert real, "this machine shows no PCI function"
    common = set.intersection(*(names for _, names, _ in real.values()))
    # what every Linux PCI function has (drivers/pci/pci-sysfs.c), whatever this machine is
    assert {"vendor", "device", "class", "subsystem_vendor", "subsystem_device", "uevent", "modalias",
            "driver_override", "remove", "subsystem"} <= common
    box = sandbox.build_host(str(tmp_path / "root"))
    shape = _pci_shape(recording.record(Host(box.root)))
    assert set(shape) >= {"0000:17:00.0", "0000:17:00.1", "0000:65:00.0"}
    for addr, (path, _, links) in list(real.items()) + list(shape.items()):
        assert path.startswith("/sys/devices/pci") and path.endswith("/" + addr), (addr, path)
        assert links["subsystem"] == "/sys/bus/pci", addr
        if "driver" in links:
            assert links["driver"].startswith("/sys/bus/pci/drivers/"), (addr, links["driver"])
    for addr, (_, names, _) in shape.items():
        assert common <= names, (addr, sorted(common - names))
