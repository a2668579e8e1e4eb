"""domainxml: the test domain's XML against golden files, and hostdevs read back from live XML.

Regenerate the golden files with HOSTDEV_REGENERATE_GOLDEN=1 (then read the diff: the files
are the expected values, checked by hand against libvirt's domain format)."""

import pytest

from hostdev import domainxml
from hostdev.domainxml import HostdevSource
from hostdev.errors import UsageError
from tests import golden as goldens

T4 = "0000:65:00.0"
VGPU = "6bd3aab7-0f47-4a1c-8a39-6b2e5f7f0a11"


def golden(name: str, text: str) -> None:
    goldens.check("domainxml", name, text)


def test_names_are_file_names():
    assert domainxml.domain_name("0000:65:00.0") == "hostdev-test-0000-65-00-0"
    assert domainxml.domain_name("10000:e1:1f.7") == "hostdev-test-10000-e1-1f-7"
    assert domainxml.domain_name(VGPU) == f"hostdev-test-{VGPU}"


def test_managed_pci_function_kvm():
    xml = domainxml.build("hostdev-test-0000-65-00-0", "kvm", [HostdevSource("pci", T4, True)])
    golden("pci-managed-kvm.xml", xml)


def test_two_functions_of_one_card_unmanaged_tcg():
    sources = [HostdevSource("pci", "0000:17:00.0"), HostdevSource("pci", "0000:17:00.1")]
    xml = domainxml.build("hostdev-test-0000-17-00-0", "qemu", sources, memory_mib=1024, vcpus=2)
    golden("pci-two-functions-qemu.xml", xml)


def test_mdev_with_direct_kernel_boot_and_serial_file():
    xml = domainxml.build(f"hostdev-test-{VGPU}", "kvm", [HostdevSource("mdev", VGPU)], memory_mib=128,
                          kernel="/boot/vmlinuz", initrd="/tmp/hostdev-probe.cpio", cmdline="console=ttyS0 panic=-1",
                          serial_log="/var/log/libvirt/qemu/hostdev-test.serial")
    golden("mdev-direct-boot.xml", xml)


def test_refusals():
    with pytest.raises(UsageError, match="no test machine type for architecture ppc64le"):
        domainxml.build("x", "kvm", [], arch="ppc64le")
    with pytest.raises(Exception, match="bug"):
        domainxml.build("x", "xen", [])


# What libvirt 9.0's test driver returned from XMLDesc for a domain created from our XML with a
# managed PCI function and an mdev (libvirt adds managed='no' to the mdev, and the uuid, ids, …).
LIVE = """<domain type='kvm' id='2'>
  <name>hostdev-test-0000-65-00-0</name>
  <uuid>5ab8f5cd-9fd0-4e0c-bfc3-00f8b6c50a03</uuid>
  <memory unit='KiB'>262144</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source>
        <address domain='0x0000' bus='0x65' slot='0x00' function='0x0'/>
      </source>
      <alias name='hostdev0'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci'>
      <source>
        <address uuid='6BD3AAB7-0F47-4A1C-8A39-6B2E5F7F0A11'/>
      </source>
    </hostdev>
    <hostdev mode='capabilities' type='storage'>
      <source>
        <block>/dev/sdf1</block>
      </source>
    </hostdev>
  </devices>
</domain>
"""


def test_attached_reads_sources_not_guest_addresses():
    # the second <address> (the guest-side slot 01:00.0) is not the source; capabilities
    # hostdevs are not ours; the UUID comes back in lower case
    assert domainxml.attached(LIVE) == [HostdevSource("pci", T4, True), HostdevSource("mdev", VGPU, False)]


def test_attached_round_trip_and_bad_xml():
    sources = [HostdevSource("pci", "0000:17:00.0"), HostdevSource("pci", "0000:17:00.1", True),
               HostdevSource("mdev", VGPU)]
    assert domainxml.attached(domainxml.build("n", "qemu", sources)) == sources
    assert domainxml.attached("<domain><devices/></domain>") == []
    with pytest.raises(UsageError, match="does not parse"):
        domainxml.attached("<domain>")


CAPS = """<capabilities><host/>
  <guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
  <guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest>
  <guest><os_type>xen</os_type><arch name='x86_64'><domain type='xen'/></arch></guest>
</capabilities>"""


def test_domain_types_from_capabilities():
    assert domainxml.guest_domain_types(CAPS, "x86_64") == {"qemu", "kvm"}
    assert domainxml.guest_domain_types(CAPS, "i686") == {"qemu"}
    assert domainxml.guest_domain_types(CAPS, "aarch64") == set()


def test_aliases_of_live_hostdevs():
    # the PCI function has libvirt's alias; the mdev in LIVE has none and is left out
    assert domainxml.aliases(LIVE) == {("pci", T4): "hostdev0"}
