"""--root names a tree to read and plan from; it is never a way to reach the live machine, and a
--root that is not a directory is an error, not an empty host."""
import sys
import types

import pytest


class _StubLibvirt(types.ModuleType):
    """Stands in for libvirt-python: records every attempt to open a connection."""

    def __init__(self):
        super().__init__("libvirt")
        self.opened = []
        self.libvirtError = type("libvirtError", (Exception,), {})

    def registerErrorHandler(self, handler, ctx):
        pass

    def open(self, uri=None):
        self.opened.append(("open", uri))
        raise AssertionError(f"a libvirt connection was opened: {uri}")

    def openReadOnly(self, uri=None):
        self.opened.append(("openReadOnly", uri))
        raise AssertionError(f"a libvirt connection was opened: {uri}")

    def openAuth(self, uri=None, *args):
        self.opened.append(("openAuth", uri))
        raise AssertionError(f"a libvirt connection was opened: {uri}")


@pytest.fixture
def stub_libvirt(monkeypatch):
    stub = _StubLibvirt()
    monkeypatch.setitem(sys.modules, "libvirt", stub)
    return stub


@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["-c", "qemu:///system", "-o", "json"]])
def test_vm_test_under_root_is_exit_2_without_a_libvirt_connection(sim, stub_libvirt, extra):
    # the T4 on vfio-pci in the fake tree: without --root the plan would go on to libvirt
    assert sim.invoke("bind", sim.t4)[0] == 0
    writes = list(sim.kernel.writes)
    code, out, err = sim.invoke("--root", sim.root, "vm", "test", sim.t4, *extra)
    assert code == 2, err
    assert "cannot act on --root" in err and sim.root in err
    assert stub_libvirt.opened == []
    assert sim.kernel.writes == writes


def test_vm_test_under_the_env_root_is_refused_too(sim, stub_libvirt, monkeypatch):
    monkeypatch.setenv("HOSTDEV_ROOT", sim.root)
    code, _, err = sim.invoke("vm", "test", sim.t4)
    assert code == 2 and "cannot act on --root" in err
    assert stub_libvirt.opened == []


def test_root_slash_is_the_live_machine_and_not_refused_as_a_root(sim, stub_libvirt):
    # --root / is this machine: vm test goes on (here to the stub, which proves it got that far)
    code, _, err = sim.invoke("--root", "/", "vm", "test", sim.t4, "-c", "test:///default")
    assert "cannot act on --root" not in err
    assert stub_libvirt.opened == [("open", "test:///default")]


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_root_that_is_not_a_directory_is_exit_2(sim, tmp_path, kind):
    root = tmp_path / "no-such-tree"
    if kind == "file":
        root.write_text("")
    code, out, err = sim.invoke("--root", str(root), "devices", "-o", "json")
    assert code == 2, err
    why = "does not exist" if kind == "missing" else "not a hostdev recording (not a tar archive)"
    assert str(root) in err and why in err
    assert out == ""
