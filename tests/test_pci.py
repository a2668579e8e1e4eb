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
