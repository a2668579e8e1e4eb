"""Every command that writes files says which, on stderr after the run and as ``files_changed``
in its JSON result (docs/json.md); a dry run lists them in JSON and writes none."""
import json
import os

import pytest

# The paths hostdev's docs promise (docs/json.md, the man page's FILES), written out by hand.
T4 = "0000:65:00.0"
PERSIST = [("write", "/var/lib/hostdev/bindings.json"),
           ("write", "/etc/hostdev/bindings.d/pci-0000:65:00.0"),
           ("write", "/etc/udev/rules.d/60-hostdev.rules"),
           ("write", "/etc/systemd/system/hostdev-bindings.service"),
           ("link", "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service")]


def _changes(data):
    return [(c["change"], c["path"]) for c in data["files_changed"]]


def test_bind_persist_names_the_rule_the_unit_and_bindings_d(sim):
    code, out, err = sim.invoke("bind", T4, "--persist", "--dry-run", "-o", "json")
    assert code == 0, err
    assert _changes(json.loads(out)) == PERSIST
    assert not os.path.exists(os.path.join(sim.root, "etc/udev/rules.d/60-hostdev.rules"))
    code, out, err = sim.invoke("bind", T4, "--persist")
    assert code == 0, err
    lines = err.splitlines()
    assert [ln for ln in lines if ln.startswith(("wrote: ", "linked: ", "removed: "))] == [
        "wrote: /var/lib/hostdev/bindings.json",
        "wrote: /etc/hostdev/bindings.d/pci-0000:65:00.0",
        "wrote: /etc/udev/rules.d/60-hostdev.rules",
        "wrote: /etc/systemd/system/hostdev-bindings.service",
        "linked: /etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"]
    for _, path in PERSIST:
        assert os.path.lexists(os.path.join(sim.root, path.lstrip("/"))), path
    # restore removes the persistence file and says so; the journal is rewritten
    code, out, err = sim.invoke("restore", T4, "-o", "json")
    assert code == 0, err
    changes = _changes(json.loads(out))
    assert ("remove", "/etc/hostdev/bindings.d/pci-0000:65:00.0") in changes
    assert ("write", "/var/lib/hostdev/bindings.json") in changes


def test_bind_without_persist_names_only_the_journal(sim):
    code, out, err = sim.invoke("bind", T4, "-o", "json")
    assert code == 0, err
    assert _changes(json.loads(out)) == [("write", "/var/lib/hostdev/bindings.json")]


def test_modules_load_persist_names_its_file(sim):
    code, out, err = sim.invoke("modules", "load", "--persist")
    assert code == 0, err
    assert "wrote: /etc/modules-load.d/hostdev-vfio.conf" in err.splitlines()
    # a second run changes nothing and names nothing
    code, out, err = sim.invoke("modules", "load", "--persist", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["files_changed"] == []


def test_modules_unpersist_names_the_files_it_removes(sim):
    assert sim.invoke("modules", "load", "--persist", "--early", T4)[0] == 0
    code, out, err = sim.invoke("modules", "unpersist", "--dry-run", "-o", "json")
    assert code == 0, err
    assert _changes(json.loads(out)) == [("remove", "/etc/modules-load.d/hostdev-vfio.conf"),
                                         ("remove", "/etc/modprobe.d/hostdev-vfio.conf")]
    assert os.path.exists(os.path.join(sim.root, "etc/modprobe.d/hostdev-vfio.conf"))
    code, out, err = sim.invoke("modules", "unpersist")
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.startswith(("wrote: ", "linked: ", "removed: "))] == [
        "removed: /etc/modules-load.d/hostdev-vfio.conf", "removed: /etc/modprobe.d/hostdev-vfio.conf"]


@pytest.mark.parametrize("args", [("modules", "load"), ("bind", T4, "--dry-run"), ("modules", "unpersist")])
def test_nothing_written_nothing_named(sim, args):
    code, out, err = sim.invoke(*args)
    assert code == 0, err
    assert not any(ln.startswith(("wrote: ", "linked: ", "removed: ")) for ln in err.splitlines())
