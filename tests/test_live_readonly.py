"""hostdev on this machine's real /sys, read-only, against lspci -Dnnk."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("lspci") or not os.path.isdir("/sys/bus/pci/devices"),
                                reason="needs lspci (apt install pciutils) and a /sys with PCI devices")

_LINE = re.compile(r"^(?P<addr>[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*?\[(?P<cls>[0-9a-f]{4})\]: "
                   r".*\[(?P<vd>[0-9a-f]{4}:[0-9a-f]{4})\]( \(rev [0-9a-f]+\))?( \(prog-if [^)]*\))?$")


def lspci_devices():
    out = subprocess.run(["lspci", "-Dnnk"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LC_ALL="C")).stdout
    devices, current = {}, None
    for line in out.splitlines():
        match = _LINE.match(line)
        if match:
            current = match["addr"]
            devices[current] = {"id": match["vd"], "class": match["cls"], "driver": None}
        elif current and line.strip().startswith("Kernel driver in use:"):
            devices[current]["driver"] = line.split(":", 1)[1].strip()
    return devices


def hostdev(*args):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env=dict(os.environ, HOSTDEV_ROOT="/"))


def test_devices_match_lspci_on_this_machine():
    expected = lspci_devices()
    assert expected, "lspci listed no device"
    result = hostdev("devices", "-o", "json")
    assert result.returncode == 0, result.stderr
    got = {d["address"]: d for d in json.loads(result.stdout)["devices"]}
    assert sorted(got) == sorted(expected)
    for addr, want in expected.items():
        dev = got[addr]
        assert f"{dev['vendor_id']}:{dev['device_id']}" == want["id"], addr
        assert dev["class_id"][:4] == want["class"], addr
        assert dev["driver"] == want["driver"], addr


def test_check_reads_the_real_host_without_root_and_matches_the_evidence():
    result = hostdev("check", "-o", "json")
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    by_id = {c["id"]: c for c in report["checks"]}
    groups = [g for g in os.listdir("/sys/kernel/iommu_groups")] if os.path.isdir("/sys/kernel/iommu_groups") else []
    assert by_id["iommu"]["status"] == ("pass" if groups else "fail")
    assert report["ready"] == (result.returncode == 0)
    assert report["ready"] is (not any(c["status"] == "fail" for c in report["checks"]))
