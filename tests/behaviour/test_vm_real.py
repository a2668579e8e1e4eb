"""hostdev vm test on the real kernel: a nested libvirt/QEMU (TCG) domain inside the test guest
gets the edu device and an mtty mdev, the device is seen on vfio-pci and held by QEMU while it
runs, and is given back to the driver it had after (real-kernel only)."""
import json
import os
import subprocess
import sys

import pytest

from hostdev.host import Host
from tests.realkernel import speed

pytestmark = pytest.mark.realkernel

EDU = "0000:00:10.0"            # no driver at boot, alone in IOMMU group 3
EDU_BEHIND_BRIDGE = "0000:01:01.0"  # group 6 with the PCIe-to-PCI bridge and e1000 01:03.0 (on e1000)
UUID = "7d2a6b1e-3c4f-4a5b-9c8d-0e1f2a3b4c5d"
# Waits in units of this guest's measured speed (tests/realkernel/speed.py; idle durations in
# docs/testing.md, "Timeouts"): the nested domain's start (about 40 s idle), and the nested kernel's
# boot to its PCI report (about 240 s idle). The rest of a hostdev call fits the per-test default.
START_UNITS = 100.0
NESTED_BOOT_UNITS = 600.0
ARGS = ("--virt-type", "qemu", "--memory", "64", "-o", "json")


def hostdev(*args, allowed=None):
    if allowed is None:
        allowed = speed.allowance(speed.TEST_GUEST_UNITS)
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env=dict(os.environ, HOSTDEV_ROOT="/"), timeout=allowed)


def vm_test(*args, options=ARGS, boot_units=0.0):
    unit = speed.measure()
    start = speed.allowance(START_UNITS, unit)
    waits = ["--timeout", f"{start:.0f}"]
    allowed = start + speed.allowance(speed.TEST_GUEST_UNITS, unit)
    if boot_units:
        boot = speed.allowance(boot_units, unit)
        waits += ["--boot-timeout", f"{boot:.0f}"]
        allowed += boot
    speed.announce(allowed * 1.1)  # the host's watchdog waits as long as this test may
    result = hostdev("vm", "test", *args, *options, *waits, allowed=allowed)
    return result, json.loads(result.stdout)


def driver(address):
    return Host("/").link_name(f"/sys/bus/pci/devices/{address}/driver")


def domains(uri):
    import libvirt

    conn = libvirt.open(uri)
    try:
        return [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


@pytest.fixture
def clean_guest(libvirtd):
    from tests.behaviour.conftest import _reset_real_guest
    from tests.realkernel import guest

    _reset_real_guest(Host("/"))
    # libvirtd remembers a device a domain used unmanaged (already on vfio-pci) in its inactive
    # list, with "do not unbind" flags; a later managed domain then leaves it on vfio-pci (hostdev
    # reports not_returned, rightly). A fresh libvirtd per test keeps the tests independent.
    guest.guest_setup("libvirtd-stop")
    guest.guest_setup("libvirtd-start")
    yield
    _reset_real_guest(Host("/"))


def test_pci_device_attached_managed_and_given_back(libvirtd, clean_guest):
    assert driver(EDU) is None
    # the virt type chosen from evidence (/dev/kvm, then libvirt's capabilities) must work here
    result, report = vm_test(EDU, "--connect", libvirtd, options=ARGS[2:])
    assert result.returncode == 0, result.stderr
    assert f"virt type {report['virt_type']}: " in result.stderr
    assert report["ok"] is True and report["error"] is None
    assert report["uri"] == "qemu:///system" and report["domain"] == "hostdev-test-0000-00-10-0"
    [edu] = report["devices"]
    assert (edu["address"], edu["type"], edu["managed"], edu["iommu_group"]) == (EDU, "pci", True, 3)
    # libvirt moved it to vfio-pci, QEMU opened /dev/vfio/3, and after destroy it has no driver again
    assert edu["driver_before"] is None and edu["driver_running"] == "vfio-pci" and edu["attached"] is True
    assert edu["held_by"] and edu["held_by"][0].startswith("qemu")
    assert edu["guest_pci_id"] == "1234:11e8"     # QEMU's edu device, as the guest's PCI bus shows it
    assert edu["driver_after"] is None and edu["returned"] is True
    assert driver(EDU) is None
    assert domains(libvirtd) == []


def test_prebound_device_goes_in_unmanaged_and_stays_on_vfio(libvirtd, clean_guest):
    bound = hostdev("bind", EDU)
    assert bound.returncode == 0, bound.stderr
    result, report = vm_test(EDU, "--connect", libvirtd)
    assert result.returncode == 0, result.stderr
    [edu] = report["devices"]
    assert edu["managed"] is False      # as KubeVirt's domains: libvirt leaves the binding alone
    assert (edu["driver_before"], edu["driver_running"], edu["driver_after"]) == ("vfio-pci",) * 3
    assert edu["guest_pci_id"] == "1234:11e8"
    assert edu["held_by"] and edu["returned"] is True
    assert driver(EDU) == "vfio-pci"
    assert domains(libvirtd) == []


def test_mdev_attached_to_a_running_domain(libvirtd, mdev_samples, clean_guest):
    created = hostdev("mdev", "create", "--parent", "mtty", "--type", "mtty-2", "--uuid", UUID)
    assert created.returncode == 0, created.stderr
    result, report = vm_test("--mdev", UUID, "--connect", libvirtd)
    assert result.returncode == 0, result.stderr
    [mdev] = report["devices"]
    assert (mdev["type"], mdev["address"], mdev["managed"], mdev["attached"]) == ("mdev", UUID, False, True)
    assert mdev["held_by"] and mdev["held_by"][0].startswith("qemu")
    # mtty's virtual config space: vendor 0x4348, device 0x3253 (samples/vfio-mdev/mtty.c)
    assert mdev["guest_pci_id"] == "4348:3253"
    assert mdev["returned"] is True and os.path.isdir(f"/sys/bus/mdev/devices/{UUID}")
    assert domains(libvirtd) == []


def test_group_not_viable_is_explained_and_the_device_given_back(libvirtd, clean_guest):
    # without --force hostdev refuses up front: e1000 01:03.0 shares the group on its host driver
    refused = hostdev("vm", "test", EDU_BEHIND_BRIDGE, *ARGS)
    assert refused.returncode == 3 and "would not be viable" in refused.stderr
    # with --force libvirt tries, QEMU says "group 6 is not viable", hostdev explains it
    result, report = vm_test(EDU_BEHIND_BRIDGE, "--force", "--connect", libvirtd)
    assert result.returncode == 5, result.stderr
    assert report["ok"] is False
    assert report["error"]["reason"] == "group_not_viable"
    assert "group 6 is not viable" in report["error"]["libvirt_message"]
    assert "hostdev bind" in report["error"]["fix"]
    [edu2] = report["devices"]
    assert edu2["returned"] is True and driver(EDU_BEHIND_BRIDGE) is None
    assert driver("0000:01:03.0") == "e1000"
    assert domains(libvirtd) == []
