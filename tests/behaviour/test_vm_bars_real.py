"""vm test's BAR check on the real kernel, both ways: the test guest's ivshmem-plain has a 1 TiB
64-bit BAR2 (tests/realkernel/vm.py). In the nested libvirt/QEMU (TCG) domain the guest CPU has
QEMU's default 40 physical address bits; SeaBIOS places the BAR above RAM, aligned to its size,
at 1-2 TiB, where a 40-bit guest cannot reach it: vm test must fail naming BAR2 and the fix.
With --phys-bits auto (the 43 bits hostdev check recommends) the same BAR is reachable and the
test passes. Real-kernel only."""
import json
import os

import pytest

from tests.behaviour.test_vm_real import (  # noqa: F401 (clean_guest: a fixture)
    NESTED_BOOT_UNITS,
    clean_guest,
    domains,
    driver,
    hostdev,
    vm_test,
)

pytestmark = pytest.mark.realkernel

BIG_BAR = "0000:00:1e.0"   # ivshmem-plain 1af4:1110, no driver, BAR2 1 TiB


def test_guest_phys_bits_from_qemu(libvirtd):
    """QEMU's answer (qom-get phys-bits of the first vCPU) for a plain nested domain, and for one
    given 43 bits with <maxphysaddr>."""
    import libvirt

    from hostdev import domainxml, virt

    conn = libvirt.open(libvirtd)
    try:
        for bits, expected in ((None, 40), (43, 43)):
            xml = domainxml.build("hostdev-test-physbits", "qemu", [], memory_mib=64, phys_bits=bits)
            with virt.TestDomain(conn, "hostdev-test-physbits", xml) as test:
                test.create()
                test.wait_running(60)
                raw = (test.qmp("query-cpus-fast"), test.guest_phys_bits())
                test.destroy()
            assert raw[1] == expected, raw
    finally:
        conn.close()


@pytest.fixture
def no_domain_left(libvirtd):
    """A vm test killed by a timeout leaves its transient domain running (nothing destroys it):
    destroy it, so the tests after this one find no stray domain."""
    yield
    import libvirt

    conn = libvirt.open(libvirtd)
    try:
        for domain in conn.listAllDomains():
            if domain.name().startswith("hostdev-test-") and domain.isActive():
                domain.destroy()
    finally:
        conn.close()


def test_bar_past_the_guest_address_space_fails_then_passes_with_phys_bits(libvirtd, clean_guest,  # noqa: F811
                                                                           no_domain_left):
    # the readiness row on the real sysfs: 1 TiB → 2^40 → 40 + 3 bits for EFI's 1/8 window
    check = hostdev("check", BIG_BAR, "--stack", "libvirt", "-o", "json")
    rows = {c["id"]: c for c in json.loads(check.stdout)["devices"][0]["checks"]}
    assert rows["bar-mmio"]["status"] == "warn", rows["bar-mmio"]
    assert "BAR2 1 TiB 64-bit prefetchable" in rows["bar-mmio"]["summary"]
    assert "--phys-bits 43" in rows["bar-mmio"]["fix"]

    result, report = vm_test(BIG_BAR, "--connect", libvirtd)
    assert result.returncode == 5, result.stderr
    assert report["error"]["reason"] == "bar_unreachable", report["error"]
    assert "BAR2 1 TiB 64-bit prefetchable" in report["error"]["message"]
    assert "40-bit physical address space" in report["error"]["message"]
    assert f"hostdev vm test {BIG_BAR} --phys-bits 43" in report["error"]["fix"]
    [dev] = report["devices"]
    bar2 = next(b for b in dev["bars"] if b["index"] == 2)
    # SeaBIOS put it at 1 TiB (aligned to its size, above the RAM) — past 2^40
    assert (bar2["guest_address"], bar2["reachable"]) == ("0x10000000000", False)
    assert dev["returned"] is True and driver(BIG_BAR) is None
    assert report["guest_phys_bits"] == 40

    result, report = vm_test(BIG_BAR, "--connect", libvirtd, "--phys-bits", "auto")
    assert result.returncode == 0, result.stderr
    assert report["ok"] is True and (report["phys_bits"], report["guest_phys_bits"]) == (43, 43)
    [dev] = report["devices"]
    assert {b["index"] for b in dev["bars"]} == {0, 2}
    assert all(b["guest_address"] and b["reachable"] for b in dev["bars"]), dev["bars"]
    assert dev["returned"] is True

    # --boot, the suite's one nested guest boot (each costs minutes under TCG inside TCG): the host's
    # own kernel with hostdev's initramfs boots in the nested domain, enumerates the device on its
    # PCI bus, prints it on the serial console and powers off; the nested kernel's own resource
    # file places BAR2 where the firmware put it. Its waits in units of the guest's measured speed.
    # 64 MiB is too little for a distribution kernel to unpack its initramfs: the default 256.
    result, report = vm_test(BIG_BAR, "--connect", libvirtd, "--phys-bits", "auto", "--boot",
                             options=("--virt-type", "qemu", "-o", "json"), boot_units=NESTED_BOOT_UNITS)
    logs = []
    for path in ((report.get("guest") or {}).get("console"), "/var/log/libvirt/qemu/hostdev-test-0000-00-1e-0.log"):
        if path and os.path.exists(path):
            with open(path, errors="replace") as handle:
                logs.append(f"--- {path}:\n{handle.read()[-3000:]}")
    assert result.returncode == 0, result.stderr + result.stdout[-3000:] + "\n".join(logs)
    assert report["ok"] is True and report["guest"]["complete"] is True
    assert report["guest"]["direct_boot"] is True  # Debian's XZ bzImage, booted as its uncompressed PVH kernel
    assert "1af4:1110" in report["guest"]["pci"].values()
    [dev] = report["devices"]
    assert dev["returned"] is True and driver(BIG_BAR) is None
    bar2 = next(b for b in dev["bars"] if b["index"] == 2)
    assert (bar2["source"], bar2["guest_address"], bar2["reachable"]) == ("guest-kernel", "0x10000000000", True)
    assert domains(libvirtd) == []
