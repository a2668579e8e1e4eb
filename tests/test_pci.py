import os

import pytest

from hostdev import pci, pciids
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


def test_vf_counts_and_boot_vga_are_read_only_where_the_kernel_shows_them(tmp_path):
    """A PF's sriov_totalvfs/sriov_numvfs and a VGA function's boot_vga are read in one more scan
    of its directory; a boot_vga on a function of another class (the kernel shows none there, a
    tree may) is not believed, nor a count behind a link."""
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    host = Host(info.root)
    pf = f"/sys/bus/pci/devices/{info.nic_pf}"
    with open(host.path(f"{pf}/boot_vga"), "w") as planted:
        planted.write("1\n")
    before = {d.address: d for d in pci.list_devices(host)}
    assert before[info.nic_pf].sriov.to_dict() == {"role": "pf", "total_vfs": 8, "num_vfs": 2}
    assert before[info.nic_pf].boot_vga is None
    assert before[info.boot_vga].boot_vga is True and before[info.t4].boot_vga is None
    assert pci.read_device(host, info.nic_pf) == before[info.nic_pf]
    os.unlink(host.path(f"{pf}/sriov_numvfs"))
    os.symlink("sriov_totalvfs", host.path(f"{pf}/sriov_numvfs"))
    assert pci.read_device(host, info.nic_pf).sriov.to_dict() == {"role": "pf", "total_vfs": 8, "num_vfs": None}


@pytest.mark.parametrize("text, expected", [
    ("10DE", "10de"), ("10de", "10de"), ("0x10de", "10de"), ("0X10DE", "10de"), ("1f", "001f"),
    ("010de", "10de"), ("zzzz", None), ("    ", None), ("", None), (None, None), ("0xzz", None),
])
def test_hex4_gives_four_lower_case_digits_or_none(text, expected):
    for _ in range(2):  # the second time from what _hex4 remembers
        assert pci._hex4(text) == expected


def _function(tmp_path, address, files):
    """A function directory at /sys/bus/pci/devices/ADDR with only ``files`` in it."""
    d = tmp_path / "sys/bus/pci/devices" / address
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return Host(str(tmp_path))


def test_a_function_with_uevent_alone_is_read_from_it(tmp_path):
    """IDs, class and driver come from uevent; the single attributes are read only without it."""
    host = _function(tmp_path, "0000:65:00.0", {
        "uevent": "DRIVER=nvidia\nPCI_CLASS=30200\nPCI_ID=10DE:1EB8\nPCI_SUBSYS_ID=10DE:12A2\n"
                  "PCI_SLOT_NAME=0000:65:00.0\nMODALIAS=pci:v000010DEd00001EB8sv000010DEsd000012A2bc03sc02i00\n"})
    dev = pci.read_device(host, "0000:65:00.0")
    assert (dev.vendor_id, dev.device_id, dev.subsystem_vendor_id, dev.subsystem_device_id, dev.class_id,
            dev.driver) == ("10de", "1eb8", "10de", "12a2", "030200", "nvidia")
    assert pci.list_devices(host) == [dev]


def test_a_uevent_without_subsystem_or_driver(tmp_path):
    host = _function(tmp_path, "0000:00:1f.0", {"uevent": "PCI_CLASS=60100\nPCI_ID=8086:A1C8\n"})
    dev = pci.read_device(host, "0000:00:1f.0")
    assert (dev.pci_id, dev.class_id, dev.subsystem_vendor_id, dev.subsystem_device_id, dev.driver) == (
        "8086:a1c8", "060100", None, None, None)


@pytest.mark.parametrize("files, expected", [
    ({"vendor": "0x8086\n", "device": "0x1593\n", "class": "0x020000\n"}, ("8086:1593", "020000")),
    ({"vendor": "0x8086\n", "device": "0x1593\n"}, ("8086:1593", "000000")),           # no class
    ({"vendor": "0x8086\n", "device": "0x1593\n", "class": "garbage\n"}, ("8086:1593", "000000")),
    ({"vendor": "0x8086\n", "class": "0x020000\n"}, ("8086:0000", "020000")),           # no device
    ({"vendor": "0x8086\n", "device": "junk\n", "class": "0x020000\n"}, ("8086:0000", "020000")),
    ({"device": "0x1593\n", "class": "0x020000\n"}, None),                              # no vendor: no function
])
def test_the_single_attributes_without_uevent(tmp_path, files, expected):
    host = _function(tmp_path, "0000:17:00.0", files)
    dev = pci.read_device(host, "0000:17:00.0")
    assert (dev.pci_id, dev.class_id) == expected if expected else dev is None


@pytest.mark.parametrize("override, numa, expected", [
    ("(null)\n", "-1\n", (None, None)),     # as the kernel shows "no override" and "no NUMA node"
    ("\n", "0\n", (None, 0)),               # an empty override is none either
    ("vfio-pci\n", "1\n", ("vfio-pci", 1)),
    ("vfio-pci\n", "junk\n", ("vfio-pci", None)),
])
def test_driver_override_and_numa_node_as_the_kernel_shows_them(tmp_path, override, numa, expected):
    host = _function(tmp_path, "0000:17:00.0", {"uevent": "PCI_CLASS=20000\nPCI_ID=8086:1593\n",
                                                "driver_override": override, "numa_node": numa})
    dev = pci.read_device(host, "0000:17:00.0")
    assert (dev.driver_override, dev.numa_node) == expected


def test_read_device_and_get_device_fill_in_names_as_the_listing_does(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    host = Host(info.root)
    names = pciids.PciIds(b"10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\nC 03  Display controller\n"
                          b"\t02  3D controller\n", "sample")
    listed = {d.address: d for d in pci.list_devices(host, names)}
    t4 = pci.read_device(host, info.t4, names)
    assert (t4.vendor_name, t4.device_name, t4.class_name) == ("NVIDIA Corporation", "TU104GL [Tesla T4]",
                                                               "3D controller")
    assert t4 == listed[info.t4] == pci.get_device(host, info.t4[5:], names)
    assert pci.read_device(host, info.t4).vendor_name is None
