"""vm test's BAR check, the pure parts: QEMU's query-pci regions, the guest kernel's resource
lines from the reporting initramfs, the verdict and its fix, and --phys-bits in the domain XML.

The query-pci reply is the shape QEMU 7.2 returned on this machine for ivshmem-plain with a
1 TiB memory backend on a q35 guest with SeaBIOS 1.16.2 and a 40-bit qemu64 CPU (TCG, Nov 2026:
BAR0 256 B at 0xfebfe000, BAR2 at 0x10000000000); the unmapped address is QEMU's
PCI_BAR_UNMAPPED (all ones).
"""
import json
import xml.etree.ElementTree as ET

from hostdev import domainxml, guestinit, readiness, virt, vmtest
from hostdev.domainxml import HostdevSource

TIB = 1 << 40
REPLY = json.dumps({"return": [{"bus": 0, "devices": [
    {"bus": 0, "slot": 16, "function": 0, "qdev_id": "hostdev0", "id": {"vendor": 0x1af4, "device": 0x1110},
     "regions": [
         {"bar": 0, "type": "memory", "address": 0xfebfe000, "size": 256, "prefetch": False, "mem_type_64": False},
         {"bar": 2, "type": "memory", "address": TIB, "size": TIB, "prefetch": True, "mem_type_64": True}]},
    {"bus": 0, "slot": 31, "function": 2, "qdev_id": "", "id": {"vendor": 0x8086, "device": 0x2922},
     "regions": []},
]}]})
# ivshmem-plain's resource file in the outer test guest: BAR0 256 B 32-bit, BAR2 1 TiB 64-bit prefetchable
HOST_BARS = readiness.parse_resource("0x00000000fe800000 0x00000000fe8000ff 0x0000000000040200\n"
                                     "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                                     "0x0000010000000000 0x000001ffffffffff 0x000000000014220c\n")


def device(bars=()):
    return vmtest.Device(HostdevSource("pci", "0000:00:1e.0", True), 7, None, bars=bars)


def test_query_pci_regions():
    bars = virt.parse_query_pci_bars(REPLY)
    assert list(bars) == ["hostdev0"]          # devices without a QEMU id are left out
    bar0, bar2 = bars["hostdev0"]
    assert (bar0.index, bar0.address, bar0.size, bar0.is_64bit) == (0, 0xfebfe000, 256, False)
    assert (bar2.index, bar2.address, bar2.size, bar2.is_64bit, bar2.prefetchable) == (2, TIB, TIB, True, True)
    unmapped = REPLY.replace(str(TIB) + ', "size"', str((1 << 64) - 1) + ', "size"', 1)
    assert virt.parse_query_pci_bars(unmapped)["hostdev0"][1].address is None
    # through libvirt_qemu the same unmapped address arrives as -1 (seen in the real-kernel guest)
    assert virt.parse_query_pci_bars(REPLY.replace(str(TIB) + ', "size"', '-1, "size"', 1))["hostdev0"][1].address \
        is None


def test_phys_bits_read_back_from_the_domain_xml():
    assert domainxml.phys_bits(domainxml.build("t", "qemu", [], phys_bits=44)) == 44
    assert domainxml.phys_bits(domainxml.build("t", "qemu", [])) is None


def test_bar_past_40_bits_is_unreachable_and_the_fix_names_43_bits():
    checks = vmtest.guest_bar_checks(HOST_BARS, virt.parse_query_pci_bars(REPLY)["hostdev0"], 40)
    assert [(c.bar.index, c.guest_address, c.reachable) for c in checks] == [(0, 0xfebfe000, True), (2, TIB, False)]
    error = vmtest.bar_problem([device(checks)], 40)
    assert error.reason == "bar_unreachable"
    assert error.message == ("0000:00:1e.0 BAR2 1 TiB 64-bit prefetchable is at 0x10000000000-0x1ffffffffff, "
                             "past the guest's 40-bit physical address space (1 TiB)")
    # 1 TiB = 2^40 → 40 bits for the window, + 3 for the 1/8 the EFI firmware gives the window
    assert "hostdev vm test 0000:00:1e.0 --phys-bits 43" in error.fix
    # the same placement with 43 bits (8 TiB) is fine
    assert vmtest.bar_problem([device(vmtest.guest_bar_checks(HOST_BARS, virt.parse_query_pci_bars(REPLY)
                                                              ["hostdev0"], 43))], 43) is None


def test_missing_or_unassigned_bar_fails():
    checks = vmtest.guest_bar_checks(HOST_BARS, None, 40)     # QEMU does not list the device
    assert not vmtest.bars_settled([device(checks)])
    error = vmtest.bar_problem([device(checks)], 40)
    assert error.reason == "bar_unassigned" and "BAR0 256 B 32-bit non-prefetchable is not assigned" in error.message


def test_guest_kernel_resources_from_the_report():
    console = "\n".join([
        "[    1.0] pci 0000:00:10.0: BAR 2: no space for [mem size 0x10000000000 64bit pref]",
        f"{guestinit.REPORT_TAG} 0000:00:10.0 0x1af4 0x1110",
        f"{guestinit.BAR_TAG} 0000:00:10.0 0 0x00000000febfe000 0x00000000febfe0ff 0x0000000000040200",
        f"{guestinit.BAR_TAG} 0000:00:10.0 1 0x0000000000000000 0x0000000000000000 0x0000000000000000",
        # what the kernel shows for a BAR it could not place: start 0, IORESOURCE_UNSET
        f"{guestinit.BAR_TAG} 0000:00:10.0 2 0x0000000000000000 0x000000ffffffffff 0x000000002014220c",
        guestinit.DONE_TAG])
    report = guestinit.parse_report(console)
    assert report.pci == {"0000:00:10.0": "1af4:1110"}
    assert report.resources["0000:00:10.0"] == [(0, 0xfebfe000, 0xfebfe0ff, 0x40200),
                                                (2, 0, 0xffffffffff, 0x2014220c)]
    host = _HostWithResource()
    [dev] = vmtest.guest_kernel_bars(host, [device()._replace(guest_pci_id="1af4:1110")], report, 40)
    assert [(c.bar.index, c.guest_address, c.source) for c in dev.bars] == [
        (0, 0xfebfe000, "guest-kernel"), (2, None, "guest-kernel")]
    error = vmtest.bar_problem([dev], 40)
    assert error.reason == "bar_unassigned" and "the guest kernel found no room" in error.message


class _HostWithResource:
    """Just the one read vmtest.host_bars makes."""

    def read_text(self, path):
        assert path == "/sys/bus/pci/devices/0000:00:1e.0/resource"
        return ("0x00000000fe800000 0x00000000fe8000ff 0x0000000000040200\n"
                "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                "0x0000010000000000 0x000001ffffffffff 0x000000000014220c\n")


def test_init_prints_the_resource_lines():
    assert f'echo "{guestinit.BAR_TAG} ${{d##*/}} $i $start $end $flags"' in guestinit.INIT
    assert "done < $d/resource" in guestinit.INIT


def test_phys_bits_in_the_domain_xml():
    xml = domainxml.build("t", "qemu", [HostdevSource("pci", "0000:00:1e.0", True)], phys_bits=43)
    maxphysaddr = ET.fromstring(xml).find("./cpu/maxphysaddr")
    assert maxphysaddr.attrib == {"mode": "emulate", "bits": "43"}
    assert ET.fromstring(domainxml.build("t", "qemu", [])).find("./cpu") is None


def test_phys_bits_needed():
    # H200: 256 GiB + 32 MiB → 2^39 window → 42; one small 64-bit BAR → the 40-bit default
    h200 = readiness.parse_resource("0x0000100000000000 0x0000103fffffffff 0x000000000014220c\n")
    assert readiness.phys_bits_needed(h200) == 41
    assert readiness.phys_bits_needed(h200, 2) == 42
    assert readiness.phys_bits_needed(HOST_BARS) == 43
    assert readiness.phys_bits_needed(readiness.parse_resource(
        "0x0000004000000000 0x000000400007ffff 0x0000000000140204\n")) == 40
    assert readiness.phys_bits_needed(readiness.parse_resource(
        "0x00000000fe800000 0x00000000fe8000ff 0x0000000000040200\n")) is None


def test_cli_phys_bits_option(sim_of):
    sim = sim_of("intel_host_t4")
    code, out, err = sim.invoke("vm", "test", "0000:65:00.0", "--dry-run", "--phys-bits", "44", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["phys_bits"] == 44
    assert ET.fromstring(report["xml"]).find("./cpu/maxphysaddr").attrib == {"mode": "emulate", "bits": "44"}
    for bad in ("99", "x", "31"):
        code, _, err = sim.invoke("vm", "test", "0000:65:00.0", "--dry-run", "--phys-bits", bad)
        assert code == 2 and "invalid --phys-bits" in err, (bad, err)
    # auto on a device whose tree has no BARs: nothing to raise, no <cpu>
    code, out, err = sim.invoke("vm", "test", "0000:65:00.0", "--dry-run", "--phys-bits", "auto", "-o", "json")
    assert code == 0 and json.loads(out)["phys_bits"] is None
