"""The hostdev command itself, end to end, on the real kernel in the QEMU guest: what a
sysadmin types, with its exit codes and JSON. (The simulated-kernel side is tests/test_cli.py.)"""
import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.realkernel

EDU, E1000E, EDU2 = "0000:00:10.0", "0000:00:11.0", "0000:01:01.0"


def hostdev(*args):
    env = dict(os.environ, HOSTDEV_ROOT="/")
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def guest():
    from hostdev.host import Host
    from tests.behaviour.conftest import _reset_real_guest
    from tests.realkernel.guest import require_guest

    require_guest("the CLI real-kernel tests")
    _reset_real_guest(Host("/"))
    yield
    _reset_real_guest(Host("/"))


def test_check_devices_and_groups_on_a_real_iommu(guest):
    result = hostdev("check", "-o", "json")
    report = json.loads(result.stdout)
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["iommu"]["status"] == "pass", by_id["iommu"]
    assert result.returncode == (0 if report["ready"] else 1)
    devices = {d["address"]: d for d in json.loads(hostdev("devices", "-o", "json").stdout)["devices"]}
    lspci = subprocess.run(["lspci", "-Dnnk"], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C")).stdout
    addresses = re.findall(r"^([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", lspci, re.M)
    assert sorted(devices) == sorted(addresses)
    assert devices[E1000E]["driver"] == "e1000e" and devices[EDU]["vendor_id"] == "1234"
    groups = json.loads(hostdev("iommu", "groups", "-o", "json").stdout)["groups"]
    shared = [g["devices"] for g in groups if EDU2 in g["devices"]][0]
    assert shared == ["0000:00:13.0", EDU2, "0000:01:03.0"]


def test_bind_then_restore_through_the_cli(guest):
    dry = hostdev("bind", E1000E, "--dry-run", "-o", "json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["dry_run"] is True
    assert os.path.basename(os.readlink(f"/sys/bus/pci/devices/{E1000E}/driver")) == "e1000e"
    bound = hostdev("bind", E1000E, "-o", "json")
    assert bound.returncode == 0, bound.stderr
    assert json.loads(bound.stdout)["changed"] is True
    assert os.path.basename(os.readlink(f"/sys/bus/pci/devices/{E1000E}/driver")) == "vfio-pci"
    again = hostdev("bind", E1000E, "-o", "json")
    assert json.loads(again.stdout)["changed"] is False
    refused = hostdev("bind", EDU2)
    assert refused.returncode == 3 and "0000:01:03.0" in refused.stderr
    restored = hostdev("restore", "--all", "-o", "json")
    assert restored.returncode == 0 and json.loads(restored.stdout)["changed"] is True
    assert os.path.basename(os.readlink(f"/sys/bus/pci/devices/{E1000E}/driver")) == "e1000e"
