"""Per-device readiness (hostdev/readiness.py, ``hostdev check ADDR``) on simulated trees.

Shapes and where they come from:
- The ``resource`` format (``0x%016x 0x%016x 0x%016x`` per line, 64-bit memory flags 0x140204)
  is this development VM's /sys/bus/pci/devices/0000:00:01.0/resource (read only, Nov 2026).
- H200: no recording exists in the repository. BAR2 is the issue's (#20) recorded value, 256 GiB
  64-bit prefetchable at 0x100000000000-0x103fffffffff; BAR0 (16 MiB 32-bit) and BAR4 (32 MiB
  64-bit prefetchable) are the sizes of the A30 in Harvester issue 5619's lspci, the same GPU
  family's layout. Flags are the kernel's for those BAR kinds (include/linux/ioport.h).
- The T4 with nouveau and the A10 are intel_host_t4 (tests/fakesys/scenarios.py).
- The no-FLR device behind a bridge is the QEMU test guest's layout (edu + e1000 behind a
  pcie-pci-bridge, scenarios.qemu_test_guest) with reset_method "bus", what a conventional PCI
  function without FLR/PM reset shows.
"""
import json
import subprocess
import sys

import pytest

from hostdev import readiness
from hostdev.host import Host
from hostdev.model import FAIL, PASS, SKIP, WARN
from tests.fakesys import scenarios
from tests.fakesys.builder import FakeRoot

NVIDIA = 0x10DE
H200 = "0000:c1:00.0"
H200_RESOURCE = "\n".join([
    "0x00000000d2000000 0x00000000d2ffffff 0x0000000000040200",   # BAR0 16 MiB 32-bit
    "0x0000000000000000 0x0000000000000000 0x0000000000000000",
    "0x0000100000000000 0x0000103fffffffff 0x000000000014220c",   # BAR2 256 GiB 64-bit pref (issue #20)
    "0x0000000000000000 0x0000000000000000 0x0000000000000000",
    "0x0000104000000000 0x0000104001ffffff 0x000000000014220c",   # BAR4 32 MiB 64-bit pref
    "0x0000000000000000 0x0000000000000000 0x0000000000000000",
    "0x00000000d3000000 0x00000000d307ffff 0x0000000000046200",   # ROM 512 KiB
]) + "\n"


@pytest.fixture
def host_t4(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    fr = FakeRoot.attach(info.root)
    # H200 behind its own root port on NUMA node 1, on vfio-pci
    fr.add_pci("0000:c0:01.0", 0x8086, 0x347A, 0x060400, numa_node=1, iommu_group=60, pcie_type="root_port",
               secondary_bus=0xC1, driver="pcieport", reset_method=None)
    fr.add_driver("vfio-pci", module="vfio_pci")
    fr.add_pci(H200, NVIDIA, 0x2335, 0x030200, subsys=(NVIDIA, 0x18BE), parent="0000:c0:01.0", numa_node=1,
               iommu_group=61, reset_method="flr bus")
    fr.attr(f"{fr.device_path(H200)}/resource", H200_RESOURCE)
    fr.bind(H200, "vfio-pci")
    # the T4 on nouveau instead of nvidia
    fr.add_driver("nouveau", module="nouveau")
    fr.unbind(info.t4)
    fr.bind(info.t4, "nouveau")
    # a conventional PCI card without FLR behind a PCIe-to-PCI bridge, sharing it with a NIC
    fr.add_pci("0000:d0:00.0", 0x1B36, 0x000E, 0x060400, iommu_group=70, pcie_type="pcie_to_pci",
               secondary_bus=0xD1, reset_method=None)
    fr.add_pci("0000:d1:01.0", 0x1234, 0x11E8, 0x00FF00, parent="0000:d0:00.0", iommu_group=70,
               pcie_type=None, reset_method="bus")
    fr.add_pci("0000:d1:03.0", 0x8086, 0x100E, 0x020000, parent="0000:d0:00.0", iommu_group=70,
               pcie_type=None, reset_method="bus", driver="e1000")
    for node in (0, 1):
        fr.mkdir(f"/sys/devices/system/node/node{node}")
    return info


@pytest.fixture
def run_cli():
    """hostdev in a child process, as users run it."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True)
    return run


def rows(root, address, stack="kubevirt", count=1):
    host = Host(root)
    from hostdev import pci

    [result] = readiness.assess(host, [pci.get_device(host, address)], stack, count)
    return {c.id: c for c in result.checks}


def test_resource_parse_real_format():
    # this dev VM's virtio device: 512 KiB 64-bit non-prefetchable BAR0 at 0x4000000000
    [bar] = readiness.parse_resource("0x0000004000000000 0x000000400007ffff 0x0000000000140204\n"
                                     "0x0000000000000000 0x0000000000000000 0x0000000000000000\n")
    assert (bar.index, bar.size, bar.is_64, bar.prefetchable, bar.is_io) == (0, 512 << 10, True, False, False)
    assert bar.assigned


def test_h200_large_bar_warns_with_the_kubevirt_fix(host_t4):
    row = rows(host_t4.root, H200)["bar-mmio"]
    assert row.status == WARN
    # 256 GiB + 32 MiB of 64-bit BARs: over OVMF's fixed 32 GiB and the 128 GiB dynamic window of a
    # 40-bit guest; 2^39 > 256 GiB+32 MiB > 2^38, so 39 bits + 3 (the 1/8 window) = 42
    assert "BAR2 256 GiB 64-bit prefetchable" in row.summary and "42 guest physical address bits" in row.summary
    assert "0x100000000000-0x103fffffffff" in row.detail and "flags 0x14220c" in row.detail
    assert "cpu.model: host-passthrough" in row.fix and "X-PciMmio64Mb,string=524288" in row.fix


def test_h200_libvirt_fix_and_two_per_vm(host_t4):
    row = rows(host_t4.root, H200, "libvirt", count=2)["bar-mmio"]
    # two H200s: 512 GiB + 64 MiB → 2^40 → 43 bits
    assert "for 2 such devices" in row.summary and "43 guest physical address bits" in row.summary
    assert "<maxphysaddr mode='emulate' bits='43'/>" in row.fix and "hostdev vm test ADDR --phys-bits 43" in row.fix


def test_host_without_enough_address_bits_fails(host_t4):
    fr = FakeRoot.attach(host_t4.root)
    fr.write("/proc/cpuinfo", (fr.read("/proc/cpuinfo") or "") + "address sizes\t: 39 bits physical, 48 bits virtual\n")
    row = rows(host_t4.root, H200)["bar-mmio"]
    assert row.status == FAIL and "39 physical address bits" in row.detail


def test_small_bars_pass(host_t4):
    fr = FakeRoot.attach(host_t4.root)
    # an A30-sized 32 GiB BAR + 32 MiB does NOT fit OVMF's 32 GiB (Harvester 5619); 16 GiB does
    fr.attr(f"{fr.device_path(host_t4.t4)}/resource",
            "0x00000000d0000000 0x00000000d0ffffff 0x0000000000040200\n"
            "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            "0x0000380000000000 0x00003803ffffffff 0x000000000014220c\n")
    assert rows(host_t4.root, host_t4.t4)["bar-mmio"].status == PASS
    fr.attr(f"{fr.device_path(host_t4.t4)}/resource",
            "0x00000000d0000000 0x00000000d0ffffff 0x0000000000040200\n"
            "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            "0x000038a800000000 0x000038afffffffff 0x000000000014220c\n"
            "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            "0x000038b810000000 0x000038b811ffffff 0x000000000014220c\n")
    assert rows(host_t4.root, host_t4.t4)["bar-mmio"].status == WARN


def test_gpu_with_nouveau(host_t4):
    r = rows(host_t4.root, host_t4.t4)
    assert r["boot-driver"].status == WARN and "nouveau takes it at boot" in r["boot-driver"].summary
    assert r["boot-driver"].fix.startswith(f"hostdev bind {host_t4.t4} --persist")
    assert r["reset"].status == PASS and "flr" in r["reset"].summary
    # intel_host_t4 puts the T4 on NUMA node 1 of a two-node host
    assert r["numa"].status == PASS and "NUMA node 1" in r["numa"].summary
    assert r["iommu-group"].status == PASS


def test_vfio_without_persistence_warns_and_with_passes(host_t4):
    assert rows(host_t4.root, H200)["boot-driver"].status == WARN
    FakeRoot.attach(host_t4.root).write(f"/etc/hostdev/bindings.d/pci-{H200}", "vfio-pci\n")
    assert rows(host_t4.root, H200)["boot-driver"].status == PASS


def test_no_flr_behind_a_shared_bridge_fails(host_t4):
    r = rows(host_t4.root, "0000:d1:01.0")
    assert r["reset"].status == FAIL
    assert "also resets 0000:d1:03.0" in r["reset"].summary and "reset_method: 'bus'" in r["reset"].detail
    # and the group is the bridge's: the e1000 shares it (no ACS below a PCIe-to-PCI bridge)
    assert r["iommu-group"].status == WARN and "also holds 0000:d1:03.0" in r["iommu-group"].summary
    assert "at 0000:d0:00.0" in r["iommu-group"].summary


def test_empty_reset_method_fails(host_t4):
    FakeRoot.attach(host_t4.root).attr(f"/sys/bus/pci/devices/{host_t4.t4}/reset_method", "")
    assert rows(host_t4.root, host_t4.t4)["reset"].status == FAIL


def test_power_states(host_t4):
    fr = FakeRoot.attach(host_t4.root)
    fr.attr(f"/sys/bus/pci/devices/{H200}/power_state", "D3cold")
    assert rows(host_t4.root, H200)["power-state"].status == WARN
    fr.attr(f"/sys/bus/pci/devices/{H200}/power_state", "error")
    assert rows(host_t4.root, H200)["power-state"].status == FAIL


def test_option_rom_and_a10_group(host_t4):
    assert "512 KiB option ROM" in rows(host_t4.root, H200)["option-rom"].summary
    # the A10's audio function shares its group: same card, so the group is still its own
    assert rows(host_t4.root, host_t4.a10)["iommu-group"].status == PASS


def test_framebuffer_holding_a_bar_fails(host_t4):
    FakeRoot.attach(host_t4.root).write("/proc/iomem", "d2000000-d2ffffff : BOOTFB\n")
    row = rows(host_t4.root, H200)["boot-driver"]
    assert row.status == FAIL and "BOOTFB" in row.summary


def test_cli_check_addresses_json_and_exit(host_t4, run_cli):
    result = run_cli("--root", host_t4.root, "check", H200, "0000:d1:01.0", "-o", "json")
    data = json.loads(result.stdout)
    assert [d["address"] for d in data["devices"]] == [H200, "0000:d1:01.0"]
    assert data["devices"][0]["ready"] is True and data["devices"][1]["ready"] is False
    assert data["ready"] is False and result.returncode == 1
    statuses = {c["id"]: c["status"] for c in data["devices"][0]["checks"]}
    assert statuses["bar-mmio"] == WARN and statuses["reset"] == PASS
    assert run_cli("--root", host_t4.root, "check", H200, "--stack", "nope").returncode == 2


def test_host_check_summarises_vfio_devices(host_t4, run_cli):
    data = json.loads(run_cli("--root", host_t4.root, "check", "-o", "json").stdout)
    row = next(c for c in data["checks"] if c["id"] == "vfio-readiness")
    assert row["status"] == WARN and H200 in row["detail"] and "bar-mmio" in row["detail"]
    assert [d["address"] for d in data["devices"]] == [H200]


def test_devices_show_has_readiness(host_t4, run_cli):
    data = json.loads(run_cli("--root", host_t4.root, "devices", "show", H200, "-o", "json").stdout)
    assert data["readiness"]["address"] == H200
    assert {c["id"] for c in data["readiness"]["checks"]} == {
        "iommu-group", "boot-driver", "reset", "bar-mmio", "power-state", "numa", "option-rom"}


def test_skip_when_kernel_hides_reset_method(host_t4):
    FakeRoot.attach(host_t4.root).unlink(f"{FakeRoot.attach(host_t4.root).device_path(H200)}/reset_method")
    assert rows(host_t4.root, H200)["reset"].status == SKIP


def _big_t4(sim):
    """The T4 given an A30-sized layout (Harvester 5619's lspci: BAR1 32 GiB 64-bit prefetchable,
    BAR3 32 MiB) and bound to vfio-pci, with the golden pci.ids as the host's."""
    import pathlib
    fr = FakeRoot.attach(sim.info.root)
    fr.attr(f"{fr.device_path(sim.info.t4)}/resource",
            "0x00000000ab000000 0x00000000abffffff 0x0000000000040200\n"
            "0x000038a800000000 0x000038afffffffff 0x000000000014220c\n"
            "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            "0x000038b810000000 0x000038b811ffffff 0x000000000014220c\n")
    golden_ids = pathlib.Path(__file__).resolve().parent / "golden" / "kubevirt" / "pci.ids"
    fr.write("/usr/share/misc/pci.ids", golden_ids.read_text(), 0o644)
    code, _, err = sim.invoke("bind", sim.info.t4)
    assert code == 0, err


def test_kubevirt_permitted_and_vmi_warn_about_the_mmio_window(sim_of):
    from tests.test_kubevirt_cli import PCI_IDS

    class Sim:
        info = sim_of("intel_host_t4")

        def invoke(self, *args):
            return self.info.invoke(*args)

    sim = Sim()
    _big_t4(sim)
    code, _, err = sim.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS)
    assert code == 0, err
    # 32 GiB + 32 MiB of 64-bit BARs: over OVMF's fixed 32 GiB window; 2^36 → 36 + 3 = 39 < 40 bits
    assert "warning: 10DE:1EB8 (0000:65:00.0): BAR1 32 GiB 64-bit prefetchable" in err
    assert "cpu.model: host-passthrough" in err
    code, _, err = sim.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_TESLA_T4",
                              "--gpu", "nvidia.com/TU104GL_TESLA_T4")
    assert code == 0, err
    assert "for 2 such devices" in err and "10DE:1EB8" in err
    # a resource this host does not permit: nothing to say
    code, _, err = sim.invoke("kubevirt", "vmi", "--gpu", "example.com/other")
    assert code == 0 and "MMIO" not in err and "10DE:1EB8" not in err
