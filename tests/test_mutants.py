"""Tests for mutants that survived bench/mutation.py (issue 19; docs/testing.md, "Mutation
testing"). Each drives hostdev on a fake root with the simulated kernel (tests/fakesys, the
Intel T4 host) and asserts what the kernel, the files on disk or the JSON contract show
afterwards. The mutants each test kills are named in its docstring; each was applied by hand to
a scratch copy and the test seen failing."""

from __future__ import annotations

import json
import os

import pytest

from hostdev import binding
from hostdev.errors import RefusedError
from hostdev.host import Host

PERSIST_DIR = "etc/hostdev/bindings.d"


def driver_of(sim, address):
    return Host(sim.root).link_name(f"/sys/bus/pci/devices/{address}/driver")


def _persist(sim, address: str, driver: str = "vfio-pci") -> None:
    """A persistent binding as `bind --persist` leaves it: one file per device, the driver's name."""
    os.makedirs(os.path.join(sim.root, PERSIST_DIR), exist_ok=True)
    with open(os.path.join(sim.root, PERSIST_DIR, f"pci-{address}"), "w") as handle:
        handle.write(driver + "\n")


# ---------------------------------------------------------------- binding.plan_persisted
def test_the_boot_time_apply_skips_a_device_that_is_gone_and_binds_the_rest(sim):
    """Kills x_plan_persisted__mutmut_13 (the note about the missing device dropped) and _14
    (``continue`` → ``break``: every persistent binding after a missing device is skipped).

    0000:00:00.1 does not exist on this host (a card taken out since) and sorts before the T4."""
    _persist(sim, "0000:00:00.1")
    _persist(sim, sim.t4)
    code, out, err = sim.invoke("bind", "--persisted", "-o", "json")
    assert code == 0, err
    assert driver_of(sim, sim.t4) == "vfio-pci"
    assert "0000:00:00.1 (/etc/hostdev/bindings.d/pci-0000:00:00.1) is not on this host" in json.loads(out)["notes"]


def test_the_boot_time_apply_takes_an_interlocked_device_only_with_force(sim):
    """Kills x_plan_persisted__mutmut_24, _28 (``--persisted --force`` no longer passing force
    on: the binding the administrator forced once could never be re-applied at boot)."""
    nic = sim.addresses["nic_pf"]  # the E810 PF carrying the default route (eth0)
    _persist(sim, nic)
    code, _, err = sim.invoke("bind", "--persisted")
    assert code != 0 and "refusing to take" in err
    assert driver_of(sim, nic) == "ice"
    code, _, err = sim.invoke("bind", "--persisted", "--force")
    assert code == 0, err
    assert driver_of(sim, nic) == "vfio-pci"


# ---------------------------------------------------------------- binding.plan_unbind
def test_unbind_refuses_an_interlocked_device_unless_forced(sim):
    """Kills x_plan_unbind__mutmut_1 (``force`` defaulting to True: every caller that does not
    say would take the NIC carrying the default route)."""
    nic = sim.addresses["nic_pf"]
    devices = binding.resolve_addresses(sim.host, [nic])
    with pytest.raises(RefusedError):
        binding.plan_unbind(sim.host, devices)
    assert driver_of(sim, nic) == "ice"
    binding.plan_unbind(sim.host, devices, force=True).plan.apply(sim.host)
    assert driver_of(sim, nic) is None


def test_unbind_of_a_device_without_a_driver_reports_it_unchanged(sim):
    """Kills x_plan_unbind__mutmut_8–12: the JSON entry (docs/json.md) of a device that has no
    driver — its address, action "none", its IOMMU group and the note "no driver"."""
    assert sim.invoke("unbind", sim.qat)[0] == 0
    writes = len(sim.kernel.writes)
    code, out, err = sim.invoke("unbind", sim.qat, "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["devices"] == [{"address": sim.qat, "from_driver": None, "to_driver": None, "action": "none",
                                "group": sim.groups["qat"], "changed": False, "note": "no driver"}]
    assert data["changed"] is False and len(sim.kernel.writes) == writes


def test_unbind_goes_on_past_a_device_that_has_no_driver(sim):
    """Kills x_plan_unbind__mutmut_23 (``continue`` → ``break``: the devices after a driverless
    one stay on their drivers). The T4 (0000:65:00.0) sorts before the QAT (0000:6b:00.0)."""
    assert sim.invoke("unbind", sim.t4)[0] == 0
    assert driver_of(sim, sim.t4) is None and driver_of(sim, sim.qat) == "4xxx"
    code, _, err = sim.invoke("unbind", sim.t4, sim.qat)
    assert code == 0, err
    assert driver_of(sim, sim.qat) is None
