"""The KubeVirt CR for a real kernel's devices matches them the way virt-handler does
(KUBEVIRT.md): a pciVendorSelector, lower-cased, equals PCI_ID= in the uevent of a device on
vfio-pci; an mdevNameSelector, with spaces turned into "_", equals the same of the mdev's
mdev_type/name. Real kernel only: devices bound and an mdev created in the QEMU guest."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.realkernel import guest

pytestmark = pytest.mark.realkernel
UUID = "7d0c1b2a-3e4f-4a5b-8c6d-9e0f1a2b3c4d"


def hostdev(*args):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env=dict(os.environ, HOSTDEV_ROOT="/"))


def pci_id(address: str) -> str:
    uevent = Path(f"/sys/bus/pci/devices/{address}/uevent").read_text()
    return next(line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("PCI_ID="))


def test_permitted_selectors_match_what_virt_handler_reads(guest_vfio, mdev_samples):
    from hostdev.host import Host
    from tests.behaviour.conftest import _reset_real_guest

    _reset_real_guest(Host("/"))
    bound = hostdev("bind", guest.EDU, "-o", "json")
    assert bound.returncode == 0, bound.stderr
    created = hostdev("mdev", "create", "--parent", "mtty", "--type", "mtty-2", "--uuid", UUID)
    assert created.returncode == 0, created.stderr
    try:
        result = hostdev("kubevirt", "permitted", "--format", "snippet", "-o", "json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        snippet = data["document"]["permittedHostDevices"]
        selectors = [e["pciVendorSelector"] for e in snippet["pciHostDevices"]]
        # virt-handler: strings.ToLower(selector) == PCI_ID of a device on vfio-pci
        on_vfio = [a for a in os.listdir("/sys/bus/pci/devices") if guest.driver_of(a) == "vfio-pci"]
        assert sorted(s.lower() for s in selectors) == sorted({pci_id(a).lower() for a in on_vfio})
        assert "1234:11E8" in selectors and all(s == s.upper() for s in selectors)
        names = [e["mdevNameSelector"] for e in snippet["mediatedDevices"]]
        type_name = Path(f"/sys/bus/mdev/devices/{UUID}/mdev_type/name").read_text()
        assert names == [type_name.strip()] == ["Dual port serial"]
        # KubeVirt's norm(): spaces to "_", then trim — on both sides of the comparison
        assert names[0].replace(" ", "_").strip() == type_name.replace(" ", "_").strip()
        yaml.safe_load(hostdev("kubevirt", "permitted").stdout)  # the default CR is valid YAML
    finally:
        hostdev("mdev", "remove", UUID)
        hostdev("restore", "--all")
