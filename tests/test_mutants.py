"""Tests for mutants that survived bench/mutation.py (issue 19; docs/testing.md, "Mutation
testing"). The binding tests drive hostdev on a fake root with the simulated kernel
(tests/fakesys, the Intel T4 host); the Host tests use a plain temporary root. Each asserts what
the kernel, the files on disk or the JSON contract show afterwards. The mutants each test kills
are named in its docstring; each was switched on in mutmut's scratch copy of the project
(``MUTANT_UNDER_TEST``) and the test seen failing, then passing on the real code."""

from __future__ import annotations

import errno
import json
import os

import pytest

from hostdev import binding
from hostdev.errors import ConfigWriteError, RefusedError, SysfsWriteError, UsageError
from hostdev.host import Host

PERSIST_DIR = "etc/hostdev/bindings.d"


def driver_of(sim, address):
    return Host(sim.root).link_name(f"/sys/bus/pci/devices/{address}/driver")


def _persist(sim, address: str, driver: str = "vfio-pci") -> None:
    """A persistent binding as `bind --persist` leaves it: one file per device, the driver's name."""
    os.makedirs(os.path.join(sim.root, PERSIST_DIR), exist_ok=True)
    with open(os.path.join(sim.root, PERSIST_DIR, f"pci-{address}"), "w") as handle:
        handle.write(driver + "\n")


# ---------------------------------------------------------------- binding.plan_persisted
def test_the_boot_time_apply_skips_a_device_that_is_gone_and_binds_the_rest(sim):
    """Kills x_plan_persisted__mutmut_13 (the note about the missing device dropped) and _14
    (``continue`` → ``break``: every persistent binding after a missing device is skipped).

    0000:00:00.1 does not exist on this host (a card taken out since) and sorts before the T4."""
    _persist(sim, "0000:00:00.1")
    _persist(sim, sim.t4)
    code, out, err = sim.invoke("bind", "--persisted", "-o", "json")
    assert code == 0, err
    assert driver_of(sim, sim.t4) == "vfio-pci"
    assert "0000:00:00.1 (/etc/hostdev/bindings.d/pci-0000:00:00.1) is not on this host" in json.loads(out)["notes"]


def test_the_boot_time_apply_takes_an_interlocked_device_only_with_force(sim):
    """Kills x_plan_persisted__mutmut_24, _28 (``--persisted --force`` no longer passing force
    on: the binding the administrator forced once could never be re-applied at boot)."""
    nic = sim.addresses["nic_pf"]  # the E810 PF carrying the default route (eth0)
    _persist(sim, nic)
    code, _, err = sim.invoke("bind", "--persisted")
    assert code != 0 and "refusing to take" in err
    assert driver_of(sim, nic) == "ice"
    code, _, err = sim.invoke("bind", "--persisted", "--force")
    assert code == 0, err
    assert driver_of(sim, nic) == "vfio-pci"


# ---------------------------------------------------------------- binding.plan_unbind
def test_unbind_refuses_an_interlocked_device_unless_forced(sim):
    """Kills x_plan_unbind__mutmut_1 (``force`` defaulting to True: every caller that does not
    say would take the NIC carrying the default route)."""
    nic = sim.addresses["nic_pf"]
    devices = binding.resolve_addresses(sim.host, [nic])
    with pytest.raises(RefusedError):
        binding.plan_unbind(sim.host, devices)
    assert driver_of(sim, nic) == "ice"
    binding.plan_unbind(sim.host, devices, force=True).plan.apply(sim.host)
    assert driver_of(sim, nic) is None


def test_unbind_of_a_device_without_a_driver_reports_it_unchanged(sim):
    """Kills x_plan_unbind__mutmut_8–12: the JSON entry (docs/json.md) of a device that has no
    driver — its address, action "none", its IOMMU group and the note "no driver"."""
    assert sim.invoke("unbind", sim.qat)[0] == 0
    writes = len(sim.kernel.writes)
    code, out, err = sim.invoke("unbind", sim.qat, "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["devices"] == [{"address": sim.qat, "from_driver": None, "to_driver": None, "action": "none",
                                "group": sim.groups["qat"], "changed": False, "note": "no driver"}]
    assert data["changed"] is False and len(sim.kernel.writes) == writes


def test_unbind_goes_on_past_a_device_that_has_no_driver(sim):
    """Kills x_plan_unbind__mutmut_23 (``continue`` → ``break``: the devices after a driverless
    one stay on their drivers). The T4 (0000:65:00.0) sorts before the QAT (0000:6b:00.0)."""
    assert sim.invoke("unbind", sim.t4)[0] == 0
    assert driver_of(sim, sim.t4) is None and driver_of(sim, sim.qat) == "4xxx"
    code, _, err = sim.invoke("unbind", sim.t4, sim.qat)
    assert code == 0, err
    assert driver_of(sim, sim.qat) is None


def test_unbind_dry_run_lists_each_step_and_changes_nothing(sim):
    """Kills x_plan_unbind__mutmut_40, _43 and the mutants of the other step descriptions: the
    actions of ``unbind --dry-run -o json`` (docs/json.md), which is all an administrator sees
    before saying yes."""
    code, out, err = sim.invoke("unbind", sim.qat, "--dry-run", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["actions"] == [
        {"action": "record 0000:6b:00.0's driver (4xxx) in /var/lib/hostdev/bindings.json", "device": sim.qat},
        {"action": "unbind 0000:6b:00.0 from 4xxx", "device": sim.qat},
        {"action": "verify 0000:6b:00.0 has no driver", "device": sim.qat},
    ]
    # and the one file it would write (x_plan_unbind__mutmut_49)
    assert json.loads(out)["files_changed"] == [{"path": "/var/lib/hostdev/bindings.json", "change": "write"}]
    assert sim.kernel.writes == [] and driver_of(sim, sim.qat) == "4xxx"
    assert not os.path.exists(os.path.join(sim.root, "var/lib/hostdev/bindings.json"))


def _refuse_unbind(sim, monkeypatch, address):
    """The kernel refuses to unbind ``address`` (EIO), as a driver's remove can fail."""
    write = sim.kernel.write

    def refuse_unbind(path, value):
        if path.endswith("/unbind") and value == address:
            sim.kernel.writes.append((path, value))
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return write(path, value)

    monkeypatch.setattr(sim.kernel, "write", refuse_unbind)


def test_a_failed_unbind_leaves_no_journal_entry(sim, monkeypatch):
    """Kills x_plan_unbind__mutmut_42, _47 (the journal record's undo dropped or replaced by the
    address): the kernel refuses the unbind (EIO), the plan rolls back, and the journal must not
    keep an entry for a device hostdev never moved."""
    _refuse_unbind(sim, monkeypatch, sim.qat)
    code, _, err = sim.invoke("unbind", sim.qat)
    assert code != 0 and "Input/output error" in err
    assert driver_of(sim, sim.qat) == "4xxx"
    text = Host(sim.root).read_text("/var/lib/hostdev/bindings.json")
    assert text is None or json.loads(text)["devices"] == {}


def test_a_failed_unbind_gives_the_devices_unbound_before_it_back(sim, monkeypatch):
    """Kills x_plan_unbind__mutmut_54, _58 (the unbind's undo dropped), _64–66 (the undo given no
    address, no driver, no override): the T4, with an administrator's driver_override, is
    unbound, the QAT's unbind fails, and the rollback must give the T4 back to nvidia with its
    override."""
    Host(sim.root, kernel=sim.kernel).write_attr(f"/sys/bus/pci/devices/{sim.t4}/driver_override", "nvidia")
    _refuse_unbind(sim, monkeypatch, sim.qat)
    code, _, err = sim.invoke("unbind", sim.t4, sim.qat)
    assert code != 0, err
    assert driver_of(sim, sim.t4) == "nvidia" and driver_of(sim, sim.qat) == "4xxx"
    assert Host(sim.root).read_attr(f"/sys/bus/pci/devices/{sim.t4}/driver_override") == "nvidia"


def test_an_unbind_the_kernel_ignores_is_an_error_and_rolled_back(sim, monkeypatch):
    """Kills x_plan_unbind__mutmut_77 (verify asking about no device, which has no driver, so it
    always passes): the unbind write is accepted but the QAT stays on 4xxx (ANCHORS.md: silent
    success); unbind must fail and leave no journal entry."""
    write = sim.kernel.write

    def ignore_unbind(path, value):
        if path.endswith("/unbind") and value == sim.qat:
            sim.kernel.writes.append((path, value))
            return None
        return write(path, value)

    monkeypatch.setattr(sim.kernel, "write", ignore_unbind)
    code, _, err = sim.invoke("unbind", sim.qat)
    assert code != 0 and "is on 4xxx after the writes" in err
    text = Host(sim.root).read_text("/var/lib/hostdev/bindings.json")
    assert text is None or json.loads(text)["devices"] == {}


# ---------------------------------------------------------------- host.Host.write_file
def test_a_new_file_is_written_with_mode_0644(tmp_path):
    """Kills Host.write_file mutant 2 (the default mode 0o644 → 421 = 0o645: the udev rule and the
    unit world-executable). Modes are compared as written, umask aside: the file is chmod'ed."""
    host = Host(str(tmp_path))
    assert host.write_file("/etc/udev/rules.d/60-hostdev.rules", "# rule\n") is True
    assert os.stat(tmp_path / "etc/udev/rules.d/60-hostdev.rules").st_mode & 0o7777 == 0o644


def test_write_file_errors_and_refusals_name_the_path(tmp_path):
    """Kills Host.write_file mutants 39, 42 (the reason of a failed write) and 7 (the refused
    action's name)."""
    host = Host(str(tmp_path))
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostdev").write_text("a file where a directory should be\n")
    with pytest.raises(ConfigWriteError) as info:
        host.write_file("/etc/hostdev/bindings.d/pci-0000:65:00.0", "vfio-pci\n")
    assert info.value.message in ("cannot write /etc/hostdev/bindings.d/pci-0000:65:00.0: File exists",
                                  "cannot write /etc/hostdev/bindings.d/pci-0000:65:00.0: Not a directory")
    host.recording = "/srv/host.tar.gz"
    with pytest.raises(UsageError) as refused:
        host.write_file("/etc/modprobe.d/hostdev.conf", "options vfio-pci ids=10de:1eb8\n")
    assert refused.value.message.startswith("writing /etc/modprobe.d/hostdev.conf: --root /srv/host.tar.gz")
    assert not (tmp_path / "etc/modprobe.d").exists()


# ---------------------------------------------------------------- host.Host.write_attr (a real root)
def test_write_attr_writes_the_value_into_the_attribute_of_a_real_root(tmp_path):
    """Kills Host.write_attr mutants 13–17 (the write of a root without the simulated kernel:
    a plain file stands in for the sysfs attribute), 21, 25 (the hint of a failed write dropped)
    and 1 (the refused action's name)."""
    attr = tmp_path / "sys/bus/pci/devices/0000:65:00.0/driver_override"
    attr.parent.mkdir(parents=True)
    attr.write_text("")
    host = Host(str(tmp_path))
    host.write_attr("/sys/bus/pci/devices/0000:65:00.0/driver_override", "vfio-pci")
    assert attr.read_text() == "vfio-pci"
    with pytest.raises(SysfsWriteError) as failed:
        host.write_attr("/sys/bus/pci/devices/0000:65:00.0/reset", "1", hint="the device has no reset")
    assert failed.value.errno == errno.ENOENT and failed.value.fix == "the device has no reset"
    host.recording = "/srv/host.tar.gz"
    with pytest.raises(UsageError) as info:
        host.write_attr("/sys/bus/pci/devices/0000:65:00.0/driver_override", "nvidia")
    assert info.value.message.startswith("writing /sys/bus/pci/devices/0000:65:00.0/driver_override: --root")
    assert attr.read_text() == "vfio-pci"


# ---------------------------------------------------------------- host.Host.symlink, remove_file
@pytest.fixture
def root(tmp_path):
    base = tmp_path / "root"
    (base / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    (base / "lib/systemd/system").mkdir(parents=True)
    (base / "lib/systemd/system/old.service").write_text("[Unit]\n")
    return base


WANTS = "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"


def test_symlink_replaces_a_link_not_the_file_it_points_to(root):
    """Kills Host.symlink mutants 9, 10 (the path followed: the old link's target is deleted and
    the new link made in its place), 18 (the old link not unlinked), 12, 14, 16 (``exist_ok``
    dropped: a link into an existing directory fails), 3, 31 (the return values)."""
    host = Host(str(root))
    os.symlink("/lib/systemd/system/old.service", root / WANTS.lstrip("/"))
    assert host.symlink("/etc/systemd/system/hostdev-bindings.service", WANTS) is True
    assert os.readlink(root / WANTS.lstrip("/")) == "/etc/systemd/system/hostdev-bindings.service"
    assert (root / "lib/systemd/system/old.service").read_text() == "[Unit]\n"
    assert not (root / "lib/systemd/system/old.service").is_symlink()
    assert host.symlink("/etc/systemd/system/hostdev-bindings.service", WANTS) is False


def test_symlink_and_remove_file_errors_name_the_path_and_the_reason(root):
    """Kills Host.symlink mutants 24, 27, 28 and Host.remove_file 11, 14, 15: the error is the
    host path and the system's reason, never the real path under the root."""
    host = Host(str(root))
    (root / "etc/hostdev").write_text("a file where a directory should be\n")
    with pytest.raises(ConfigWriteError) as info:
        host.symlink("/x", "/etc/hostdev/link")
    assert info.value.message in ("cannot write /etc/hostdev/link: File exists",
                                  "cannot write /etc/hostdev/link: Not a directory")
    with pytest.raises(ConfigWriteError) as info:
        host.remove_file("/lib/systemd/system")
    assert info.value.message == "cannot write /lib/systemd/system: Is a directory"
    assert (root / "lib/systemd/system/old.service").exists()


def test_remove_file_removes_a_link_itself_and_says_whether_it_was_there(root):
    """Kills Host.remove_file mutant 9 (False for a missing file) and guards follow=False."""
    host = Host(str(root))
    os.symlink("/lib/systemd/system/old.service", root / WANTS.lstrip("/"))
    assert host.remove_file(WANTS) is True
    assert not os.path.lexists(root / WANTS.lstrip("/"))
    assert (root / "lib/systemd/system/old.service").read_text() == "[Unit]\n"
    assert host.remove_file(WANTS) is False


def test_a_recording_refuses_links_and_removals_naming_them(root):
    """Kills Host.symlink mutant 4 and Host.remove_file mutant 1 (the refused action's name)."""
    host = Host(str(root))
    host.recording = "/srv/host.tar.gz"
    with pytest.raises(UsageError) as info:
        host.symlink("/x", WANTS)
    assert info.value.message == f"linking {WANTS}: --root /srv/host.tar.gz is a recording, which hostdev only reads"
    with pytest.raises(UsageError) as info:
        host.remove_file("/lib/systemd/system/old.service")
    assert info.value.message.startswith("removing /lib/systemd/system/old.service: --root /srv/host.tar.gz")
    assert (root / "lib/systemd/system/old.service").exists() and not os.path.lexists(root / WANTS.lstrip("/"))


# ---------------------------------------------------------------- unbind and bridges
def test_unbind_refuses_a_root_port_as_bind_does_and_changes_nothing(sim):
    """bind refuses a bridge (rules.unbindable); unbind took the T4's root port 0000:64:02.0 off
    pcieport, which drops the port's hotplug, AER and PME services for everything behind it.
    Found from the open mutant x__refuse_if_held__mutmut_1 (docs/testing.md)."""
    port = "0000:64:02.0"
    assert driver_of(sim, port) == "pcieport"
    writes = len(sim.kernel.writes)
    code, _, err = sim.invoke("unbind", port)
    assert code == 2 and err.count("\n") == 1 and "is a PCI bridge" in err, err
    code, _, err = sim.invoke("unbind", sim.t4, port, "--force")
    assert code == 2 and "is a PCI bridge" in err, err
    assert driver_of(sim, port) == "pcieport" and driver_of(sim, sim.t4) == "nvidia"
    assert len(sim.kernel.writes) == writes
    # the card itself behind the port still unbinds
    assert sim.invoke("unbind", sim.t4)[0] == 0 and driver_of(sim, sim.t4) is None
