"""hostdev mdev on the real kernel with the mtty/mdpy/mbochs samples, and its mdevctl
definitions read back by the real mdevctl (real-kernel only)."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.realkernel

UUID = "5e1f3a7c-2b4d-4c6e-8f90-123456789abc"


def hostdev(*args):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env=dict(os.environ, HOSTDEV_ROOT="/"))


def test_types_create_persist_mdevctl_and_remove(mdev_samples):
    parents = {p["address"]: p for p in json.loads(hostdev("mdev", "types", "-o", "json").stdout)["parents"]}
    assert {"mtty", "mdpy", "mbochs"} <= set(parents)
    names = {t["id"]: t["name"] for t in parents["mtty"]["types"]}
    assert names["mtty-1"] == "Single port serial" and names["mtty-2"] == "Dual port serial"
    created = hostdev("mdev", "create", "--parent", "mtty", "--name", "Dual_port_serial", "--uuid", UUID,
                      "--persist", "-o", "json")
    assert created.returncode == 0, created.stderr
    try:
        assert os.path.isdir(f"/sys/bus/mdev/devices/{UUID}")
        group = os.path.basename(os.readlink(f"/sys/bus/mdev/devices/{UUID}/iommu_group"))
        assert os.path.exists(f"/dev/vfio/{group}")
        listed = json.loads(hostdev("mdev", "list", "-o", "json").stdout)["mdevs"]
        assert [(m["uuid"], m["type_id"], m["persistent"]) for m in listed] == [(UUID, "mtty-2", True)]
        # the real mdevctl reads the definition hostdev wrote
        defined = subprocess.run(["mdevctl", "list", "--defined"], capture_output=True, text=True).stdout
        assert UUID in defined and "mtty-2" in defined and "auto" in defined
        active = subprocess.run(["mdevctl", "list"], capture_output=True, text=True).stdout
        assert UUID in active
    finally:
        removed = hostdev("mdev", "remove", UUID)
    assert removed.returncode == 0, removed.stderr
    assert not os.path.exists(f"/sys/bus/mdev/devices/{UUID}")
    assert not os.path.exists(f"/etc/mdevctl.d/mtty/{UUID}")
    assert UUID not in subprocess.run(["mdevctl", "list", "--defined"], capture_output=True, text=True).stdout
