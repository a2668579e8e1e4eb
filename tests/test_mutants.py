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
from hostdev.errors import (
    CommandError,
    ConfigWriteError,
    HostEnvironmentError,
    RefusedError,
    SysfsWriteError,
    UsageError,
)
from hostdev.host import Host
from tests.fakesys.builder import FakeRoot

PERSIST_DIR = "etc/hostdev/bindings.d"


def driver_of(sim, address):
    return Host(sim.root).link_name(f"/sys/bus/pci/devices/{address}/driver")


def _journal_devices(sim):
    """The journal's devices (address → entry), as hostdev wrote /var/lib/hostdev/bindings.json."""
    return json.loads(Host(sim.root).read_text("/var/lib/hostdev/bindings.json"))["devices"]


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


def _refuse_unbind(sim, monkeypatch, address, error=errno.EIO):
    """The kernel records the unbind of ``address`` and refuses it (``error``: EIO, as a driver's
    remove can fail), or with ``error=None`` accepts it and leaves the device bound (ANCHORS.md:
    the silent success)."""
    write = sim.kernel.write

    def refuse_unbind(path, value):
        if path.endswith("/unbind") and value == address:
            sim.kernel.writes.append((path, value))
            if error is None:
                return None
            raise OSError(error, os.strerror(error), path)
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
    _refuse_unbind(sim, monkeypatch, sim.qat, error=None)
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


# ---------------------------------------------------------------- host.Host.require_mutable
def test_a_recording_refuses_a_write_with_the_way_out(tmp_path):
    """Kills Host.require_mutable mutants 2–7 (the refusal of a change to a recording: its
    message and its way out)."""
    host = Host(str(tmp_path))
    host.recording = "/srv/host.tar.gz"
    with pytest.raises(UsageError) as info:
        host.write_file("/etc/modprobe.d/hostdev.conf", "options vfio-pci ids=10de:1eb8\n")
    assert info.value.message == ("writing /etc/modprobe.d/hostdev.conf: --root /srv/host.tar.gz is a recording, "
                                  "which hostdev only reads")
    assert info.value.fix == "add --dry-run to see the plan, or run it on the recorded host"
    assert os.listdir(tmp_path) == []


def test_the_live_host_is_changed_only_by_root_and_never_from_the_tests(monkeypatch):
    """Kills Host.require_mutable mutants 15–20 (the test guard's way out), 22 (``geteuid() !=
    1``: uid 1 allowed, and root refused) and 23 (the refused action's name). Only the check is
    called: nothing is written."""
    live = Host("/")
    with pytest.raises(HostEnvironmentError) as info:
        live.require_mutable("hostdev bind")
    assert info.value.message == "hostdev bind: refusing to change the live host from the test suite"
    assert info.value.fix == "tests must use a fake root (--root) or the QEMU guest"
    monkeypatch.delenv("HOSTDEV_TEST_GUARD")
    monkeypatch.setattr(os, "geteuid", lambda: 1)
    with pytest.raises(HostEnvironmentError) as info:
        live.require_mutable("hostdev bind")
    assert info.value.message == "hostdev bind changes the live host and needs root"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert live.require_mutable("hostdev bind") is None


# ---------------------------------------------------------------- host: the readers, module functions
def test_a_link_name_is_the_targets_last_name_as_written(tmp_path):
    """Kills Host.link_name mutant 8 and Host.scan_attrs mutant 51 (``rstrip("XX/XX")``: a name
    ending in X lost its X's; only trailing slashes go)."""
    device = tmp_path / "sys/devices/pci0000:00/0000:00:01.0"
    device.mkdir(parents=True)
    os.symlink("../../../bus/pci/drivers/SYSX/", device / "driver")
    host = Host(str(tmp_path))
    assert host.link_name("/sys/devices/pci0000:00/0000:00:01.0/driver") == "SYSX"
    assert host.scan_attrs("/sys/devices/pci0000:00/0000:00:01.0", [], ["driver"])[1] == {"driver": "SYSX"}


def _in_ascii_locale(code: str) -> str:
    """``code``'s output from a Python whose locale encoding is ASCII (LC_ALL=C, neither UTF-8
    mode nor locale coercion): what ``open()`` without an encoding would decode with there."""
    import subprocess
    import sys

    env = dict(os.environ, LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout


def test_host_text_is_utf8_whatever_the_locale(tmp_path):
    """Kills Host.read_text mutants 2, 5 and in_test_guest mutants 4, 6 (the file opened in the
    locale's encoding: under LC_ALL=C a UTF-8 name in a config file became two replacement
    characters, and a UTF-8 kernel command line an exception)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/f").write_text("# caf\u00e9\n", encoding="utf-8")
    (tmp_path / "cmdline").write_text("root=/dev/sda1 label=caf\u00e9 hostdev.testguest=1\n", encoding="utf-8")
    out = _in_ascii_locale(
        "from hostdev.host import Host, in_test_guest\n"
        f"print(ascii(Host({str(tmp_path)!r}).read_text('/etc/f')), in_test_guest({str(tmp_path / 'cmdline')!r}))")
    assert out == "'# caf\\xe9\\n' True\n"


def test_the_test_guest_is_told_by_the_running_kernels_command_line(monkeypatch):
    """Kills in_test_guest mutants 1, 2 (the default file renamed: inside the QEMU guest
    hostdev would not know it is there, and refuse to change the guest's own /sys)."""
    import builtins
    import io

    from hostdev.host import in_test_guest

    real_open = builtins.open
    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        if path == "/proc/cmdline":
            return io.StringIO("console=ttyS0 hostdev.testguest=1\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert in_test_guest() is True and opened == ["/proc/cmdline"]


def test_a_document_that_never_ends_is_refused_at_the_limit(tmp_path):
    """Kills read_document mutants 5, 7 (the whole file read before its size is checked: a
    profile given as a pipe that never ends, ``--profile <(yes)``, hung hostdev). The writer
    stops after 30 s whatever happens, so that the mutant fails rather than hangs."""
    import threading

    from hostdev.host import read_document

    fifo = tmp_path / "profile"
    os.mkfifo(fifo)
    closed = threading.Event()

    def never_ending():
        pipe = os.open(fifo, os.O_RDWR)  # read-write: the open does not wait for the reader
        try:
            os.write(pipe, b"y\n" * 8)
            closed.wait(30)
        finally:
            closed.set()
            os.close(pipe)

    writer = threading.Thread(target=never_ending)
    writer.start()
    try:
        with pytest.raises(UsageError) as info:
            read_document(str(fifo), "profile", limit=10)
        finished_first = not closed.is_set()
    finally:
        closed.set()
        writer.join()
    assert info.value.message == f"profile {fifo}: is more than the 10 bytes hostdev reads"
    assert finished_first


# ---------------------------------------------------------------- host.Host._open_lock, run
def test_the_lock_directory_is_0755_whatever_the_umask(tmp_path):
    """Kills Host._open_lock mutant 12 (the directory made with the default mode: under umask 0
    it is 0777, which the lock then refuses as writable by others)."""
    old = os.umask(0)
    try:
        with Host(str(tmp_path)).lock(timeout=0.1):
            pass
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "run/hostdev").st_mode & 0o7777 == 0o755


def test_a_planted_lock_link_is_refused_with_the_reason_and_the_way_out(tmp_path):
    """Kills Host._open_lock mutants 54, 56–59 (the refusal of a lock file that is a link: the
    kernel's reason, and the way out)."""
    (tmp_path / "run/hostdev").mkdir(parents=True)
    os.chmod(tmp_path / "run/hostdev", 0o755)
    os.symlink(str(tmp_path / "victim"), tmp_path / "run/hostdev/lock")
    with pytest.raises(HostEnvironmentError) as info:
        with Host(str(tmp_path)).lock(timeout=0.1):
            pass
    assert info.value.message == "cannot open /run/hostdev/lock: Too many levels of symbolic links"
    assert info.value.fix == "it must be a regular file; remove it if it is not"


def test_a_command_gets_the_environment_and_its_failure_keeps_both_outputs(tmp_path, monkeypatch):
    """Kills Host.run mutants 39 (the environment dropped but LC_ALL and PATH), 80 (the result's
    argv) and 94 (a failed command's stdout dropped from the error)."""
    monkeypatch.setenv("HOSTDEV_TEST_VALUE", "kept")
    host = Host(str(tmp_path))
    result = host.run(["sh", "-c", 'printf %s "$HOSTDEV_TEST_VALUE"'], mutating=False)
    assert result.argv == ("sh", "-c", 'printf %s "$HOSTDEV_TEST_VALUE"') and result.stdout == "kept"
    with pytest.raises(CommandError) as info:
        host.run(["sh", "-c", "echo partial; echo broken >&2; exit 2"], mutating=False)
    assert (info.value.stdout, info.value.stderr) == ("partial\n", "broken\n")


# ---------------------------------------------------------------- host.Host.scan_attrs
def test_the_listing_scan_leaves_no_descriptor_open(tmp_path):
    """Kills Host.scan_attrs mutant 17 (a function's directory, opened unchecked, opened again
    by path() and the first descriptor left open: a listing of 4,096 functions would run out)."""
    device = tmp_path / "sys/devices/pci0000:00/0000:00:01.0"
    device.mkdir(parents=True)
    (device / "vendor").write_text("0x10de\n")
    (tmp_path / "sys/bus/pci/devices").mkdir(parents=True)
    os.symlink("../../../devices/pci0000:00/0000:00:01.0", tmp_path / "sys/bus/pci/devices/0000:00:01.0")
    host = Host(str(tmp_path))
    before = sorted(os.listdir("/proc/self/fd"))
    with host.links_unchanged():  # the listing's way in
        for _ in range(3):
            assert host.scan_attrs("/sys/bus/pci/devices/0000:00:01.0", ["vendor"])[0] == {"vendor": "0x10de"}
    assert sorted(os.listdir("/proc/self/fd")) == before


# ---------------------------------------------------------------- host: the defaults
def test_the_default_host_is_the_live_one():
    """Kills Host.__init__ mutant 1 (the default root renamed)."""
    host = Host()
    assert host.root == "/" and host.is_live


def test_a_held_lock_is_waited_for_30_seconds_by_default(tmp_path, monkeypatch):
    """Kills Host.lock mutant 1 (the default wait 30 → 31 s). The clock is simulated: it moves
    only as much as the lock sleeps."""
    import time

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    with Host(str(tmp_path)).lock():
        with pytest.raises(HostEnvironmentError, match="another hostdev is changing this host"):
            with Host(str(tmp_path)).lock():
                pass
    assert 30.0 <= clock[0] - 1000.0 < 30.05


def test_a_command_that_hangs_is_stopped_after_300_seconds_by_default(tmp_path, monkeypatch):
    """Kills Host.run mutant 2 (the default time limit 300 → 301 s). The hang is simulated:
    subprocess.run raises what it raises when the limit passes."""
    import subprocess

    def hangs(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", hangs)
    with pytest.raises(CommandError) as info:
        Host(str(tmp_path)).run(["update-pciids"], mutating=False)
    assert info.value.stderr == "timed out after 300 s"


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


# ---------------------------------------------------------------- binding: the errors as JSON
def _error(out: str) -> dict:
    """The error object ``-o json`` prints on stdout (docs/json.md; Ansible reads it)."""
    data = json.loads(out)
    return {key: data[key] for key in ("error", "message", "fix", "exit_code")}


def test_a_bind_the_driver_does_not_take_names_where_the_device_is(sim):
    """Kills x__verify__mutmut_5, _7, _9, _10, _14, _15: the T4's probe by vfio-pci fails (EIO),
    so after the writes it is on no driver; the error says so and what to read next."""
    sim.kernel.fail_probe(sim.t4, "vfio-pci", errno.EIO)
    code, out, err = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 5, err
    error = _error(out)
    assert f"failed: {sim.t4} is on no driver after the writes, not vfio-pci; rolled back" in error["message"]
    assert error["fix"] == "see dmesg for the driver's probe error"
    assert driver_of(sim, sim.t4) == "nvidia"


def test_an_ignored_unbind_names_the_driver_the_device_is_still_on(sim, monkeypatch):
    """Kills x__verify__mutmut_8 (``now and 'no driver'``), _11–13 (the driver it should be on,
    none, misnamed)."""
    _refuse_unbind(sim, monkeypatch, sim.qat, error=None)
    code, out, err = sim.invoke("unbind", sim.qat, "-o", "json")
    assert code == 5, err
    error = _error(out)
    assert f"failed: {sim.qat} is on 4xxx after the writes, not no driver; rolled back" in error["message"]
    assert error["fix"] == "see dmesg for the driver's probe error"


def test_a_missing_vfio_group_node_is_named_with_the_check_to_run(sim):
    """Kills x__verify__mutmut_22–28: the error of a bind whose /dev/vfio/N never appears."""
    sim.kernel.create_dev_nodes = False
    group = sim.groups["t4"]
    code, out, err = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 5, err
    error = _error(out)
    assert f"failed: {sim.t4} is on vfio-pci but /dev/vfio/{group} did not appear; rolled back" in error["message"]
    assert error["fix"] == "is the IOMMU on? run 'hostdev check'"


def test_a_target_driver_that_cannot_be_loaded_is_named_with_the_fix(sim):
    """Kills x__load_driver__mutmut_5–8 (a module modprobe does not find) and _11–16 (a module
    that loads but registers no PCI driver of that name: kvm): nothing was changed (exit 4)."""
    code, out, err = sim.invoke("bind", sim.t4, "--driver", "hostdev-no-such-driver", "-o", "json")
    assert code == 4, err
    error = _error(out)
    assert ("failed: driver hostdev-no-such-driver is not available: 'modprobe hostdev-no-such-driver' exited 1: "
            "modprobe: FATAL: Module hostdev-no-such-driver not found") in error["message"]
    assert error["fix"] == "install the module that provides hostdev-no-such-driver for this kernel"
    code, out, err = sim.invoke("bind", sim.t4, "--driver", "kvm", "-o", "json")
    assert code == 4, err
    error = _error(out)
    assert ("failed: modprobe kvm succeeded but /sys/bus/pci/drivers/kvm did not appear; nothing to roll back"
            in error["message"])
    assert error["fix"] == "check the driver name: 'ls /sys/bus/pci/drivers'"
    assert driver_of(sim, sim.t4) == "nvidia" and sim.kernel.writes == []


def test_a_bad_driver_name_is_refused_with_the_fix(sim):
    """Kills x_check_driver_name__mutmut_6–10 (the fix of a driver name that is a path)."""
    code, out, err = sim.invoke("bind", sim.t4, "--driver", "../x", "-o", "json")
    assert code == 2, err
    assert _error(out) == {"error": "UsageError", "message": "invalid driver name '../x'",
                           "fix": "a name as 'ls /sys/bus/pci/drivers' shows it, e.g. vfio-pci", "exit_code": 2}


def test_a_bridge_is_refused_naming_what_to_bind_instead(sim):
    """Kills x_refuse_unbindable__mutmut_19–24 (the bridge refusal's message and fix)."""
    code, out, err = sim.invoke("bind", "0000:64:02.0", "-o", "json")
    assert code == 2, err
    assert _error(out) == {
        "error": "UsageError",
        "message": "0000:64:02.0 is a PCI bridge or PCIe port (class 060400): bridges carry the host's own buses "
                   "and are never assigned to VMs",
        "fix": "name the device behind it (hostdev devices)", "exit_code": 2}
    assert driver_of(sim, "0000:64:02.0") == "pcieport"


def test_a_bridge_named_after_a_device_is_refused_too(sim):
    """Kills x_refuse_unbindable__mutmut_15 (``continue`` → ``break``: only the devices up to the
    first one that may be taken are looked at). The A10 (0000:17:00.0) sorts before the T4's
    root port (0000:64:02.0); neither bind nor unbind may touch either."""
    port, a10 = sim.addresses["t4_root_port"], sim.addresses["a10"]
    for command in ("bind", "unbind"):
        code, _, err = sim.invoke(command, a10, port)
        assert code == 2 and f"{port} is a PCI bridge" in err, err
    assert driver_of(sim, port) == "pcieport" and driver_of(sim, a10) == "nvidia"
    assert sim.kernel.writes == []


def test_a_function_the_iommu_does_not_cover_is_refused_by_bind_but_unbinds(sim):
    """Kills x_refuse_unbindable__mutmut_2, _6 (the IOMMU taken as off: the function is not
    refused), _11 (refused by unbind only), _25–31 (the refusal's message and fix); and unbind,
    which hands nothing to vfio, still takes it from its driver (``bridges_only``).

    The T4 without an IOMMU group on this intel_iommu=on host (a device the DMAR tables leave out)."""
    from tests.fakesys.builder import FakeRoot

    fr = FakeRoot.attach(sim.root)
    fr.leave_group(sim.t4, fr.device_path(sim.t4))
    code, out, err = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 4, err
    assert _error(out) == {
        "error": "HostEnvironmentError",
        "message": f"{sim.t4} has no IOMMU group although the IOMMU is on: the IOMMU does not translate it, "
                   "so vfio cannot take it",
        "fix": "see dmesg for the IOMMU driver's messages about this device", "exit_code": 4}
    assert driver_of(sim, sim.t4) == "nvidia" and sim.kernel.writes == []
    code, _, err = sim.invoke("unbind", sim.t4)
    assert code == 0, err
    assert driver_of(sim, sim.t4) is None


def test_selection_errors_name_what_was_asked_for(sim):
    """Kills x_resolve_addresses__mutmut_26–42 (the message and fix when nothing matches: the
    IDs, the vendor, the class, each only when given) and _45–53 (no device at all)."""
    code, out, err = sim.invoke("bind", "--device", "1234:5678", "-o", "json")
    assert code == 2, err
    assert _error(out) == {"error": "UsageError",
                           "message": "no device matches 1234:5678 on this host (bridges are never selected)",
                           "fix": "run 'hostdev devices' to see the IDs", "exit_code": 2}
    code, out, err = sim.invoke("bind", "--device", "1234:5678", "--device", "1234:5679", "--vendor", "1234",
                                "--class", "net", "-o", "json")
    assert code == 2, err
    assert _error(out)["message"] == ("no device matches 1234:5678, 1234:5679, vendor 1234, class net on this host "
                                      "(bridges are never selected)")
    code, out, err = sim.invoke("bind", "--class", "0b40", "--vendor", "10de", "-o", "json")
    assert code == 2, err
    assert _error(out)["message"] == ("no device matches vendor 10de, class 0b40 on this host "
                                      "(bridges are never selected)")
    code, out, err = sim.invoke("bind", "-o", "json")
    assert code == 2, err
    assert _error(out) == {
        "error": "UsageError", "message": "no device given",
        "fix": "name devices by address (0000:65:00.0), --device VVVV:DDDD, --vendor or --class", "exit_code": 2}
    assert sim.kernel.writes == []


def test_a_vendor_named_as_pci_ids_names_it_selects_its_devices(sim):
    """Kills x_resolve_addresses__mutmut_14, _18, _19 (the host's pci.ids not handed on: a vendor
    name then cannot be looked up). The host's pci.ids names vendor 10de."""
    os.makedirs(os.path.join(sim.root, "usr/share/misc"), exist_ok=True)
    with open(os.path.join(sim.root, "usr/share/misc/pci.ids"), "w") as handle:
        handle.write("# pci.ids\n10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n8086  Intel Corporation\n")
    code, out, err = sim.invoke("bind", "--vendor", "nvidia", "--class", "0302", "--dry-run", "-o", "json")
    assert code == 0, err
    assert [d["address"] for d in json.loads(out)["devices"]] == [sim.t4]


@pytest.mark.parametrize("selection, expected", [
    (["--device", "10de:1eb8"], ["0000:65:00.0"]),
    (["--vendor", "10de"], ["0000:17:00.0", "0000:17:00.1", "0000:65:00.0"]),
    (["--class", "0b40"], ["0000:6b:00.0"]),
    (["--vendor", "10de", "--class", "0302"], ["0000:65:00.0"]),
    (["0000:6b:00.0", "--device", "10de:1eb8"], ["0000:65:00.0", "0000:6b:00.0"]),
])
def test_each_selector_alone_or_together_binds_what_it_selects(sim, selection, expected):
    """Kills x_resolve_addresses__mutmut_8, _9 (``--vendor`` or ``--device`` alone ignored),
    _7, _43 (a device kept as None): what a bind by selector takes from the kernel's drivers."""
    code, _, err = sim.invoke("bind", *selection)
    assert code == 0, err
    on_vfio = sorted(a for a in os.listdir(os.path.join(sim.root, "sys/bus/pci/devices"))
                     if driver_of(sim, a) == "vfio-pci")
    assert on_vfio == expected


def test_binding_one_function_of_a_card_says_it_takes_the_other(sim):
    """Kills x__with_group__mutmut_23–26: the note about the A10's audio function, bound with
    the VGA function, naming the driver it is taken from — or that it has none."""
    a10, audio = sim.addresses["a10"], sim.addresses["a10_audio"]
    group = sim.groups["a10"]
    code, out, err = sim.invoke("bind", a10, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["notes"] == [f"also binding {audio} (10de:1aef, on snd_hda_intel): another function of "
                                        f"the same card in IOMMU group {group}"]
    assert driver_of(sim, a10) == driver_of(sim, audio) == "vfio-pci"
    assert sim.invoke("restore", "--all")[0] == 0
    assert sim.invoke("unbind", audio)[0] == 0
    code, out, err = sim.invoke("bind", a10, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["notes"] == [f"also binding {audio} (10de:1aef, on no driver): another function of "
                                        f"the same card in IOMMU group {group}"]


def _qat_into_the_t4_group(sim) -> None:
    """The QAT joins the T4's IOMMU group (no ACS between them): another card, on 4xxx."""
    from tests.fakesys.builder import FakeRoot

    fr = FakeRoot.attach(sim.root)
    fr.leave_group(sim.qat, fr.device_path(sim.qat))
    fr.join_group(sim.qat, sim.groups["t4"], path=fr.device_path(sim.qat))


def test_a_partial_group_is_refused_naming_the_blocker_and_the_fix(sim):
    """Kills x__with_group__mutmut_36–45 (the refusal's message and fix) and _46–49 (the note
    of ``--force``): the QAT, on 4xxx, in the T4's group."""
    _qat_into_the_t4_group(sim)
    group = sim.groups["t4"]
    code, out, err = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 3, err
    assert _error(out) == {
        "error": "RefusedError",
        "message": f"{sim.qat} (8086:4940, on 4xxx) shares IOMMU group {group} with {sim.t4}: the group would not "
                   "be viable",
        "fix": f"bind it too (hostdev bind {sim.t4} {sim.qat}) or pass --force", "exit_code": 3}
    assert driver_of(sim, sim.t4) == "nvidia" and sim.kernel.writes == []
    code, out, err = sim.invoke("bind", sim.t4, "--force", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["notes"] == [f"--force: {sim.qat} stays on 4xxx; IOMMU group {group} will not be viable "
                                        "for VFIO"]
    assert driver_of(sim, sim.t4) == "vfio-pci" and driver_of(sim, sim.qat) == "4xxx"


def test_a_bridge_on_a_host_driver_in_the_group_cannot_be_bound_around(sim):
    """Kills x__with_group__mutmut_37–41 (the fix for a blocking bridge: binding it too is no
    way out, hostdev never takes a bridge): the T4's root port in its group, on shpchp (a
    driver that owns its DMA, unlike pcieport)."""
    from tests.fakesys.builder import FakeRoot

    fr = FakeRoot.attach(sim.root)
    port = sim.addresses["t4_root_port"]
    fr.leave_group(port, fr.device_path(port))
    fr.join_group(port, sim.groups["t4"], path=fr.device_path(port))
    fr.unlink(f"{fr.device_path(port)}/driver")
    fr.bind(port, "shpchp")
    code, out, err = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 3, err
    error = _error(out)
    assert error["message"].startswith(f"{port} (8086:347a, on shpchp) shares IOMMU group {sim.groups['t4']}")
    assert error["fix"] == "nothing can make this group viable without taking a bridge from its driver"


def _held(message):
    """The error object of a refusal because a VFIO user holds the group (never forced)."""
    return {"error": "RefusedError", "message": message, "fix": "stop the VM or process first (virsh destroy …)",
            "exit_code": 3}


def test_a_held_group_refuses_restore_naming_every_holder(sim):
    """Kills x__refuse_if_held__mutmut_11–19: the refusal of a restore while two VMs hold the
    A10's group (one each function), its message naming both and its fix."""
    a10, audio = sim.addresses["a10"], sim.addresses["a10_audio"]
    assert sim.invoke("bind", a10)[0] == 0
    sim.kernel.hold(a10, pid=4242)
    sim.kernel.hold(audio, pid=4243, comm="qemu-kvm")
    code, out, err = sim.invoke("restore", a10, "-o", "json")
    assert code == 3, err
    assert _error(out) == _held(
        f"{a10} is in use: /dev/vfio/{sim.groups['a10']} is held by qemu-system-x86 (pid 4242), qemu-kvm (pid 4243)")
    assert driver_of(sim, a10) == "vfio-pci"


@pytest.mark.parametrize("command", ["unbind", "bind"])
def test_an_interlock_refusal_says_what_it_would_take_and_how_to_insist(sim, command):
    """Kills x__refuse_if_held__mutmut_31–37 (unbind's refusal of the NIC with the route) and
    x_plan_bind__mutmut_51–57 (bind's)."""
    nic = sim.addresses["nic_pf"]
    code, out, err = sim.invoke(command, nic, "-o", "json")
    assert code == 3, err
    assert _error(out) == {
        "error": "RefusedError",
        "message": f"refusing to take {nic} is network interface eth0, which carries a route (default via 10.0.0.1 "
                   "dev eth0)",
        "fix": "pass --force if you are sure", "exit_code": 3}
    assert driver_of(sim, nic) == "ice" and sim.kernel.writes == []


def test_restore_gives_a_forced_boot_vga_back_without_force(sim):
    """Kills x__refuse_if_held__mutmut_21 (the interlocks asked for a device on vfio-pci too):
    the boot VGA, taken with --force, goes back to its console driver with a plain restore —
    giving the console back must not need --force."""
    vga = sim.addresses["boot_vga"]
    assert sim.invoke("bind", vga)[0] == 3
    assert sim.invoke("bind", vga, "--force")[0] == 0 and driver_of(sim, vga) == "vfio-pci"
    code, _, err = sim.invoke("restore", vga)
    assert code == 0, err
    assert driver_of(sim, vga) == "mgag200"


def test_restore_gives_a_boot_vga_unbound_by_force_back_without_force(sim):
    """A bug: the boot VGA, left on no driver by ``unbind --force``, could not be restored
    without --force (the interlocks were asked about a device that has no driver, so nothing of
    the host to take away); giving the console back must not need --force."""
    vga = sim.addresses["boot_vga"]
    assert sim.invoke("unbind", vga)[0] == 3
    assert sim.invoke("unbind", vga, "--force")[0] == 0 and driver_of(sim, vga) is None
    code, _, err = sim.invoke("restore", vga)
    assert code == 0, err
    assert driver_of(sim, vga) == "mgag200"


# ---------------------------------------------------------------- binding._rebind
def test_a_rollback_to_a_driver_unloaded_meanwhile_asks_the_kernel_to_probe(sim, monkeypatch):
    """Kills x__rebind__mutmut_23–26: the QAT's bind fails at vfio-pci's probe, and qat_4xxx was
    unloaded once the QAT had left it (an rmmod of a module with no device left); the rollback
    cannot bind to 4xxx, whose directory is gone, so it asks the kernel to probe the device
    (drivers_probe) and the rollback completes."""
    sim.kernel.fail_probe(sim.qat, "vfio-pci", errno.EIO)
    write = sim.kernel.write

    def unload_after_unbind(path, value):
        write(path, value)
        if path == "/sys/bus/pci/drivers/4xxx/unbind":
            assert sim.kernel.run(["modprobe", "-r", "qat_4xxx"]).rc == 0

    monkeypatch.setattr(sim.kernel, "write", unload_after_unbind)
    code, _, err = sim.invoke("bind", sim.qat)
    assert code == 5 and "rolled back" in err and "ROLLBACK INCOMPLETE" not in err, err
    assert sim.kernel.writes[-3:] == [("/sys/bus/pci/devices/0000:6b:00.0/driver_override", "\n"),
                                      ("/sys/bus/pci/drivers_probe", sim.qat),
                                      ("/sys/bus/pci/devices/0000:6b:00.0/driver_override", "\n")]
    assert driver_of(sim, sim.qat) is None


def test_a_rollback_gives_the_device_back_under_an_override_naming_another_driver(sim):
    """A bug (found from x_plan_bind__mutmut_119): the T4 is on nvidia, and its driver_override
    names pci-stub (written after the T4 was bound: it only counts at the next probe). vfio-pci's
    probe fails; the rollback wrote the old override back before binding to nvidia, which the
    kernel then refused (ENODEV): ROLLBACK INCOMPLETE, the T4 left on no driver. The override
    now goes back after the bind."""
    Host(sim.root, kernel=sim.kernel).write_attr(f"/sys/bus/pci/devices/{sim.t4}/driver_override", "pci-stub")
    sim.kernel.fail_probe(sim.t4, "vfio-pci", errno.EIO)
    code, _, err = sim.invoke("bind", sim.t4)
    assert code == 5 and "ROLLBACK INCOMPLETE" not in err, err
    assert driver_of(sim, sim.t4) == "nvidia"
    assert Host(sim.root).read_attr(f"/sys/bus/pci/devices/{sim.t4}/driver_override") == "pci-stub"


# ---------------------------------------------------------------- binding.plan_bind: what bind shows and does
JOURNAL_WRITE = {"path": "/var/lib/hostdev/bindings.json", "change": "write"}


def test_bind_dry_run_and_bind_report_each_step_device_and_file(sim):
    """Kills the plan_bind mutants of the step descriptions, the device entries and
    BindingPlan.to_dict's envelope (``dry_run``, ``changed``, ``reboot_required``): ``bind
    --dry-run -o json`` of the QAT (on 4xxx, vfio-pci not loaded yet) is all an administrator
    sees before saying yes (docs/json.md); the real run reports the same and changes the kernel."""
    group = sim.groups["qat"]
    device = {"address": sim.qat, "from_driver": "4xxx", "to_driver": "vfio-pci", "action": "bind", "group": group,
              "changed": True, "note": None}
    actions = [
        {"action": "load driver vfio-pci (modprobe vfio-pci) unless it is loaded", "device": None},
        {"action": f"record {sim.qat}'s driver (4xxx) in /var/lib/hostdev/bindings.json", "device": sim.qat},
        {"action": f"write vfio-pci to /sys/bus/pci/devices/{sim.qat}/driver_override", "device": sim.qat},
        {"action": f"unbind {sim.qat} from 4xxx", "device": sim.qat},
        {"action": f"probe {sim.qat} (drivers_probe)", "device": sim.qat},
        {"action": f"verify {sim.qat} is on vfio-pci and /dev/vfio/{group} exists", "device": sim.qat},
    ]
    code, out, err = sim.invoke("bind", sim.qat, "--dry-run", "-o", "json")
    assert code == 0, err
    assert json.loads(out) == {"changed": True, "dry_run": True, "reboot_required": False, "devices": [device],
                               "actions": actions, "files_changed": [JOURNAL_WRITE], "notes": []}
    assert sim.kernel.writes == [] and driver_of(sim, sim.qat) == "4xxx"
    code, out, err = sim.invoke("bind", sim.qat, "-o", "json")
    assert code == 0, err
    assert json.loads(out) == {"changed": True, "dry_run": False, "reboot_required": False, "devices": [device],
                               "actions": actions, "files_changed": [JOURNAL_WRITE], "notes": []}
    assert driver_of(sim, sim.qat) == "vfio-pci"
    # the second bind: nothing to do, and the entry says why
    code, out, err = sim.invoke("bind", sim.qat, "-o", "json")
    assert code == 0, err
    assert json.loads(out) == {
        "changed": False, "dry_run": False, "reboot_required": False,
        "devices": [{"address": sim.qat, "from_driver": "vfio-pci", "to_driver": "vfio-pci", "action": "none",
                     "group": group, "changed": False, "note": "already on vfio-pci"}],
        "actions": [], "files_changed": [], "notes": []}


def test_bindings_lists_the_driver_each_device_was_bound_to(sim):
    """Kills x_plan_bind__mutmut_69 (the journal entry without the driver hostdev bound the
    device to): ``hostdev bindings`` shows the original driver and the one it was bound to."""
    assert sim.invoke("bind", sim.qat)[0] == 0
    code, out, err = sim.invoke("bindings", "-o", "json")
    assert code == 0, err
    (row,) = json.loads(out)["bindings"]
    assert (row["address"], row["original_driver"], row["bound_to"], row["driver"]) == \
        (sim.qat, "4xxx", "vfio-pci", "vfio-pci")


def test_binding_a_device_without_a_driver_has_no_unbind_step(sim):
    """Kills the plan_bind mutants of a driverless device's steps (its record naming no driver,
    no unbind) and of the non-vfio target's verify (no /dev/vfio node: pci-stub has none)."""
    assert sim.invoke("unbind", sim.qat)[0] == 0
    FakeRoot.attach(sim.root).add_driver("pci-stub")
    sim.kernel.register_driver("pci-stub")
    code, out, err = sim.invoke("bind", sim.qat, "--driver", "pci-stub", "--dry-run", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [a["action"] for a in data["actions"]] == [
        "load driver pci-stub (modprobe pci-stub) unless it is loaded",
        f"record {sim.qat}'s driver (none) in /var/lib/hostdev/bindings.json",
        f"write pci-stub to /sys/bus/pci/devices/{sim.qat}/driver_override",
        f"probe {sim.qat} (drivers_probe)",
        f"verify {sim.qat} is on pci-stub",
    ]
    assert data["devices"] == [{"address": sim.qat, "from_driver": None, "to_driver": "pci-stub", "action": "bind",
                                "group": sim.groups["qat"], "changed": True, "note": None}]
    code, _, err = sim.invoke("bind", sim.qat, "--driver", "pci-stub")
    assert code == 0, err
    assert driver_of(sim, sim.qat) == "pci-stub"
    assert not os.path.exists(os.path.join(sim.root, f"dev/vfio/{sim.groups['qat']}"))


def test_a_failed_bind_of_a_device_without_a_driver_takes_it_off_vfio_pci(sim):
    """Kills x_plan_bind__mutmut_125, _132, _133 (the probe's undo dropped or asking about no
    device or driver): the QAT has no driver (unbound by hostdev), the probe puts it on
    vfio-pci but /dev/vfio/N never appears; with no unbind step to undo, only the probe's undo
    takes it off vfio-pci again."""
    assert sim.invoke("unbind", sim.qat)[0] == 0
    sim.kernel.create_dev_nodes = False
    code, _, err = sim.invoke("bind", sim.qat)
    assert code == 5 and "did not appear" in err, err
    assert driver_of(sim, sim.qat) is None
    assert Host(sim.root).read_attr(f"/sys/bus/pci/devices/{sim.qat}/driver_override") == "(null)"


@pytest.mark.parametrize("lost", ["/etc/udev/rules.d/60-hostdev.rules", "/etc/systemd/system/hostdev-bindings.service",
                                  "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"])
def test_bind_persist_again_puts_back_a_boot_file_that_was_removed(sim, lost):
    """Kills x_plan_bind__mutmut_178–185: a device already persistent, but the udev rule, the
    unit or its enabling link gone (removed by hand, a package purge): ``bind --persist`` again
    must write it back, or the binding is not re-applied at the next boot."""
    assert sim.invoke("bind", sim.t4, "--persist")[0] == 0
    os.unlink(os.path.join(sim.root, lost.lstrip("/")))
    code, out, err = sim.invoke("bind", sim.t4, "--persist", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["changed"] is True
    assert os.path.lexists(os.path.join(sim.root, lost.lstrip("/")))
    host = Host(sim.root)
    assert host.readlink("/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service") == \
        "/etc/systemd/system/hostdev-bindings.service"
    assert host.read_text("/etc/hostdev/bindings.d/pci-0000:65:00.0") == "vfio-pci\n"


# ---------------------------------------------------------------- binding.plan_restore
def test_restore_dry_run_and_restore_report_each_step_device_and_file(sim):
    """Kills the plan_restore mutants of the step descriptions, the device entry and the files
    changed: the QAT had no driver before hostdev (unbound by hand), was bound with --persist,
    and goes back to no driver; the last persistent binding going takes the boot files with it."""
    Host(sim.root, kernel=sim.kernel).write_attr("/sys/bus/pci/drivers/4xxx/unbind", sim.qat)
    assert sim.invoke("bind", sim.qat, "--persist")[0] == 0
    persist_file = f"/etc/hostdev/bindings.d/pci-{sim.qat}"
    boot_files = ["/etc/udev/rules.d/60-hostdev.rules", "/etc/systemd/system/hostdev-bindings.service",
                  "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"]
    expected = {
        "changed": True, "reboot_required": False,
        "devices": [{"address": sim.qat, "from_driver": "vfio-pci", "to_driver": None, "action": "restore",
                     "group": sim.groups["qat"], "changed": True, "note": None}],
        "actions": [
            {"action": f"persist: remove {persist_file}", "device": sim.qat},
            {"action": f"give {sim.qat} back to no driver", "device": sim.qat},
            {"action": f"verify {sim.qat} is on no driver", "device": sim.qat},
            {"action": f"forget {sim.qat} in /var/lib/hostdev/bindings.json", "device": sim.qat},
            {"action": "persist: remove /etc/udev/rules.d/60-hostdev.rules (no persistent binding left)",
             "device": None},
            {"action": "persist: remove /etc/systemd/system/hostdev-bindings.service (no persistent binding left)",
             "device": None},
            {"action": "persist: disable hostdev-bindings.service "
                       "(/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service)", "device": None}],
        "files_changed": [{"path": persist_file, "change": "remove"}, JOURNAL_WRITE]
        + [{"path": path, "change": "remove"} for path in boot_files],
        "notes": []}
    code, out, err = sim.invoke("restore", sim.qat, "--dry-run", "-o", "json")
    assert code == 0, err
    assert json.loads(out) == dict(expected, dry_run=True)
    assert os.path.exists(os.path.join(sim.root, persist_file.lstrip("/"))) and driver_of(sim, sim.qat) == "vfio-pci"
    code, out, err = sim.invoke("restore", sim.qat, "-o", "json")
    assert code == 0, err
    assert json.loads(out) == dict(expected, dry_run=False)
    assert driver_of(sim, sim.qat) is None
    for path in [persist_file] + boot_files:
        assert not os.path.lexists(os.path.join(sim.root, path.lstrip("/"))), path


def test_restore_without_devices_names_the_ways_to_give_them(sim):
    """Kills x_plan_restore__mutmut_13–21."""
    code, out, err = sim.invoke("restore", "-o", "json")
    assert code == 2, err
    assert _error(out) == {"error": "UsageError", "message": "no device given",
                           "fix": "name devices by address, or --all", "exit_code": 2}


def test_restore_of_a_device_that_is_not_there_names_it(sim):
    """Kills x_plan_restore__mutmut_63 (the error without the address)."""
    code, out, err = sim.invoke("restore", "0000:99:00.0", "-o", "json")
    assert code == 2, err
    assert _error(out) == {"error": "DeviceNotFoundError", "message": "no PCI device 0000:99:00.0 on this host",
                           "fix": "run 'hostdev devices' to list the addresses", "exit_code": 2}


def test_restore_goes_past_devices_it_has_nothing_to_do_for(sim):
    """Kills x_plan_restore__mutmut_62–112: the entries of a device hostdev never changed (the
    NVMe spare) and of one already back on its driver (the QAT, rebound by hand after an
    unbind), each followed by a device still to restore (``continue`` → ``break``); the one
    already back is forgotten, the journal ends empty."""
    spare = sim.addresses["nvme_spare"]
    assert sim.invoke("unbind", sim.qat)[0] == 0
    assert sim.invoke("bind", sim.t4)[0] == 0
    Host(sim.root, kernel=sim.kernel).write_attr("/sys/bus/pci/drivers/4xxx/bind", sim.qat)
    code, out, err = sim.invoke("restore", spare, sim.qat, sim.t4, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["devices"] == [
        {"address": spare, "from_driver": "nvme", "to_driver": "nvme", "action": "none",
         "group": sim.groups["nvme_spare"], "changed": False, "note": "hostdev has no record of changing it"},
        {"address": sim.qat, "from_driver": "4xxx", "to_driver": "4xxx", "action": "none",
         "group": sim.groups["qat"], "changed": False, "note": "already on 4xxx"},
        {"address": sim.t4, "from_driver": "vfio-pci", "to_driver": "nvidia", "action": "restore",
         "group": sim.groups["t4"], "changed": True, "note": None},
    ]
    assert driver_of(sim, sim.t4) == "nvidia"
    assert _journal_devices(sim) == {}


def test_restore_loads_the_original_driver_when_its_module_is_gone(sim):
    """Kills x_plan_restore__mutmut_121–128: nvidia was unloaded while the T4 and the A10 were on
    vfio-pci; restore loads it again and both cards are back on it."""
    a10, audio = sim.addresses["a10"], sim.addresses["a10_audio"]
    assert sim.invoke("bind", sim.t4, a10)[0] == 0
    assert sim.kernel.run(["modprobe", "-r", "nvidia"]).rc == 0
    assert not os.path.exists(os.path.join(sim.root, "sys/bus/pci/drivers/nvidia"))
    code, out, err = sim.invoke("restore", a10, "--dry-run", "-o", "json")
    assert code == 0, err
    assert [a["action"] for a in json.loads(out)["actions"]][:2] == ["load driver nvidia (modprobe nvidia)",
                                                                   f"give {a10} back to nvidia"]
    code, _, err = sim.invoke("restore", "--all")
    assert code == 0, err
    assert driver_of(sim, sim.t4) == driver_of(sim, a10) == "nvidia" and driver_of(sim, audio) == "snd_hda_intel"


@pytest.mark.parametrize("command", ["bind", "unbind"])
def test_restore_loads_the_module_of_a_driver_named_otherwise(sim, command):
    """A bug: restore ran ``modprobe DRIVER``, but the QAT's driver 4xxx is the module qat_4xxx
    (drivers/crypto/intel/qat/qat_4xxx: ``.name = ADF_4XXX_DEVICE_NAME``), and no module is called
    4xxx: restore failed with "Module 4xxx not found". The journal now keeps the original driver's
    module (its ``module`` link) and restore loads that; unbind records it too (kills
    x_plan_unbind__mutmut_43, _47, _48, _50)."""
    assert sim.invoke(command, sim.qat)[0] == 0
    entry = _journal_devices(sim)[sim.qat]
    assert entry["driver"] == "4xxx" and entry["module"] == "qat_4xxx"
    assert entry["bound_to"] == ("vfio-pci" if command == "bind" else None)
    assert sim.kernel.run(["modprobe", "-r", "qat_4xxx"]).rc == 0
    assert not os.path.exists(os.path.join(sim.root, "sys/bus/pci/drivers/4xxx"))
    code, out, err = sim.invoke("restore", sim.qat, "--dry-run", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["actions"][0]["action"] == "load driver 4xxx (modprobe qat_4xxx)"
    code, _, err = sim.invoke("restore", sim.qat)
    assert code == 0, err
    assert driver_of(sim, sim.qat) == "4xxx"
    assert _journal_devices(sim) == {}


def test_a_journal_without_the_module_loads_the_driver_by_its_name(sim):
    """An entry written before the journal kept modules: restore runs ``modprobe nvidia`` (the
    driver's own name) and says so; the kernel's answer decides."""
    assert sim.invoke("bind", sim.t4)[0] == 0
    host = Host(sim.root)
    data = json.loads(host.read_text("/var/lib/hostdev/bindings.json"))
    assert data["devices"][sim.t4].pop("module") == "nvidia"
    host.write_file("/var/lib/hostdev/bindings.json", json.dumps(data), backup=False)
    assert sim.kernel.run(["modprobe", "-r", "nvidia"]).rc == 0
    code, out, err = sim.invoke("restore", sim.t4, "--dry-run", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["actions"][0]["action"] == "load driver nvidia (modprobe nvidia)"
    assert sim.invoke("restore", sim.t4)[0] == 0 and driver_of(sim, sim.t4) == "nvidia"


def test_a_restore_whose_probe_fails_leaves_the_device_on_vfio_pci(sim):
    """A bug (found writing the test below): giving the T4 back is one step of three writes
    (unbind from vfio-pci, clear driver_override, bind to nvidia); when nvidia's probe failed, the
    plan rolled back only the steps before it and said so, while the T4 was left on no driver
    with its override cleared. The step now puts it back itself."""
    assert sim.invoke("bind", sim.t4)[0] == 0
    sim.kernel.fail_probe(sim.t4, "nvidia", errno.EIO)
    code, _, err = sim.invoke("restore", sim.t4)
    assert code == 5 and "EIO" in err, err
    assert driver_of(sim, sim.t4) == "vfio-pci"
    assert Host(sim.root).read_attr(f"/sys/bus/pci/devices/{sim.t4}/driver_override") == "vfio-pci"
    assert sim.groups["t4"] is not None and os.path.exists(os.path.join(sim.root, f"dev/vfio/{sim.groups['t4']}"))
    assert sim.t4 in _journal_devices(sim)


def test_a_failed_restore_puts_the_persistent_binding_back(sim):
    """Kills x_plan_restore__mutmut_31–54 (the undo of removing the persistence file; _33, _43–_45,
    _47, _48, _50, _51 seen failing): nvidia's
    probe of the T4 fails, the restore is rolled back, and the T4 must still be bound at boot —
    its file back with the driver's name and no backup beside it (a backup would read as a
    binding too)."""
    assert sim.invoke("bind", sim.t4, "--persist")[0] == 0
    sim.kernel.fail_probe(sim.t4, "nvidia", errno.EIO)
    code, _, err = sim.invoke("restore", sim.t4)
    assert code == 5, err
    assert os.listdir(os.path.join(sim.root, PERSIST_DIR)) == [f"pci-{sim.t4}"]
    assert Host(sim.root).read_text(f"/{PERSIST_DIR}/pci-{sim.t4}") == "vfio-pci\n"


def test_restore_refuses_a_host_driver_into_a_group_a_vm_holds_before_any_write(sim):
    """Found from x__refuse_if_held__mutmut_1 (the holders asked for a device on no driver too):
    the A10 bound (its audio function with it), the audio then unbound, the A10 held by a VM; giving the audio back
    to snd_hda_intel would make the kernel refuse the bind (EBUSY: a host driver cannot join a
    group with a DMA owner, tests/test_simkernel_strict.py). restore says so before any write,
    naming the holder; once the VM is gone the same restore works."""
    a10, audio = sim.addresses["a10"], sim.addresses["a10_audio"]
    assert sim.invoke("bind", a10)[0] == 0 and driver_of(sim, audio) == "vfio-pci"
    assert sim.invoke("unbind", audio)[0] == 0 and driver_of(sim, audio) is None
    pid = sim.kernel.hold(a10, pid=4242)
    sim.kernel.writes.clear()
    code, out, err = sim.invoke("restore", audio, "-o", "json")
    assert code == 3, err
    assert _error(out) == _held(
        f"{audio} cannot go back to snd_hda_intel while /dev/vfio/{sim.groups['a10']} is held by "
        "qemu-system-x86 (pid 4242): the kernel refuses a host driver in a group a VFIO user holds")
    assert sim.kernel.writes == [] and driver_of(sim, audio) is None
    # unbinding the held A10 is refused as before; a device that goes back to no driver is not held up
    assert sim.invoke("unbind", a10)[0] == 3
    sim.kernel.release(a10)
    assert pid == 4242 and sim.invoke("restore", audio)[0] == 0 and driver_of(sim, audio) == "snd_hda_intel"


def test_restore_of_a_device_bound_from_no_driver_and_left_on_none_says_so(sim):
    """Kills x_plan_restore__mutmut_110, _111 (the note's "no driver"): the QAT had no driver
    when hostdev bound it; taken off vfio-pci by hand, it is where restore would put it."""
    kernel_host = Host(sim.root, kernel=sim.kernel)
    kernel_host.write_attr("/sys/bus/pci/drivers/4xxx/unbind", sim.qat)
    assert sim.invoke("bind", sim.qat)[0] == 0 and driver_of(sim, sim.qat) == "vfio-pci"
    kernel_host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", sim.qat)
    kernel_host.write_attr(f"/sys/bus/pci/devices/{sim.qat}/driver_override", "\n")
    code, out, err = sim.invoke("restore", sim.qat, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["devices"] == [
        {"address": sim.qat, "from_driver": None, "to_driver": None, "action": "none",
         "group": sim.groups["qat"], "changed": False, "note": "already on no driver"}]
    assert _journal_devices(sim) == {}


def test_a_failed_restore_puts_the_devices_given_back_before_it_on_vfio_pci_again(sim):
    """Kills x_plan_restore__mutmut_139, _158–_160 (the undo of a give-back dropped or asking about
    no device, driver or override): of two devices restored, the second's probe fails; the first,
    already back on its driver, goes back on vfio-pci with its override, as before the restore."""
    first, second = sorted([sim.t4, sim.qat])
    assert sim.invoke("bind", first, second)[0] == 0
    sim.kernel.fail_probe(second, _journal_devices(sim)[second]["driver"], errno.EIO)
    code, _, err = sim.invoke("restore", first, second)
    assert code == 5, err
    for address in (first, second):
        assert driver_of(sim, address) == "vfio-pci", address
        assert Host(sim.root).read_attr(f"/sys/bus/pci/devices/{address}/driver_override") == "vfio-pci"
    assert set(_journal_devices(sim)) == {first, second}


def test_restore_from_another_host_driver_asks_the_interlocks_and_gives_the_device_back(sim):
    """Kills x_plan_restore__mutmut_113 (the interlocks asked with no host): the spare NVMe, bound
    by hostdev, is then put on another host driver by hand (driver_override names it: the kernel
    then matches that driver whatever its ID table, drivers/pci/pci-driver.c pci_match_device);
    restore asks the interlocks on the way (the host's disks are looked up), finds nothing of the
    host's on it and gives it back to nvme."""
    spare = sim.addresses["nvme_spare"]
    assert sim.invoke("bind", spare)[0] == 0
    kernel_host = Host(sim.root, kernel=sim.kernel)
    kernel_host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", spare)
    kernel_host.write_attr(f"/sys/bus/pci/devices/{spare}/driver_override", "snd_hda_intel")
    kernel_host.write_attr("/sys/bus/pci/drivers/snd_hda_intel/bind", spare)
    assert driver_of(sim, spare) == "snd_hda_intel"
    code, out, err = sim.invoke("restore", spare, "-o", "json")
    assert code == 0, err
    assert [(d["from_driver"], d["to_driver"], d["action"]) for d in json.loads(out)["devices"]] == [
        ("snd_hda_intel", "nvme", "restore")]
    assert driver_of(sim, spare) == "nvme"


def test_restore_from_another_host_driver_of_the_boot_vga_needs_force_and_takes_it(sim):
    """Kills x_plan_restore__mutmut_115 (``force`` not passed on to the interlocks): the boot VGA,
    bound with --force, put on another host driver by hand; taking it from that driver is an
    interlock like any other (refused, exit 3), and restore --force gives it back to mgag200."""
    vga = sim.addresses["boot_vga"]
    assert sim.invoke("bind", vga, "--force")[0] == 0
    kernel_host = Host(sim.root, kernel=sim.kernel)
    kernel_host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", vga)
    kernel_host.write_attr(f"/sys/bus/pci/devices/{vga}/driver_override", "snd_hda_intel")
    kernel_host.write_attr("/sys/bus/pci/drivers/snd_hda_intel/bind", vga)
    code, out, err = sim.invoke("restore", vga, "-o", "json")
    assert code == 3, err
    assert _error(out)["message"] == f"refusing to take {vga} is the boot VGA device (the console is on it)"
    assert driver_of(sim, vga) == "snd_hda_intel"
    code, _, err = sim.invoke("restore", vga, "--force")
    assert code == 0, err
    assert driver_of(sim, vga) == "mgag200"


def test_restore_to_no_driver_goes_ahead_while_a_vm_holds_the_group(sim):
    """Kills x__refuse_if_held__mutmut_4 (a device counted as joining its group whatever driver it
    goes to): the A10's audio function had no driver when hostdev bound the A10 (it went along to
    vfio-pci), was then taken off vfio-pci by hand, its override left; the A10 is held by a VM.
    Giving the audio back means only clearing its override (no driver binds): nothing joins the
    group, so restore goes ahead."""
    a10, audio = sim.addresses["a10"], sim.addresses["a10_audio"]
    kernel_host = Host(sim.root, kernel=sim.kernel)
    kernel_host.write_attr("/sys/bus/pci/drivers/snd_hda_intel/unbind", audio)
    assert sim.invoke("bind", a10)[0] == 0 and driver_of(sim, audio) == "vfio-pci"
    kernel_host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", audio)
    sim.kernel.hold(a10, pid=4242)
    code, out, err = sim.invoke("restore", audio, "-o", "json")
    assert code == 0, err
    assert [(d["from_driver"], d["to_driver"], d["action"]) for d in json.loads(out)["devices"]] == [
        (None, None, "restore")]
    assert driver_of(sim, audio) is None
    assert Host(sim.root).read_attr(f"/sys/bus/pci/devices/{audio}/driver_override") == "(null)"


def test_restore_to_vfio_pci_goes_ahead_while_a_vm_holds_the_group(sim):
    """Kills x__refuse_if_held__mutmut_9 (any driver counted as a host driver joining the group):
    the A10 and its audio function were on vfio-pci before hostdev came (an administrator's
    driverctl, say); hostdev unbinds the audio, a VM then holds the A10's group. vfio-pci owns its
    DMA (driver_managed_dma), so the kernel lets it back into the held group: restore goes ahead."""
    a10, audio = sim.addresses["a10"], sim.addresses["a10_audio"]
    kernel_host = Host(sim.root, kernel=sim.kernel)
    assert sim.kernel.run(["modprobe", "vfio-pci"]).rc == 0
    for address, driver in ((a10, "nvidia"), (audio, "snd_hda_intel")):
        kernel_host.write_attr(f"/sys/bus/pci/drivers/{driver}/unbind", address)
        kernel_host.write_attr(f"/sys/bus/pci/devices/{address}/driver_override", "vfio-pci")
        kernel_host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", address)
    assert sim.invoke("unbind", audio)[0] == 0 and driver_of(sim, audio) is None
    sim.kernel.hold(a10, pid=4242)
    code, out, err = sim.invoke("restore", audio, "-o", "json")
    assert code == 0, err
    assert [(d["from_driver"], d["to_driver"], d["action"]) for d in json.loads(out)["devices"]] == [
        (None, "vfio-pci", "restore")]
    assert driver_of(sim, audio) == "vfio-pci"
