import sys

import pytest

from hostdev import virt
from hostdev.errors import HostEnvironmentError


def test_missing_libvirt_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)   # makes "import libvirt" raise ImportError
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)  # the system's Python, not a venv
    with pytest.raises(HostEnvironmentError) as info:
        virt.import_libvirt()
    assert info.value.exit_code == 4
    assert "hostdev[vm]" in info.value.fix and "python3-libvirt" in info.value.fix
    # in a virtual environment (install.sh's /opt/hostdev): the vm extra there (tests/test_install.py)
    monkeypatch.setattr(sys, "prefix", "/opt/hostdev")
    with pytest.raises(HostEnvironmentError) as info:
        virt.import_libvirt()
    assert "install.sh --vm" in info.value.fix and "/opt/hostdev/bin/pip install" in info.value.fix


def test_libvirt_test_driver_connection_and_refusal():
    pytest.importorskip("libvirt")
    conn = virt.open_connection("test:///default")
    try:
        assert conn.getType() == "TEST"
    finally:
        conn.close()
    with pytest.raises(HostEnvironmentError, match="cannot connect to libvirt"):
        virt.open_connection("test:///nonexistent/path/node.xml")
