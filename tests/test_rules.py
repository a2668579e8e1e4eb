"""The rules layer (hostdev/rules.py): one answer to each VFIO question, whichever command asks.

The table gives IOMMU groups (the function under test, 0000:00:02.0, is on a vfio driver) and the
verdict reasoned out from the kernel's rule: a group is viable when every other function is on no
driver, a vfio driver, pci-stub or pcieport (the drivers that set driver_managed_dma, kernel 5.19+;
a host bridge is a device like any other there). check, bind, kubevirt permitted and vm test must
each give that verdict.
"""

import os

import pytest

from hostdev import binding, checks, inventory, kubevirt, pci, rules, vmtest
from hostdev.errors import RefusedError
from hostdev.host import Host
from hostdev.model import FAIL, PASS
from tests.fakesys import FakeRoot

TARGET = "0000:00:02.0"
INTEL, NVIDIA, MELLANOX = 0x8086, 0x10DE, 0x15B3

# (id, target driver, [(address, vendor, class, driver)] of the other group members, viable?)
GROUPS = [
    ("two-vfio", "vfio-pci", [("0000:00:03.0", NVIDIA, 0x040300, "vfio-pci")], True),
    ("no-driver", "vfio-pci", [("0000:00:03.0", NVIDIA, 0x040300, None)], True),
    ("pci-stub", "vfio-pci", [("0000:00:03.0", NVIDIA, 0x040300, "pci-stub")], True),
    ("vfio-none-stub", "vfio-pci", [("0000:00:03.0", NVIDIA, 0x040300, None),
                                    ("0000:00:04.0", INTEL, 0x0C0330, "pci-stub")], True),
    ("host-driver", "vfio-pci", [("0000:00:03.0", INTEL, 0x020000, "e1000e")], False),
    ("root-port-pcieport", "vfio-pci", [("0000:00:01.0", INTEL, 0x060400, "pcieport")], True),
    ("vfio-variant", "nvgrace_gpu_vfio_pci", [("0000:00:03.0", NVIDIA, 0x030200, "vfio-pci")], True),
    ("host-bridge-no-driver", "vfio-pci", [("0000:00:00.0", INTEL, 0x060000, None)], True),
    # an EDAC driver on the host bridge owns its DMA like any host driver: not viable
    ("host-bridge-edac", "vfio-pci", [("0000:00:00.0", INTEL, 0x060000, "ie31200_edac")], False),
    ("host-driver-and-stub", "vfio-pci", [("0000:00:03.0", INTEL, 0x0C0330, "xhci_hcd"),
                                          ("0000:00:04.0", INTEL, 0x0C0330, "pci-stub")], False),
    ("variant-and-audio", "mlx5_vfio_pci", [("0000:00:03.0", NVIDIA, 0x040300, "snd_hda_intel")], False),
]


def _host(tmp_path, target_driver, others) -> Host:
    fr = FakeRoot(str(tmp_path / "root"))
    fr.set_iommu("intel")
    fr.add_pci(TARGET, MELLANOX if "mlx5" in target_driver else NVIDIA, 0x1EB8, 0x030200, iommu_group=0,
               driver=target_driver)
    for address, vendor, klass, driver in others:
        fr.add_pci(address, vendor, 0x1000 + int(address[-3], 16), klass, iommu_group=0, driver=driver)
    return Host(fr.root)


def _check_verdict(host: Host) -> bool:
    found = [c for c in checks.check_groups(pci.list_devices(host)) if c.id == "group-viability"]
    assert len(found) == 1 and found[0].status in (PASS, FAIL)
    return found[0].status == PASS


def _bind_verdict(host: Host) -> bool:
    try:
        binding.plan_bind(host, [pci.get_device(host, TARGET)], driver="vfio-pci")
    except RefusedError as exc:
        assert "would not be viable" in exc.message
        return False
    return True


def _kubevirt_verdict(host: Host) -> bool:
    inv = inventory.collect(host, None, {}, name="node-1")
    result = kubevirt.build([inv], kubevirt.Selection(addresses=(TARGET,)), kubevirt.Options())
    return not any("not viable" in note for note in result.notes)


def _vmtest_verdict(host: Host) -> bool:
    try:
        vmtest.plan_pci(host, TARGET)
    except RefusedError as exc:
        assert "would not be viable" in exc.message
        return False
    return True


@pytest.mark.parametrize("case", GROUPS, ids=[g[0] for g in GROUPS])
def test_every_command_gives_the_same_group_verdict(tmp_path, case):
    _, target_driver, others, expected = case
    host = _host(tmp_path, target_driver, others)
    verdicts = {"check": _check_verdict(host), "bind": _bind_verdict(host),
                "kubevirt": _kubevirt_verdict(host), "vm test": _vmtest_verdict(host)}
    assert verdicts == dict.fromkeys(verdicts, expected)


def test_vfio_drivers():
    assert rules.is_vfio_driver("vfio-pci") and rules.is_vfio_driver("nvgrace_gpu_vfio_pci")
    assert rules.is_vfio_driver("mlx5_vfio_pci")
    assert not rules.is_vfio_driver(None) and not rules.is_vfio_driver("pci-stub")
    assert not rules.is_vfio_driver("nvidia")


@pytest.mark.parametrize("class_id, kind", [
    ("060000", "bridge"),   # host bridge
    ("060100", "bridge"),   # ISA (LPC) bridge
    ("060400", "bridge"),   # PCI bridge, root port, switch port
    ("060401", "bridge"),   # subtractive-decode PCI bridge
    ("060700", "bridge"),   # CardBus bridge
    ("068000", None),       # "other bridge": NVSwitch, given to a VM by address
    ("030200", None),       # a 3D controller
])
def test_which_functions_may_be_bound(class_id, kind):
    dev = rules.Function("0000:00:01.0", None, class_id, iommu_group=3)
    why = rules.unbindable(dev, iommu_active=True)
    assert (why.kind if why else None) == kind


def test_a_function_without_a_group_is_unbindable_only_on_an_iommu_host():
    dev = rules.Function("0000:00:05.0", "e1000e", "020000", iommu_group=None)
    assert rules.unbindable(dev, iommu_active=True) == (
        "no_iommu_group", "0000:00:05.0 has no IOMMU group although the IOMMU is on: the IOMMU does not "
                          "translate it, so vfio cannot take it")
    assert rules.unbindable(dev, iommu_active=False) is None


def test_selectors_never_select_a_bridge():
    root_port = rules.Function("0000:00:01.0", "pcieport", "060400", "8086", "347a")
    nvswitch = rules.Function("0000:05:00.0", None, "068000", "10de", "22a3")
    nic = rules.Function("0000:31:00.0", "ice", "020000", "8086", "1592")
    assert [d.address for d in (root_port, nic) if rules.Selector(vendor="8086").selects(d)] == [nic.address]
    assert not rules.Selector(device_ids=("8086:347a",)).selects(root_port)
    assert not rules.Selector(class_prefixes=("06",)).selects(nvswitch)
    assert not rules.Selector().selects(nic)   # an empty selector selects nothing


def test_bind_by_vendor_selects_no_bridge_on_the_intel_host(sim):
    # the Intel host: host bridge 00:00.0 and root ports 00:01.0, 00:03.0, 00:1c.0 … are Intel too
    chosen = binding.resolve_addresses(sim.host, [], vendor="8086")
    assert {d.address for d in chosen} == {sim.nvme_root, sim.nic_pf, sim.nic_vf0, sim.nic_vf1, sim.qat}


@pytest.mark.parametrize("name", ["host_bridge", "root_port", "t4_root_port"])
def test_binding_a_bridge_by_address_is_exit_2_before_any_write(sim, name):
    code, out, err = sim.invoke("bind", getattr(sim, name))
    assert code == 2, err
    assert "bridge" in err and getattr(sim, name) in err
    assert sim.kernel.writes == []


def test_bind_by_class_of_bridges_selects_nothing(sim):
    code, _, err = sim.invoke("bind", "--class", "0604", "--dry-run")
    assert code == 2 and "no device matches" in err and "bridges are never selected" in err


def test_a_function_without_a_group_on_an_iommu_host_is_refused_before_any_write(sim):
    # the T4 without its iommu_group link: what a device the IOMMU does not cover looks like
    link = f"{sim.root}/sys/bus/pci/devices/{sim.t4}/iommu_group"
    os.unlink(os.path.realpath(f"{sim.root}/sys/bus/pci/devices/{sim.t4}") + "/iommu_group")
    assert not os.path.lexists(link)
    code, _, err = sim.invoke("bind", sim.t4)
    assert code == 4, err
    assert "no IOMMU group" in err
    assert sim.kernel.writes == []


# ---- tests added for the survivors of the mutation run over rules.py (docs/testing.md)
@pytest.mark.parametrize("class_id, words", [
    ("060000", "host bridge"),
    ("060100", "ISA bridge"),
    ("060400", "PCI bridge or PCIe port"),
    ("060700", "CardBus bridge"),
    ("060900", "PCI bridge"),
])
def test_the_refusal_of_a_bridge_names_its_kind_and_why(class_id, words):
    dev = rules.Function("0000:00:01.0", "pcieport", class_id, iommu_group=3)
    assert rules.unbindable(dev, iommu_active=True).message == (
        f"0000:00:01.0 is a {words} (class {class_id}): bridges carry the host's own buses and are "
        "never assigned to VMs")


def test_a_device_id_selector_selects_exactly_the_functions_with_that_id():
    t4 = rules.Function("0000:65:00.0", "nvidia", "030200", "10de", "1eb8")
    a10 = rules.Function("0000:17:00.0", "nvidia", "030000", "10de", "2236")
    selector = rules.Selector(device_ids=("10de:1eb8",))
    assert [d.address for d in (t4, a10) if selector.selects(d)] == [t4.address]


def _driver(root: str, address: str):
    link = f"{root}/sys/bus/pci/devices/{address}/driver"
    return os.path.basename(os.readlink(link)) if os.path.lexists(link) else None


def test_binding_one_function_of_a_card_moves_its_sibling_and_leaves_the_root_port(sim):
    # the A10 (17:00.0, nvidia) and its HDMI audio (17:00.1, snd_hda_intel) share IOMMU group and
    # slot; its root port 16:02.0 has a group of its own (tests/fakesys/scenarios.py)
    code, _, err = sim.invoke("bind", sim.a10)
    assert code == 0, err
    assert (_driver(sim.root, sim.a10), _driver(sim.root, sim.a10_audio)) == ("vfio-pci", "vfio-pci")
    assert _driver(sim.root, "0000:16:02.0") == "pcieport"


def test_viable_is_the_absence_of_blockers():
    e1000e = rules.Function("0000:00:03.0", "e1000e", "020000")
    port = rules.Function("0000:00:01.0", "pcieport", "060400")
    gpu = rules.Function("0000:00:02.0", "vfio-pci", "030200")
    assert not rules.viable([gpu, e1000e, port])
    assert rules.viable([gpu, e1000e, port], assigned=["0000:00:03.0"])
    assert rules.viable([gpu, port])
