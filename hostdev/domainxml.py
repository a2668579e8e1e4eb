"""The transient libvirt domain of ``hostdev vm test``, built with ElementTree, and the hostdev
sources read back from a live domain's XML. Pure: text and values in, text or values out.

Element and attribute names follow libvirt's domain format (https://libvirt.org/formatdomain.html,
"Host device assignment"): a PCI function is ``<hostdev mode='subsystem' type='pci'>`` with a
``<source><address domain= bus= slot= function=/>``; a mediated device is
``<hostdev mode='subsystem' type='mdev' model='vfio-pci'>`` with ``<source><address uuid=/>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from .errors import BugError, UsageError
from .model import PciAddress

NAME_PREFIX = "hostdev-test-"
# libvirt's machine type per guest architecture: q35 (PCIe) on x86, "virt" on Arm.
MACHINES = {"x86_64": "q35", "aarch64": "virt"}


class HostdevSource(NamedTuple):
    """One device given to the domain: ``kind`` "pci" (``address`` DDDD:BB:SS.F) or "mdev"
    (``address`` the UUID). ``managed``: libvirt binds the PCI function to vfio-pci at start and
    gives it back to its host driver at stop (libvirt's managed='yes'); mdevs are never managed."""

    kind: str
    address: str
    managed: bool = False


def domain_name(target: str) -> str:
    """``hostdev-test-0000-65-00-0`` for a PCI address, ``hostdev-test-UUID`` for an mdev:
    ``:`` and ``.`` become ``-`` so that the name is also a plain file name (libvirt keeps
    /run/libvirt/qemu/NAME.xml and /var/log/libvirt/qemu/NAME.log)."""
    return NAME_PREFIX + target.replace(":", "-").replace(".", "-")


def _sub(parent: ET.Element, tag: str, text: Optional[str] = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


# Guest slots for the hostdevs, on the root bus (pcie.0 on q35): a device behind a root port or
# a PCIe-to-PCI bridge (where libvirt puts it by default; a conventional PCI function goes
# behind a pcie-pci-bridge) only shows in QEMU's query-pci after the guest firmware has numbered
# the buses, which under TCG can take long. On the root bus it is listed as soon as QEMU runs.
# Slot 0x10 and up: q35 keeps 0x00 (host bridge), 0x01 (libvirt's first ports) and 0x1f (ICH9).
FIRST_GUEST_SLOT = 0x10


def _hostdev(devices: ET.Element, source: HostdevSource, index: int) -> None:
    if source.kind == "pci":
        addr = PciAddress.parse(source.address)
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes" if source.managed else "no")
        src = _sub(hostdev, "source")
        _sub(src, "address", domain=f"0x{addr.domain:04x}", bus=f"0x{addr.bus:02x}", slot=f"0x{addr.slot:02x}",
             function=f"0x{addr.function:x}")
    elif source.kind == "mdev":
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="mdev", model="vfio-pci")
        src = _sub(hostdev, "source")
        _sub(src, "address", uuid=source.address)
    else:
        raise BugError(f"unknown hostdev kind {source.kind!r}")
    _sub(hostdev, "address", type="pci", domain="0x0000", bus="0x00", slot=f"0x{FIRST_GUEST_SLOT + index:02x}",
         function="0x0")


def build(name: str, virt_type: str, sources: Sequence[HostdevSource], *, memory_mib: int = 256,
          vcpus: int = 1, arch: str = "x86_64", kernel: Optional[str] = None, initrd: Optional[str] = None,
          cmdline: Optional[str] = None, serial_log: Optional[str] = None,
          phys_bits: Optional[int] = None) -> str:
    """The domain XML (a string ending in a newline).

    No disk, no network, no graphics, no balloon: the domain only has to start with the devices
    attached. The serial port is a pty (``virsh console NAME``), or the file ``serial_log`` when
    a direct-boot guest should write its report there. With ``kernel`` the guest boots that
    kernel (and ``initrd``, ``cmdline``) directly; without, the firmware runs and finds nothing
    to boot, which is enough for QEMU to have opened every device. ``phys_bits``: the guest
    CPU's physical address bits (``<cpu><maxphysaddr mode='emulate' bits=N/>``, libvirt 8.7+;
    QEMU's phys-bits), which size the firmware's 64-bit MMIO window. Raises UsageError for an
    architecture without a known machine type.
    """
    if virt_type not in ("kvm", "qemu"):
        raise BugError(f"virt_type must be kvm or qemu, not {virt_type!r}")
    if arch not in MACHINES:
        raise UsageError(f"no test machine type for architecture {arch}",
                         fix=f"hostdev vm test knows {', '.join(MACHINES)}")
    domain = ET.Element("domain", type=virt_type)
    _sub(domain, "name", name)
    _sub(domain, "title", "hostdev vm test: a transient domain that proves device assignment")
    _sub(domain, "memory", str(memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(vcpus))
    if phys_bits is not None:
        cpu = _sub(domain, "cpu")
        _sub(cpu, "maxphysaddr", mode="emulate", bits=str(phys_bits))
    os_ = _sub(domain, "os")
    _sub(os_, "type", "hvm", arch=arch, machine=MACHINES[arch])
    if kernel:
        _sub(os_, "kernel", kernel)
        if initrd:
            _sub(os_, "initrd", initrd)
        if cmdline:
            _sub(os_, "cmdline", cmdline)
    # A guest that powers off or reboots ends the test; nothing restarts it.
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _sub(domain, event, "destroy")
    devices = _sub(domain, "devices")
    if len(sources) > 0x1F - FIRST_GUEST_SLOT:
        raise UsageError(f"{len(sources)} devices do not fit on the test domain's root bus",
                         fix=f"test at most {0x1F - FIRST_GUEST_SLOT} at a time")
    for index, source in enumerate(sources):
        _hostdev(devices, source, index)
    if serial_log:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=serial_log)
    else:
        serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    if not serial_log:
        # the serial port again as the console (what virsh console attaches to); a file-backed
        # serial has no console: libvirt would refuse a second writer of the same file
        console = _sub(devices, "console", type="pty")
        _sub(console, "target", type="serial", port="0")
    video = _sub(devices, "video")
    _sub(video, "model", type="none")
    _sub(devices, "memballoon", model="none")
    ET.indent(domain, space="  ")
    return ET.tostring(domain, encoding="unicode") + "\n"


def _parse(xml_text: str) -> ET.Element:
    try:
        return ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise UsageError(f"the domain XML does not parse: {exc}") from None


def _source(hostdev: ET.Element) -> Optional[HostdevSource]:
    address = hostdev.find("./source/address")
    if address is None:
        return None
    kind = hostdev.get("type")
    if kind == "pci":
        try:
            parts = [int(address.get(key, "0"), 0) for key in ("domain", "bus", "slot", "function")]
        except ValueError:
            return None
        return HostdevSource("pci", str(PciAddress(*parts)), hostdev.get("managed") == "yes")
    if kind == "mdev" and address.get("uuid"):
        return HostdevSource("mdev", address.get("uuid", "").lower(), False)
    return None


def _subsystem_hostdevs(xml_text: str):
    for hostdev in _parse(xml_text).iterfind("./devices/hostdev[@mode='subsystem']"):
        source = _source(hostdev)
        if source is not None:
            yield source, hostdev


def attached(xml_text: str) -> List[HostdevSource]:
    """The subsystem hostdevs of a (live) domain XML, in document order. PCI addresses come
    back in sysfs form; ``managed`` as libvirt reports it. Raises UsageError on XML that does
    not parse."""
    return [source for source, _ in _subsystem_hostdevs(xml_text)]


def aliases(xml_text: str) -> Dict[Tuple[str, str], str]:
    """(kind, address) → the alias libvirt gave each hostdev of a live domain (``hostdev0`` …):
    QEMU's ``id`` of the device, which its monitor reports. Hostdevs without one are left out."""
    found = {}
    for source, hostdev in _subsystem_hostdevs(xml_text):
        alias = hostdev.find("./alias")
        if alias is not None and alias.get("name"):
            found[(source.kind, source.address)] = alias.get("name", "")
    return found


def phys_bits(xml_text: str) -> Optional[int]:
    """The ``bits`` of a domain's ``<cpu><maxphysaddr mode='emulate'>``, or None."""
    element = _parse(xml_text).find("./cpu/maxphysaddr[@mode='emulate']")
    bits = element.get("bits", "") if element is not None else ""
    return int(bits) if bits.isdigit() else None


def guest_domain_types(capabilities_xml: str, arch: str) -> Set[str]:
    """The domain types (kvm, qemu …) libvirt's capabilities offer for hvm guests of ``arch``."""
    root = _parse(capabilities_xml)
    types = set()
    for guest in root.iterfind("./guest"):
        if guest.findtext("os_type") != "hvm":
            continue
        for arch_el in guest.iterfind(f"./arch[@name='{arch}']"):
            types.update(d.get("type", "") for d in arch_el.iterfind("./domain"))
    return types
