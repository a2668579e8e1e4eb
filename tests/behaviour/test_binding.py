"""Binding behaviour, run against the simulated kernel (every run) and the real kernel in the
QEMU guest (mark realkernel): the same tests, the same assertions.

Devices (the guest's, mirrored by the fake tree): edu 0000:00:10.0 (no driver), e1000e
0000:00:11.0 (e1000e), pci-testdev 0000:00:12.0 (no driver), and one IOMMU group holding the
pcie-pci-bridge 0000:00:13.0, an edu at 0000:01:01.0 and an e1000 at 0000:01:03.0 (e1000).
"""
import pytest

from hostdev import binding, checks, journal, pci
from hostdev.errors import HostEnvironmentError, RefusedError
from hostdev.plan import OperationFailedError

EDU, E1000E, TESTDEV = "0000:00:10.0", "0000:00:11.0", "0000:00:12.0"
BRIDGE, EDU2, E1000 = "0000:00:13.0", "0000:01:01.0", "0000:01:03.0"


def driver(machine, address):
    return machine.host.link_name(f"/sys/bus/pci/devices/{address}/driver")


def override(machine, address):
    return pci.read_device(machine.host, address).driver_override


def bind(machine, *addresses, driver="vfio-pci", force=False):
    devices = binding.resolve_addresses(machine.host, addresses)
    result = binding.plan_bind(machine.host, devices, driver, force)
    result.plan.apply(machine.host)
    return result


def restore(machine, *addresses, every=False):
    result = binding.plan_restore(machine.host, addresses, every)
    result.plan.apply(machine.host)
    return result


def test_driverless_device_binds_to_vfio_and_restores(machine):
    group = pci.read_device(machine.host, EDU).iommu_group
    assert driver(machine, EDU) is None
    result = bind(machine, EDU)
    assert result.changed and [d.address for d in result.devices] == [EDU]
    assert driver(machine, EDU) == "vfio-pci"
    assert override(machine, EDU) == "vfio-pci"
    assert machine.host.exists(f"/dev/vfio/{group}")
    assert journal.Journal.load(machine.host).devices[EDU]["driver"] is None
    restore(machine, EDU)
    assert driver(machine, EDU) is None
    assert override(machine, EDU) is None
    assert not machine.host.exists(f"/dev/vfio/{group}")
    assert EDU not in journal.Journal.load(machine.host).devices


def test_device_on_a_host_driver_moves_to_vfio_and_back(machine):
    assert driver(machine, E1000E) == "e1000e"
    bind(machine, E1000E)
    assert driver(machine, E1000E) == "vfio-pci"
    assert journal.Journal.load(machine.host).devices[E1000E]["driver"] == "e1000e"
    restore(machine, E1000E)
    assert driver(machine, E1000E) == "e1000e"
    assert override(machine, E1000E) is None


def test_second_bind_changes_nothing(machine):
    bind(machine, TESTDEV)
    again = binding.plan_bind(machine.host, binding.resolve_addresses(machine.host, [TESTDEV]))
    assert not again.changed and again.plan.actions == []
    assert again.devices[0].note == "already on vfio-pci"
    restore(machine, every=True)
    assert driver(machine, TESTDEV) is None


def test_partial_group_is_refused_and_nothing_changes(machine):
    with pytest.raises(RefusedError) as info:
        binding.plan_bind(machine.host, binding.resolve_addresses(machine.host, [EDU2]))
    assert E1000 in str(info.value) and "e1000" in str(info.value)
    assert driver(machine, EDU2) is None and driver(machine, E1000) == "e1000"
    assert journal.Journal.load(machine.host).devices == {}


def test_whole_group_binds_bridge_stays_and_restore_all_gives_e1000_back(machine):
    bridge_driver = driver(machine, BRIDGE)
    result = bind(machine, EDU2, E1000)
    assert {d.address for d in result.devices} == {EDU2, E1000}
    assert driver(machine, EDU2) == driver(machine, E1000) == "vfio-pci"
    assert driver(machine, BRIDGE) == bridge_driver
    report = {c.id: c for c in checks.check_groups(pci.list_devices(machine.host))}
    assert report["group-viability"].status == "pass"
    restore(machine, every=True)
    assert driver(machine, E1000) == "e1000" and driver(machine, EDU2) is None


def test_forced_partial_group_is_reported_not_viable_by_check(machine):
    result = bind(machine, EDU2, force=True)
    assert any("will not be viable" in n for n in result.plan.notes)
    report = {c.id: c for c in checks.check_groups(pci.list_devices(machine.host))}
    assert report["group-viability"].status == "fail"
    assert f"{E1000} on e1000" in report["group-viability"].detail
    restore(machine, every=True)


def test_bind_loads_the_vfio_pci_module(machine):
    machine.unload_vfio_pci()
    assert not machine.host.exists("/sys/bus/pci/drivers/vfio-pci")
    bind(machine, EDU)
    assert machine.host.exists("/sys/bus/pci/drivers/vfio-pci")
    assert machine.host.exists("/sys/module/vfio_pci")
    restore(machine, EDU)


def test_binding_to_a_driver_that_does_not_exist_fails_cleanly(machine):
    with pytest.raises(OperationFailedError) as info:
        bind(machine, E1000E, driver="hostdev-no-such-driver")
    assert isinstance(info.value.cause, HostEnvironmentError)
    assert info.value.exit_code == 4
    assert driver(machine, E1000E) == "e1000e" and override(machine, E1000E) is None
    assert journal.Journal.load(machine.host).devices == {}


def test_restore_is_refused_while_the_vfio_group_is_open(machine):
    bind(machine, EDU)
    group = pci.read_device(machine.host, EDU).iommu_group
    with machine.hold_vfio_group(group):
        with pytest.raises(RefusedError, match=f"/dev/vfio/{group} is held by"):
            binding.plan_restore(machine.host, [EDU])
        assert driver(machine, EDU) == "vfio-pci"
    restore(machine, EDU)
    assert driver(machine, EDU) is None


def test_failed_step_rolls_back_to_the_original_driver(machine):
    """The probe lands on vfio-pci, but the verify step expects a driver that never binds."""
    devices = binding.resolve_addresses(machine.host, [E1000E])
    result = binding.plan_bind(machine.host, devices)
    # make the last step (verify) fail: the device must then be given back to e1000e
    verify = result.plan.actions[-1]
    verify.run = binding._verify(E1000E, "pci-stub", None)
    with pytest.raises(OperationFailedError) as info:
        result.plan.apply(machine.host)
    assert info.value.exit_code == 5 and info.value.rolled_back
    assert driver(machine, E1000E) == "e1000e" and override(machine, E1000E) is None
    assert journal.Journal.load(machine.host).devices == {}


@pytest.mark.parametrize("step", range(6))
def test_a_failure_at_any_step_leaves_the_device_exactly_as_it_was(machine, step):
    """load driver, record, driver_override, unbind, probe, verify: make step N fail."""
    from hostdev.errors import SysfsWriteError

    before = pci.read_device(machine.host, E1000E)
    result = binding.plan_bind(machine.host, binding.resolve_addresses(machine.host, [E1000E]))
    assert len(result.plan.actions) == 6

    def fail(host):
        raise SysfsWriteError("/sys/injected", "x", 5)

    result.plan.actions[step].run = fail
    with pytest.raises(OperationFailedError) as info:
        result.plan.apply(machine.host)
    assert info.value.step == result.plan.actions[step].description
    assert len(info.value.rolled_back) == sum(1 for a in result.plan.actions[:step] if a.undo)
    assert pci.read_device(machine.host, E1000E) == before
    assert journal.Journal.load(machine.host).devices == {}


def test_persistent_binding_is_reapplied_after_a_reboot_and_restore_removes_it(machine):
    bind_persist = binding.plan_bind(machine.host, binding.resolve_addresses(machine.host, [E1000E]), persist=True)
    bind_persist.plan.apply(machine.host)
    assert machine.host.read_text(f"{journal.PERSIST_DIR}/pci-{E1000E}") == "vfio-pci\n"
    assert 'ATTR{driver_override}="%c"' in machine.host.read_text(journal.UDEV_RULE)
    assert "ExecStart=/usr/local/bin/hostdev bind --persisted" in machine.host.read_text(journal.UNIT)
    assert machine.host.readlink(journal.UNIT_WANTS) == journal.UNIT
    # a second --persist run changes nothing
    again = binding.plan_bind(machine.host, binding.resolve_addresses(machine.host, [E1000E]), persist=True)
    assert not again.changed and again.plan.actions == []
    # "reboot": the device comes back on its own driver, hostdev's runtime state is gone
    machine.host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", E1000E)
    machine.host.write_attr(f"/sys/bus/pci/devices/{E1000E}/driver_override", "\n")
    machine.host.write_attr("/sys/bus/pci/drivers/e1000e/bind", E1000E)
    machine.host.remove_file(journal.JOURNAL)
    assert driver(machine, E1000E) == "e1000e"
    reapply = binding.plan_persisted(machine.host)
    assert [d.address for d in reapply.devices] == [E1000E]
    reapply.plan.apply(machine.host)
    assert driver(machine, E1000E) == "vfio-pci"
    restore(machine, E1000E)
    assert driver(machine, E1000E) == "e1000e"
    assert journal.persisted(machine.host) == {}
    # the last persistent binding went: hostdev's udev rule and unit (and its enabling link) go too
    # (the full-system VM found them left behind after restore --all: tests/fullsystem)
    assert machine.host.read_text(journal.UDEV_RULE) is None and machine.host.read_text(journal.UNIT) is None
    assert machine.host.readlink(journal.UNIT_WANTS) is None


def test_the_udev_rule_and_unit_stay_while_another_persistent_binding_needs_them(machine):
    both = binding.plan_bind(machine.host, binding.resolve_addresses(machine.host, [E1000E, EDU]), persist=True)
    both.plan.apply(machine.host)
    restore(machine, E1000E)
    assert journal.persisted(machine.host) == {EDU: "vfio-pci"}
    assert machine.host.read_text(journal.UDEV_RULE) == journal.UDEV_RULE_TEXT
    assert machine.host.readlink(journal.UNIT_WANTS) == journal.UNIT
    restore(machine, EDU)
    assert machine.host.read_text(journal.UDEV_RULE) is None and machine.host.readlink(journal.UNIT_WANTS) is None
