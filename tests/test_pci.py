import os

from hostdev import pci
from hostdev.host import Host
from tests.fakesys import scenarios


def test_uevent_and_single_attribute_reads_agree(tmp_path):
    """The listing reads uevent; a tree without it (older recordings) reads the attributes and
    the driver link instead, with the same result."""
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    host = Host(info.root)
    before = pci.list_devices(host)
    for dev in before:
        os.unlink(host.path(f"/sys/bus/pci/devices/{dev.address}/uevent"))
    after = pci.list_devices(host)
    assert after == before
    assert {d.address: d.driver for d in after}[info.t4] == "nvidia"


def test_addresses_sort_numerically_across_domain_widths(tmp_path):
    devices = tmp_path / "sys/bus/pci/devices"
    devices.mkdir(parents=True)
    for name in ["10000:00:00.0", "0000:0a:00.0", "0000:09:1f.7", "0001:00:00.0", "not-a-device"]:
        (devices / name).mkdir()
    assert pci.list_addresses(Host(str(tmp_path))) == ["0000:09:1f.7", "0000:0a:00.0", "0001:00:00.0",
                                                       "10000:00:00.0"]
