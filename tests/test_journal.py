"""The journal of original drivers and the persistence files (hostdev/journal.py), tested on the
files they leave in a fake root: the journal's bytes, what ``restore`` reads back, and the files
a reboot reads. Written for the survivors of the mutation run over journal.py (docs/testing.md).

The device is the edu of the QEMU test guest (0000:00:10.0, no driver after boot;
tests/fakesys/scenarios.py qemu_test_guest) under the simulated kernel.
"""
import json
import os
import time

import pytest

from hostdev import journal
from hostdev.documents import DocumentError
from hostdev.host import Host
from hostdev.plan import Plan
from tests.fakesys import scenarios
from tests.fakesys.simkernel import SimKernel

EDU, TESTDEV = "0000:00:10.0", "0000:00:12.0"
FROZEN = time.struct_time((2026, 11, 30, 16, 5, 9, 0, 334, 0))  # a Monday, 16:05:09 UTC


@pytest.fixture
def host(tmp_path, monkeypatch):
    info = scenarios.qemu_test_guest(str(tmp_path / "root"))
    monkeypatch.setattr(journal.time, "gmtime", lambda *args: FROZEN)
    return Host(info.root, kernel=SimKernel(info.root))


def journal_text(host):
    with open(host.path(journal.JOURNAL), encoding="utf-8") as handle:
        return handle.read()


def test_the_journal_file_as_written(host):
    run, _ = journal.record(EDU, None, None, "vfio-pci")
    run(host)
    assert journal_text(host) == """{
  "devices": {
    "0000:00:10.0": {
      "bound_to": "vfio-pci",
      "driver": null,
      "driver_override": null,
      "time": "2026-11-30T16:05:09Z"
    }
  },
  "version": 1
}
"""
    # written once, not over an earlier file: no backup beside it
    assert os.listdir(os.path.dirname(host.path(journal.JOURNAL))) == ["bindings.json"]


def test_a_second_record_keeps_the_first_original_and_no_backup_is_made(host):
    journal.record(EDU, "e1000e", "e1000e", "vfio-pci")[0](host)
    journal.record(EDU, "vfio-pci", "vfio-pci", "pci-stub")[0](host)
    entry = json.loads(journal_text(host))["devices"][EDU]
    assert entry == {"driver": "e1000e", "driver_override": "e1000e", "bound_to": "pci-stub",
                     "time": "2026-11-30T16:05:09Z"}
    assert os.listdir(os.path.dirname(host.path(journal.JOURNAL))) == ["bindings.json"]


def test_undo_of_a_new_record_forgets_a_device_that_is_back_as_it_was(host):
    run, undo = journal.record(EDU, None, None, "vfio-pci")
    run(host)
    undo(host)  # the edu never moved: it is on no driver, no override, as recorded
    assert json.loads(journal_text(host))["devices"] == {}


def test_undo_of_a_new_record_keeps_the_entry_when_the_device_is_not_back(host):
    # recorded as on e1000e, but the edu is on no driver: the rollback did not get it back
    run, undo = journal.record(EDU, "e1000e", None, "vfio-pci")
    run(host)
    undo(host)
    assert json.loads(journal_text(host))["devices"][EDU]["driver"] == "e1000e"


def test_undo_of_a_record_keeps_the_entry_when_only_the_override_differs(host):
    run, undo = journal.record(EDU, None, "vfio-pci", "vfio-pci")
    run(host)
    undo(host)  # the edu has no driver_override: not as recorded
    assert json.loads(journal_text(host))["devices"][EDU]["driver_override"] == "vfio-pci"


def test_undo_of_a_record_over_an_earlier_entry_puts_that_entry_back(host):
    earlier = {"driver": "e1000e", "driver_override": None, "bound_to": "vfio-pci", "time": "2026-01-02T03:04:05Z"}
    journal.Journal({EDU: dict(earlier)}).save(host)
    run, undo = journal.record(EDU, "vfio-pci", None, "pci-stub")
    run(host)
    undo(host)
    assert json.loads(journal_text(host))["devices"] == {EDU: earlier}


def test_undo_of_a_record_that_never_ran_writes_nothing(host):
    _, undo = journal.record(EDU, None, None, "vfio-pci")
    undo(host)
    assert not os.path.exists(host.path(journal.JOURNAL))


def test_forget_removes_the_entry_and_its_undo_gives_it_back(host):
    entry = {"driver": "e1000e", "driver_override": None, "bound_to": "vfio-pci", "time": "2026-01-02T03:04:05Z"}
    other = {"driver": None, "driver_override": None, "bound_to": "vfio-pci", "time": "2026-01-02T03:04:06Z"}
    journal.Journal({EDU: dict(entry), TESTDEV: dict(other)}).save(host)
    run, undo = journal.forget(EDU)
    run(host)
    assert json.loads(journal_text(host))["devices"] == {TESTDEV: other}
    undo(host)
    assert json.loads(journal_text(host))["devices"] == {EDU: entry, TESTDEV: other}


def test_forget_of_a_device_without_an_entry_writes_nothing(host):
    run, undo = journal.forget(EDU)
    run(host)
    undo(host)
    assert not os.path.exists(host.path(journal.JOURNAL))


@pytest.mark.parametrize("text, problem", [
    ("[]", 'expected an object with a "devices" object'),
    ('{"version": 1}', None),  # no devices: an empty journal
    ('{"devices": {"0000:00:10.0": {"driver": "e1000e", "driver_override": 7}}}',
     "devices.0000:00:10.0: expected an object with driver and driver_override (strings or null)"),
    ('{"devices": {"0000:00:10.0": {"driver": ["e1000e"], "driver_override": null}}}',
     "devices.0000:00:10.0: expected an object with driver and driver_override (strings or null)"),
    ('{"devices": {"0000:00:10.0": "e1000e"}}',
     "devices.0000:00:10.0: expected an object with driver and driver_override (strings or null)"),
    ('{"devices": {"00:10.0x": {"driver": "e1000e"}}}', "devices: '00:10.0x' is not a PCI address"),
])
def test_a_journal_is_read_or_refused_with_the_problem_and_the_way_out(host, text, problem):
    os.makedirs(os.path.dirname(host.path(journal.JOURNAL)), exist_ok=True)
    with open(host.path(journal.JOURNAL), "w", encoding="utf-8") as handle:
        handle.write(text)
    if problem is None:
        assert journal.Journal.load(host).devices == {}
        return
    with pytest.raises(DocumentError) as caught:
        journal.Journal.load(host)
    assert caught.value.message == f"/var/lib/hostdev/bindings.json: {problem}"
    assert caught.value.fix == ("inspect it; move it aside to start a new journal "
                                "(/var/lib/hostdev/bindings.json.broken)")


def test_a_valid_journal_is_read_as_written(host):
    entry = {"driver": "e1000e", "driver_override": None, "bound_to": "vfio-pci", "time": "2026-01-02T03:04:05Z"}
    os.makedirs(os.path.dirname(host.path(journal.JOURNAL)), exist_ok=True)
    with open(host.path(journal.JOURNAL), "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"version": 1, "devices": {EDU: entry}}))
    assert journal.Journal.load(host).devices == {EDU: entry}


def _files(host, directory):
    """name → text of the plain files in ``directory`` (under the root)."""
    real = host.path(directory)
    found = {}
    for name in sorted(os.listdir(real)):
        if os.path.isfile(os.path.join(real, name)):
            with open(os.path.join(real, name), encoding="utf-8") as handle:
                found[name] = handle.read()
    return found


def test_persistence_files_as_a_reboot_reads_them(host):
    plan = Plan()
    journal.persist_actions(plan, [EDU, TESTDEV], "vfio-pci")
    # what --dry-run prints, in the order apply runs it
    assert [(a.description, a.device) for a in plan.actions] == [
        ("persist: write /etc/hostdev/bindings.d/pci-0000:00:10.0 (vfio-pci)", EDU),
        ("persist: write /etc/hostdev/bindings.d/pci-0000:00:12.0 (vfio-pci)", TESTDEV),
        ("persist: install /etc/udev/rules.d/60-hostdev.rules", None),
        ("persist: install /etc/systemd/system/hostdev-bindings.service", None),
        ("persist: enable hostdev-bindings.service "
         "(/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service)", None),
    ]
    plan.apply(host)
    assert _files(host, "/etc/hostdev/bindings.d") == {"pci-0000:00:10.0": "vfio-pci\n",
                                                       "pci-0000:00:12.0": "vfio-pci\n"}
    rule = _files(host, "/etc/udev/rules.d")["60-hostdev.rules"]
    assert 'TEST=="/etc/hostdev/bindings.d/pci-$kernel"' in rule and 'ATTR{driver_override}="%c"' in rule
    unit = _files(host, "/etc/systemd/system")["hostdev-bindings.service"]
    assert "ExecStart=/usr/local/bin/hostdev bind --persisted\n" in unit
    assert host.readlink("/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service") == \
        "/etc/systemd/system/hostdev-bindings.service"
    assert journal.persisted(host) == {EDU: "vfio-pci", TESTDEV: "vfio-pci"}
    # the undo of a device's file removes that file only
    plan.actions[0].undo(host)
    assert journal.persisted(host) == {TESTDEV: "vfio-pci"}


def test_persisting_again_to_another_driver_replaces_the_file_without_a_backup(host):
    for driver in ("vfio-pci", "pci-stub"):
        plan = Plan()
        journal.persist_actions(plan, [EDU], driver)
        plan.apply(host)
    # a backup (pci-ADDRESS.hostdev.bak) would itself read as a persistent binding at boot
    assert _files(host, "/etc/hostdev/bindings.d") == {"pci-0000:00:10.0": "pci-stub\n"}
    assert journal.persisted(host) == {EDU: "pci-stub"}


def test_persisted_reads_the_pci_files_that_name_a_driver(host):
    directory = host.path("/etc/hostdev/bindings.d")
    os.makedirs(directory)
    for name, text in (("pci-0000:00:10.0", "  vfio-pci \n"), ("pci-0000:00:12.0", "\n"),
                       ("README", "vfio-pci\n"), ("xpci-0000:00:11.0", "vfio-pci\n")):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    assert journal.persisted(host) == {EDU: "vfio-pci"}


def test_persisting_over_an_older_rule_and_unit_of_ours_leaves_no_backups(host):
    # an earlier hostdev's rule and unit: replaced, with no .hostdev.bak of our own files left in /etc
    for path in (journal.UDEV_RULE, journal.UNIT):
        os.makedirs(os.path.dirname(host.path(path)), exist_ok=True)
        with open(host.path(path), "w", encoding="utf-8") as handle:
            handle.write("# written by an older hostdev\n")
    plan = Plan()
    journal.persist_actions(plan, [EDU], "vfio-pci")
    plan.apply(host)
    assert sorted(_files(host, "/etc/udev/rules.d")) == ["60-hostdev.rules"]
    assert sorted(_files(host, "/etc/systemd/system")) == ["hostdev-bindings.service"]
    assert _files(host, "/etc/udev/rules.d")["60-hostdev.rules"] == journal.UDEV_RULE_TEXT


def test_a_journal_that_is_not_json_is_refused_naming_the_file(host):
    os.makedirs(os.path.dirname(host.path(journal.JOURNAL)), exist_ok=True)
    with open(host.path(journal.JOURNAL), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    with pytest.raises(DocumentError) as caught:
        journal.Journal.load(host)
    assert caught.value.message.startswith("/var/lib/hostdev/bindings.json: is not valid JSON")
    assert caught.value.fix == ("inspect it; move it aside to start a new journal "
                                "(/var/lib/hostdev/bindings.json.broken)")


def test_persisting_reports_every_file_it_writes_and_the_link(host):
    """What ``bind --persist`` lists in files_changed (and as ``wrote:``/``linked:``): each
    device's file, the udev rule, the unit and the enabling link."""
    plan = Plan()
    journal.persist_actions(plan, [EDU, "0000:00:11.0"], "vfio-pci")
    plan.apply(host)
    assert plan.files_changed() == [
        {"path": f"{journal.PERSIST_DIR}/pci-{EDU}", "change": "write"},
        {"path": f"{journal.PERSIST_DIR}/pci-0000:00:11.0", "change": "write"},
        {"path": journal.UDEV_RULE, "change": "write"},
        {"path": journal.UNIT, "change": "write"},
        {"path": journal.UNIT_WANTS, "change": "link"}]


def test_the_first_record_keeps_the_original_drivers_module_when_it_has_one(host):
    """The module restore loads when the driver is gone (4xxx is qat_4xxx); a built-in driver or
    no driver has none, and the entry has no such key."""
    journal.record(EDU, "4xxx", None, "vfio-pci", "qat_4xxx")[0](host)
    journal.record("0000:00:11.0", None, None, "vfio-pci", None)[0](host)
    devices = json.loads(journal_text(host))["devices"]
    assert devices[EDU] == {"driver": "4xxx", "driver_override": None, "module": "qat_4xxx",
                            "bound_to": "vfio-pci", "time": "2026-11-30T16:05:09Z"}
    assert "module" not in devices["0000:00:11.0"]
    # a second record keeps the first original and its module
    journal.record(EDU, "vfio-pci", "vfio-pci", "pci-stub", "vfio_pci")[0](host)
    assert json.loads(journal_text(host))["devices"][EDU]["module"] == "qat_4xxx"


def test_the_last_binding_gone_takes_back_the_rule_the_unit_and_its_link_and_undo_puts_them_back(host):
    plan = Plan()
    journal.persist_actions(plan, [EDU], "vfio-pci")
    plan.apply(host)
    plan = Plan()
    journal.unpersist_shared_actions(plan, host)
    assert [a.description for a in plan.actions] == [
        "persist: remove /etc/udev/rules.d/60-hostdev.rules (no persistent binding left)",
        "persist: remove /etc/systemd/system/hostdev-bindings.service (no persistent binding left)",
        "persist: disable hostdev-bindings.service "
        "(/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service)",
    ]
    plan.apply(host)
    # what the command's result says it changed
    assert plan.files_changed() == [{"path": journal.UDEV_RULE, "change": "remove"},
                                    {"path": journal.UNIT, "change": "remove"},
                                    {"path": journal.UNIT_WANTS, "change": "remove"}]
    assert _files(host, "/etc/udev/rules.d") == {} and _files(host, "/etc/systemd/system") == {}
    assert host.readlink(journal.UNIT_WANTS) is None
    for action in reversed(plan.actions):  # a rollback
        action.undo(host)
    assert _files(host, "/etc/udev/rules.d") == {"60-hostdev.rules": journal.UDEV_RULE_TEXT}
    assert _files(host, "/etc/systemd/system") == {"hostdev-bindings.service": journal.UNIT_TEXT}
    assert host.readlink(journal.UNIT_WANTS) == journal.UNIT


def test_a_rule_unit_or_link_that_is_not_hostdevs_own_is_left_alone(host):
    for path, text in ((journal.UDEV_RULE, journal.UDEV_RULE_TEXT + "# edited\n"), (journal.UNIT, "[Unit]\n")):
        os.makedirs(os.path.dirname(host.path(path)), exist_ok=True)
        with open(host.path(path), "w", encoding="utf-8") as handle:
            handle.write(text)
    os.makedirs(os.path.dirname(host.path(journal.UNIT_WANTS)))
    os.symlink("/etc/systemd/system/other.service", host.path(journal.UNIT_WANTS))
    plan = Plan()
    journal.unpersist_shared_actions(plan, host)
    assert plan.actions == []
