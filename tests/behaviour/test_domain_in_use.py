"""A device given to a running libvirt domain cannot be taken back (real kernel only).

vfio-pci's unbind blocks until the user closes the device, so hostdev must refuse up front and
name the domain's QEMU process; after the domain is destroyed the same restore succeeds.
"""
import xml.etree.ElementTree as ET

import pytest

from hostdev import binding, hostuse, pci
from hostdev.errors import RefusedError
from hostdev.host import Host

pytestmark = pytest.mark.realkernel

EDU = "0000:00:10.0"


def domain_xml(address: str) -> str:
    dom, bus, rest = address.split(":")
    slot, function = rest.split(".")
    domain = ET.Element("domain", type="qemu")
    ET.SubElement(domain, "name").text = "hostdev-in-use"
    ET.SubElement(domain, "memory", unit="MiB").text = "64"
    ET.SubElement(domain, "vcpu").text = "1"
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    devices = ET.SubElement(domain, "devices")
    ET.SubElement(devices, "emulator").text = "/usr/bin/qemu-system-x86_64"
    hostdev = ET.SubElement(devices, "hostdev", mode="subsystem", type="pci", managed="no")
    source = ET.SubElement(hostdev, "source")
    ET.SubElement(source, "address", domain=f"0x{dom}", bus=f"0x{bus}", slot=f"0x{slot}", function=f"0x{function}")
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="none")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def test_restore_refused_while_a_domain_runs_with_the_device(libvirtd):
    libvirt = pytest.importorskip("libvirt")
    from tests.behaviour.conftest import _reset_real_guest

    host = Host("/")
    _reset_real_guest(host)
    binding.plan_bind(host, binding.resolve_addresses(host, [EDU])).plan.apply(host)
    conn = libvirt.open(libvirtd)
    dom = conn.createXML(domain_xml(EDU), 0)
    try:
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        group = pci.read_device(host, EDU).iommu_group
        holders = hostuse.vfio_group_holders(host, group)
        assert holders and "qemu" in holders[0]
        with pytest.raises(RefusedError, match=f"/dev/vfio/{group} is held by qemu"):
            binding.plan_restore(host, [EDU])
        with pytest.raises(RefusedError, match="in use"):
            binding.plan_unbind(host, binding.resolve_addresses(host, [EDU]))
        assert host.link_name(f"/sys/bus/pci/devices/{EDU}/driver") == "vfio-pci"
    finally:
        dom.destroy()
        conn.close()
    binding.plan_restore(host, [EDU]).plan.apply(host)
    assert host.link_name(f"/sys/bus/pci/devices/{EDU}/driver") is None
    _reset_real_guest(host)
