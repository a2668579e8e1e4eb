"""Device names from udev's hardware database (hostdev/udev.py): a real, read-only hwdb lookup
on this machine, and fake roots with an injected lookup."""
import json

import pytest
import yaml

from hostdev import udev
from hostdev.cli import context

from .test_kubevirt_cli import PCI_IDS, cli  # noqa: F401  (the fixture)


def test_real_hwdb_lookup_on_this_machine():
    """systemd's hwdb (/usr/lib/udev/hwdb.bin, built from its pci.ids) names the Tesla T4 as
    pci.ids does; an id no database has gives None. Read-only: udev_hwdb_new only maps the file."""
    lookup = udev.hwdb_pci_names()
    assert lookup is not None, "no udev hwdb on this machine (the systemd/udev package installs hwdb.bin)"
    assert lookup("10de", "1eb8") == "TU104GL [Tesla T4]"
    assert lookup("8086", "4940") == "4xxx Series QAT"
    assert lookup("10de", "0bad") is None


def test_a_fake_root_never_reads_this_machines_hwdb(cli):  # noqa: F811
    host = cli("intel_host_t4")
    assert context.hwdb_factory(host.host) is None


H200 = "GH100 [H200 SXM 141GB]"


@pytest.fixture
def h200(cli, monkeypatch):  # noqa: F811
    """An H200 (10de:2335, recorded name from a Debian 12 host's hwdb) that the test pci.ids
    lacks, on vfio-pci, and a hwdb lookup injected for the fake root."""
    host = cli("intel_host_t4")
    host.fake.add_pci("0000:9a:00.0", 0x10DE, 0x2335, 0x030200, iommu_group=80, driver="vfio-pci")
    asked = []

    def lookup(vendor_id, device_id):
        asked.append((vendor_id, device_id))
        return H200 if (vendor_id, device_id) == ("10de", "2335") else None

    monkeypatch.setattr(context, "hwdb_factory", lambda h: lookup)
    host.asked = asked
    return host


def test_a_name_pci_ids_lacks_comes_from_the_hwdb_and_says_so(h200):
    out, err = h200.permitted("0000:9a:00.0", "--external", "-f", "snippet")
    assert yaml.safe_load(out)["permittedHostDevices"]["pciHostDevices"] == [
        {"pciVendorSelector": "10DE:2335", "resourceName": "nvidia.com/GH100_H200_SXM_141GB",
         "externalResourceProvider": True}]
    assert f"10DE:2335 is not in {PCI_IDS}" in err and f"from the udev hardware database ('{H200}'" in err
    assert "nvidia.com/2335" in err        # what the plugin says when its own pci.ids lacks it
    # pci.ids names come first: the hwdb is asked only about what pci.ids lacks
    assert ("10de", "1eb8") not in h200.asked


def test_the_inventory_says_where_each_name_came_from(h200):
    code, out, err = h200.invoke("inventory", "--pci-ids", PCI_IDS, "--hostname", "n1", "-o", "json")
    assert code == 0, err
    by_address = {d["address"]: d for d in json.loads(out)["devices"]}
    assert (by_address["0000:9a:00.0"]["device_name"], by_address["0000:9a:00.0"]["device_name_source"]) == \
        (H200, "hwdb")
    t4 = by_address[h200.info.t4]
    assert (t4["device_name"], t4["device_name_source"]) == ("TU104GL [Tesla T4]", "pci.ids")
    unnamed = [d for d in by_address.values() if d["device_name"] is None]
    assert all(d["device_name_source"] is None for d in unnamed)
