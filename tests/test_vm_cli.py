"""hostdev vm test against libvirt's own test:///default driver (a real libvirt, no QEMU) and
the simulated kernel for the sysfs side: the flow, the JSON contract, refusals, the domain
never left behind, and libvirt's error messages explained."""
import json

import pytest

from hostdev import vmtest
from hostdev.host import Host
from tests.fakesys import scenarios
from tests.fakesys.simkernel import SimKernel

libvirt = pytest.importorskip("libvirt")

URI = "test:///default"
T4 = "0000:65:00.0"
T4_NAME = "hostdev-test-0000-65-00-0"


@pytest.fixture
def conn():
    """A connection held open for the test: the test driver's state lives while one is open,
    so the CLI's connections (opened and closed inside a run) share it with the assertions."""
    connection = libvirt.open(URI)
    yield connection
    leftover = [d.name() for d in connection.listAllDomains() if d.name().startswith("hostdev-test-")]
    for name in leftover:
        connection.lookupByName(name).destroy()
    connection.close()
    assert leftover == [], "a test domain was left behind"


def ours(connection):
    return [d.name() for d in connection.listAllDomains() if d.name().startswith("hostdev-test-")]


def vm_test(sim, *args):
    code, out, err = sim.invoke("vm", "test", *args)
    return code, (json.loads(out) if out.startswith("{") else out), err


def bind(sim, *addresses):
    code, _, err = sim.invoke("bind", *addresses)
    assert code == 0, err


def test_bound_device_passes_and_the_domain_is_gone(sim, conn):
    bind(sim, T4)
    code, report, err = vm_test(sim, T4, "-c", URI, "-o", "json")
    assert code == 0, err
    assert list(report) == ["ok", "uri", "domain", "devices", "seconds", "error", "virt_type", "kept", "guest",
                            "phys_bits", "guest_phys_bits"]
    assert report["guest"] is None  # no --boot
    assert report["ok"] is True and report["error"] is None and report["kept"] is False
    assert (report["uri"], report["domain"], report["virt_type"]) == (URI, T4_NAME, "kvm")
    assert report["devices"] == [{
        "type": "pci", "address": T4, "managed": False, "iommu_group": 12, "driver_before": "vfio-pci",
        "driver_running": "vfio-pci", "attached": True, "held_by": [], "guest_pci_id": None, "bars": [],
        "driver_after": "vfio-pci", "returned": True}]
    assert isinstance(report["seconds"], float)
    assert ours(conn) == []
    assert "virt type kvm: /dev/kvm exists" in err


def test_table_output_and_keep(sim, conn):
    bind(sim, T4)
    code, out, err = vm_test(sim, T4, "-c", URI, "--keep")
    assert code == 0, err
    assert f"{T4_NAME} (kvm, {URI}): passed" in out
    assert out.splitlines()[1].split() == ["DEVICE", "TYPE", "BEFORE", "RUNNING", "AFTER", "ATTACHED", "HELD",
                                           "BY", "GUEST", "SEES", "GUEST", "BARS", "RETURNED"]
    assert out.splitlines()[2].split() == [T4, "pci", "vfio-pci", "vfio-pci", "-", "yes", "-", "-", "-", "-"]
    assert f"virsh -c {URI} destroy {T4_NAME}" in err
    assert ours(conn) == [T4_NAME]
    # a second run finds the kept domain and refuses rather than touch it
    code, report, err = vm_test(sim, T4, "-c", URI, "-o", "json")
    assert code == 3 and report["error"]["reason"] == "exists"
    assert ours(conn) == [T4_NAME]
    conn.lookupByName(T4_NAME).destroy()


def test_device_on_a_host_driver_goes_in_managed_and_the_check_catches_it(sim, conn):
    # libvirt's test driver does not rebind devices, so the T4 stays on nvidia while the domain
    # "runs": the sysfs check must fail the test, and the domain must still be destroyed
    code, report, err = vm_test(sim, T4, "-c", URI, "-o", "json")
    assert code == 5
    assert report["ok"] is False
    assert report["error"]["reason"] == "not_on_vfio"
    assert report["error"]["message"] == f"{T4} is on nvidia, not vfio-pci, while the domain runs"
    [dev] = report["devices"]
    assert (dev["managed"], dev["driver_before"], dev["driver_running"], dev["attached"]) == \
        (True, "nvidia", "nvidia", True)
    assert dev["driver_after"] == "nvidia" and dev["returned"] is True
    assert f"libvirt will move {T4} from nvidia to vfio-pci" in err
    assert ours(conn) == []


def test_both_functions_of_a_card_go_together(sim, conn):
    code, xml, err = vm_test(sim, "17:00.0", "--dry-run")
    assert code == 0, err
    assert "function=\"0x0\"" in xml and "function=\"0x1\"" in xml and xml.count("<hostdev ") == 2
    assert "also attaching 0000:17:00.1" in err
    assert ours(conn) == []


def test_dry_run_prints_the_xml_and_json_carries_it(sim, conn):
    code, xml, _ = vm_test(sim, T4, "--dry-run", "--memory", "512", "--virt-type", "qemu")
    assert code == 0
    assert xml.startswith('<domain type="qemu">') and '<memory unit="MiB">512</memory>' in xml
    code, report, _ = vm_test(sim, T4, "--dry-run", "-o", "json")
    assert code == 0
    assert (report["dry_run"], report["domain"], report["virt_type"]) == (True, T4_NAME, "kvm")
    assert report["xml"].startswith('<domain type="kvm">')
    assert ours(conn) == []


def test_no_dev_kvm_means_tcg(sim):
    import os

    os.unlink(sim.host.path("/dev/kvm"))
    assert vmtest.virt_type(sim.host) == "qemu"
    code, xml, _ = vm_test(sim, T4, "--dry-run")
    assert code == 0 and xml.startswith('<domain type="qemu">')


@pytest.mark.parametrize("args, code, text", [
    ((), 2, "give a PCI address or --mdev UUID"),
    ((T4, "--mdev", scenarios.EXISTING_VGPU_UUID), 2, "give a PCI address or --mdev UUID"),
    ((T4, "--initrd", "/x"), 2, "--initrd needs --kernel"),
    (("65:00.9",), 2, "invalid PCI address"),
    (("0000:64:02.0",), 2, "is a PCI bridge"),
    (("0000:01:00.0",), 3, "refusing to take 0000:01:00.0 controls disk nvme0n1"),
    (("0000:31:00.0",), 3, "which carries a route"),
    (("--mdev", "not-a-uuid"), 2, "invalid mdev UUID"),
    (("--mdev", "0b1c2d3e-4f50-4617-8899-aabbccddeeff"), 2, "no mdev 0b1c2d3e-4f50-4617-8899-aabbccddeeff"),
])
def test_refusals_before_libvirt(sim, conn, args, code, text):
    got, _, err = vm_test(sim, *args, "-c", URI)
    assert got == code, err
    assert text in err
    assert ours(conn) == []


def test_group_held_by_another_process_is_refused(sim, conn):
    bind(sim, T4)
    sim.kernel.hold(T4)   # what a running VM does: /dev/vfio/12 open
    try:
        code, _, err = vm_test(sim, T4, "-c", URI)
    finally:
        sim.kernel.release(T4)
    assert code == 3 and "/dev/vfio/12 is held by" in err
    assert ours(conn) == []


@pytest.fixture
def amd(sim_of):
    return sim_of("amd_host")


def test_mdev_flow(amd, conn):
    uuid = scenarios.EXISTING_VGPU_UUID
    code, report, err = vm_test(amd, "--mdev", uuid.upper(), "-c", URI, "-o", "json")
    assert code == 0, err
    assert report["domain"] == f"hostdev-test-{uuid}"
    assert report["devices"] == [{
        "type": "mdev", "address": uuid, "managed": False, "iommu_group": 8, "driver_before": "nvidia-vgpu-vfio",
        "driver_running": "nvidia-vgpu-vfio", "attached": True, "held_by": [], "guest_pci_id": None, "bars": [],
        "driver_after": "nvidia-vgpu-vfio", "returned": True}]
    assert ours(conn) == []


def _plan(sim):
    bind(sim, T4)
    plan = vmtest.plan_pci(sim.host, T4)
    from hostdev import domainxml

    return plan, domainxml.build(plan.name, "kvm", plan.sources)


def test_ctrl_c_while_running_destroys_the_domain(sim, conn, monkeypatch):
    plan, xml = _plan(sim)

    def interrupted(*args):
        assert ours(conn) == [T4_NAME]      # the domain runs when the interrupt comes
        raise KeyboardInterrupt

    monkeypatch.setattr(vmtest, "check_running", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vmtest.run(sim.host, libvirt.open(URI), plan, xml)
    assert ours(conn) == []


def test_ctrl_c_inside_create_destroys_the_domain_by_name(sim, conn, monkeypatch):
    # the interrupt lands after libvirt created the domain but before createXML returned it
    plan, xml = _plan(sim)
    connection = libvirt.open(URI)

    class Interrupting:
        def __getattr__(self, name):
            return getattr(connection, name)

        def createXML(self, text, flags):
            connection.createXML(text, flags)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vmtest.run(sim.host, Interrupting(), plan, xml)
    assert ours(conn) == []


def test_timeout_is_reported_and_the_domain_destroyed(sim, conn, monkeypatch):
    plan, xml = _plan(sim)
    monkeypatch.setattr(libvirt, "VIR_DOMAIN_RUNNING", -1)   # never seen: the wait times out
    outcome = vmtest.run(sim.host, libvirt.open(URI), plan, xml, timeout=0.3)
    assert outcome.ok is False and outcome.error.reason == "timeout"
    assert str(outcome.error) == (f"the test domain {T4_NAME} was not running after 0.3 s "
                                  "(raise --timeout (a TCG domain starts slowly))")
    assert ours(conn) == []


def test_libvirt_refusal_from_the_test_driver_is_explained(sim, conn):
    # a real libvirtError from createXML: the test driver refuses a second domain with the
    # same UUID as its built-in "test" domain
    plan, xml = _plan(sim)
    uuid = conn.lookupByName("test").UUIDString()
    xml = xml.replace("<title>", f"<uuid>{uuid}</uuid><title>")
    outcome = vmtest.run(sim.host, libvirt.open(URI), plan, xml)
    assert outcome.ok is False and outcome.error.reason == "libvirt"
    assert outcome.error.message.startswith("libvirt could not start the test domain: ")
    assert "already" in outcome.error.libvirt_message
    assert ours(conn) == []


# libvirt's and QEMU's own words (libvirt 9.0 qemu_hostdev.c/virpci.c/virhostdev.c/qemu_capabilities.c,
# QEMU 7.2 hw/vfio/common.c), as libvirt wraps QEMU's: "internal error: qemu unexpectedly closed
# the monitor: … -device {…}: <QEMU's message>".
QEMU = 'internal error: qemu unexpectedly closed the monitor: qemu-system-x86_64: -device {"driver":"vfio-pci"}: '


@pytest.mark.parametrize("text, facts, reason, code, fix", [
    # word for word from libvirtd.log of the real-kernel run (test_vm_real.py)
    ('internal error: process exited while connecting to monitor: 2026-11-27T07:25:18.355328Z qemu-system-x86_64: '
     '-device {"driver":"vfio-pci","host":"0000:01:01.0","id":"hostdev0","bus":"pci.3","addr":"0x1"}: '
     "vfio 0000:01:01.0: group 6 is not viable", {}, "group_not_viable", 5, "bind every endpoint of group 6"),
    (QEMU + "vfio 0000:65:00.0: failed to open /dev/vfio/12: Device or resource busy", {}, "busy", 5,
     "can't reserve"),
    ("internal error: vfio-pci 0000:03:00.0: BAR 0: can't reserve [mem 0xd0000000-0xd0ffffff]", {},
     "bar_reserve", 5, "video=efifb:off"),
    ("Requested operation is not valid: PCI device 0000:65:00.0 is in use by driver QEMU, domain win10", {},
     "in_use", 3, "virsh destroy win10"),
    ("unsupported configuration: host doesn't support VFIO PCI passthrough", {"vfio_loaded": False}, "no_vfio",
     4, "modprobe vfio-pci"),
    ("unsupported configuration: host doesn't support VFIO PCI passthrough", {"iommu_enabled": False},
     "no_iommu", 4, "hostdev iommu enable"),
    ("unsupported configuration: host doesn't support passthrough of host PCI devices",
     {"iommu_enabled": False, "vfio_loaded": False}, "no_iommu", 4, "hostdev iommu enable"),
    ("internal error: Failed to load PCI stub module vfio-pci", {}, "no_vfio", 4, "modprobe vfio-pci"),
    (QEMU + "vfio 0000:65:00.0: no iommu_group found: No such file or directory", {}, "no_iommu", 4,
     "hostdev iommu enable"),
    ("invalid argument: could not find capabilities for arch=x86_64 domaintype=kvm ", {}, "no_kvm", 4,
     "--virt-type qemu"),
    ("device not found: mediated device '/sys/bus/mdev/devices/6bd3aab7-0f47-4a1c-8a39-6b2e5f7f0a11' not found",
     {}, "mdev_missing", 2, "hostdev mdev list"),
    (QEMU + "VFIO_MAP_DMA failed: Cannot allocate memory", {}, "memory", 5, "--memory"),
    ("internal error: process exited while connecting to monitor: qemu-system-x86_64: unsupported machine type",
     {}, "libvirt", 5, "hostdev check"),
])
def test_libvirt_errors_are_explained(text, facts, reason, code, fix):
    from hostdev import virt

    libvirt.virResetLastError()       # libvirtError() takes the thread's last error when there is one
    exc = libvirt.libvirtError(text)
    error = virt.explain(virt.error_text(exc), **facts)
    assert (error.reason, error.exit_code) == (reason, code)
    assert fix in error.fix
    assert error.libvirt_message == text
    assert "\n" not in error.message
    assert error.to_dict()["reason"] == reason


def test_group_not_viable_names_the_device_that_blocks_it(tmp_path):
    from hostdev import virt

    info = scenarios.qemu_test_guest(str(tmp_path / "root"))
    host = Host(info.root, kernel=SimKernel(info.root))
    plan = vmtest.plan_pci(host, "0000:01:01.0", force=True)    # e1000 01:03.0 stays on e1000
    assert [d.source.address for d in plan.devices] == ["0000:01:01.0"]
    error = vmtest._with_host_facts(host, plan, virt.explain(QEMU + "vfio 0000:01:01.0: group 6 is not viable"))
    assert error.message == ("IOMMU group 6 is not viable: another device in it is on a host driver: "
                             "0000:01:03.0 (on e1000)")
    assert error.fix.startswith("hostdev bind 0000:01:03.0 ")


def test_busy_with_a_bar_under_the_framebuffer_is_explained(sim):
    from hostdev import virt

    base = f"{sim.root}/sys/bus/pci/devices/{T4}"
    with open(f"{base}/resource", "w") as f:
        f.write("0x00000000d0000000 0x00000000d0ffffff 0x0000000000040200\n")
    with open(f"{sim.root}/proc/iomem", "w") as f:
        f.write("c0000000-dfffffff : PCI Bus 0000:64\n  d0000000-d0ffffff : 0000:65:00.0\n"
                "    d0000000-d02fffff : efifb\n")
    plan = vmtest.TestPlan(T4, T4_NAME, [vmtest.Device(vmtest.HostdevSource("pci", T4), 12, "vfio-pci")], [])
    error = vmtest._with_host_facts(sim.host, plan, virt.explain(
        QEMU + "vfio 0000:65:00.0: error getting device from group 12: Device or resource busy"))
    assert error.reason == "bar_reserve"
    assert error.message == "0000:65:00.0 has a BAR held by the firmware framebuffer efifb"
    assert "video=efifb:off" in error.fix


# A QMP query-pci reply shaped as qapi/pci.json defines it (PciBridgeInfo: bus, and devices
# beside it) for a q35 guest with a vfio-pci device behind a pcie-root-port (fields trimmed to
# those the parser reads; numbers are decimal in QMP)
QUERY_PCI = json.dumps({"return": [{"bus": 0, "devices": [
    {"bus": 0, "slot": 0, "function": 0, "qdev_id": "", "id": {"vendor": 32902, "device": 10688}},
    {"bus": 0, "slot": 1, "function": 0, "qdev_id": "pci.1", "id": {"vendor": 6966, "device": 12},
     "pci_bridge": {"bus": {"number": 1, "secondary": 1, "subordinate": 1}, "devices": [
         {"bus": 1, "slot": 0, "function": 0, "qdev_id": "hostdev0", "id": {"vendor": 4660, "device": 4584}}]}},
]}]})


def test_query_pci_reply_gives_the_ids_the_guest_sees():
    from hostdev import virt

    # 32902 = 0x8086 (no id: left out), 6966:12 = 1b36:000c (QEMU's pcie-root-port), 4660:4584 = 1234:11e8 (edu)
    assert virt.parse_query_pci(QUERY_PCI) == {"pci.1": "1b36:000c", "hostdev0": "1234:11e8"}


def test_a_device_missing_from_the_guest_bus_fails(sim):
    plan, xml = _plan(sim)
    live = xml.replace("</source>", "</source><alias name='hostdev0'/>")
    devices = vmtest.check_running(sim.host, plan, live, {"hostdev1": "10de:1eb8"})
    assert devices[0].guest_pci_id is None
    error = vmtest.running_problem(devices, guest_checked=True)
    assert error.reason == "not_in_guest"
    devices = vmtest.check_running(sim.host, plan, live, {"hostdev0": "10de:1eb8"})
    assert devices[0].guest_pci_id == "10de:1eb8" and vmtest.running_problem(devices, True) is None


# ---------------------------------------------------------------- --boot: a guest that reports what it sees
def _with_kernel_and_busybox(sim, busybox=True, image=b"MZ not a kernel"):
    """The fake root gets a kernel image of its release and this machine's static busybox
    (busybox-static is a test package)."""
    import os
    import shutil

    os.makedirs(sim.host.path("/boot"), exist_ok=True)
    with open(sim.host.path("/boot/vmlinuz-6.1.0-56-amd64"), "wb") as handle:
        handle.write(image)
    if busybox:
        os.makedirs(sim.host.path("/bin"), exist_ok=True)
        shutil.copy("/bin/busybox", sim.host.path("/bin/busybox"))


def test_boot_dry_run_boots_the_hosts_kernel_with_hostdevs_initramfs(sim, conn):
    bind(sim, T4)
    _with_kernel_and_busybox(sim, busybox=False)
    code, report, err = vm_test(sim, T4, "--boot", "--dry-run", "-o", "json")
    assert code == 0, err
    xml = report["xml"]
    assert "<kernel>/boot/vmlinuz-6.1.0-56-amd64</kernel>" in xml
    assert "<initrd>/var/lib/libvirt/boot/hostdev-test-initrd.img</initrd>" in xml
    assert "<cmdline>console=ttyS0 panic=-1 loglevel=3 no_timer_check</cmdline>" in xml
    assert f'<source path="/var/log/libvirt/qemu/{T4_NAME}-console.log" />' in xml


def test_boot_takes_the_uncompressed_pvh_kernel_out_of_the_image(sim, conn):
    import gzip

    from tests.test_guestinit import PVH_NOTE, _bzimage, _elf64_with_notes

    bind(sim, T4)
    vmlinux = _elf64_with_notes(PVH_NOTE)
    _with_kernel_and_busybox(sim, image=_bzimage(gzip.compress(vmlinux)))
    code, report, err = vm_test(sim, T4, "--boot", "--dry-run", "-o", "json")
    assert code == 0, err
    assert "<kernel>/var/lib/libvirt/boot/hostdev-test-vmlinux</kernel>" in report["xml"]
    assert "as it is" not in err
    assert not sim.host.exists("/var/lib/libvirt/boot/hostdev-test-vmlinux")  # a dry run writes nothing
    # a run writes it for QEMU before the domain starts (the test driver boots nothing: it times out)
    code, report, err = vm_test(sim, T4, "--boot", "-c", URI, "--boot-timeout", "1", "-o", "json")
    assert report["error"]["reason"] == "guest_timeout"
    assert sim.host.read_bytes("/var/lib/libvirt/boot/hostdev-test-vmlinux") == vmlinux


def test_boot_of_an_image_without_a_direct_kernel_boots_it_as_it_is(sim, conn):
    bind(sim, T4)
    _with_kernel_and_busybox(sim)
    code, report, err = vm_test(sim, T4, "--boot", "--dry-run", "-o", "json")
    assert code == 0 and "<kernel>/boot/vmlinuz-6.1.0-56-amd64</kernel>" in report["xml"]
    assert "booting /boot/vmlinuz-6.1.0-56-amd64 as it is" in err


def test_boot_without_a_kernel_image_says_so(sim):
    code, _, err = vm_test(sim, T4, "--boot", "--dry-run")
    assert code == 2 and "no kernel image of the running kernel under /boot" in err and "--kernel" in err


def test_boot_and_keep_do_not_go_together(sim):
    code, _, err = vm_test(sim, T4, "--boot", "--keep")
    assert code == 2 and "--keep does not go with a reporting guest" in err


def test_a_guest_that_never_reports_times_out_and_is_destroyed(sim, conn):
    # the test driver's domains run but boot nothing: no report, no power-off
    bind(sim, T4)
    _with_kernel_and_busybox(sim)
    code, report, err = vm_test(sim, T4, "--boot", "-c", URI, "--boot-timeout", "1", "-o", "json")
    assert code != 0 and report["ok"] is False and report["error"]["reason"] == "guest_timeout"
    assert ours(conn) == []
    initrd = sim.host.read_bytes("/var/lib/libvirt/boot/hostdev-test-initrd.img")
    assert initrd[:2] == b"\x1f\x8b"  # hostdev's gzip'd initramfs was written for QEMU


def test_guest_report_decides(sim):
    from hostdev import guestinit

    bind(sim, T4)
    plan = vmtest.plan_pci(sim.host, T4)
    devices = plan.devices
    console = ("[    0.000000] Linux version 6.1.0\r\n@@hostdev-guest-pci 0000:00:00.0 0x8086 0x29c0\r\n"
               "@@hostdev-guest-pci 0000:00:10.0 0x10de 0x1eb8\r\n@@hostdev-guest-done\r\n")
    report = guestinit.parse_report(console)
    assert report.pci == {"0000:00:00.0": "8086:29c0", "0000:00:10.0": "10de:1eb8"} and report.done
    assert vmtest.guest_problem(sim.host, devices, report, "c.log") is None
    missing = guestinit.parse_report(console.replace("0x1eb8", "0x1234"))
    problem = vmtest.guest_problem(sim.host, devices, missing, "c.log")
    assert problem.reason == "not_seen_by_guest" and "10de:1eb8" in problem.message
    cut = guestinit.parse_report(console.split("@@hostdev-guest-done")[0])
    problem = vmtest.guest_problem(sim.host, devices, cut, "c.log")
    assert problem.reason == "no_guest_report" and "no complete PCI report" in problem.message
    silent = vmtest.guest_problem(sim.host, devices, guestinit.parse_report(""), "c.log")
    assert silent.reason == "no_guest_report" and "wrote nothing" in silent.message and "--memory" in silent.fix
