"""A bind that fails at any step, or is interrupted, leaves the device as it was or restorable
by ``restore --all`` (issue #14), on the simulated kernel and on the real one in the QEMU guest.

Faults are injected at the Host: the n-th change (sysfs write, file write, link, removal)
fails as the Host reports a failed write (SysfsWriteError / ConfigWriteError), or a SIGTERM
arrives just before it. Devices: see test_binding.py (e1000e 0000:00:11.0 on its host driver).
"""
import os
import signal

import pytest

from hostdev import binding, journal
from hostdev.errors import ConfigWriteError, HostdevError, SysfsWriteError
from hostdev.plan import OperationFailedError, signals_roll_back

E1000E = "0000:00:11.0"
CHANGES = ("write_attr", "write_file", "symlink", "remove_file")


def _driver(host, address):
    return host.link_name(f"/sys/bus/pci/devices/{address}/driver")


def _override(host, address):
    value = host.read_attr(f"/sys/bus/pci/devices/{address}/driver_override")
    return None if value in (None, "(null)", "") else value


class Faults:
    """Counts the Host's changes; makes the ``at``-th one fail (or signals before it)."""

    def __init__(self, host, at=None, how="error"):
        self.host, self.at, self.how, self.count = host, at, how, 0
        self.real = {name: getattr(host, name) for name in CHANGES}
        for name in CHANGES:
            setattr(host, name, self._wrap(name))

    def _wrap(self, name):
        def call(*args, **kwargs):
            self.count += 1
            if self.count == self.at:
                if self.how == "signal":
                    os.kill(os.getpid(), signal.SIGTERM)
                elif name == "write_attr":
                    raise SysfsWriteError(args[0], args[1], 5)
                else:
                    raise ConfigWriteError(args[-1] if name == "symlink" else args[0], "Input/output error")
            return self.real[name](*args, **kwargs)
        return call

    def remove(self):
        for name in CHANGES:
            setattr(self.host, name, self.real[name])


def _bind(host):
    with host.lock(), signals_roll_back():
        devices = binding.resolve_addresses(host, [E1000E])
        binding.plan_bind(host, devices, "vfio-pci", persist=True).plan.apply(host)


def _restore_all(host):
    with host.lock():
        binding.plan_restore(host, [], every=True).plan.apply(host)


def _unbind(host):
    with host.lock():
        binding.plan_unbind(host, binding.resolve_addresses(host, [E1000E])).plan.apply(host)


def _steps(machine):
    """How many changes a bind --persist of the unbound e1000e makes (then undone)."""
    _unbind(machine.host)
    faults = Faults(machine.host)
    _bind(machine.host)
    faults.remove()
    assert _driver(machine.host, E1000E) == "vfio-pci"
    _restore_all(machine.host)
    assert _driver(machine.host, E1000E) == "e1000e"
    return faults.count


@pytest.mark.parametrize("how", ["error", "signal"])
def test_a_bind_failing_at_any_change_is_restorable(machine, how):
    host = machine.host
    total = _steps(machine)
    # journal, override, probe, persistence file, udev rule, unit, the unit's link
    assert total == 7
    for at in range(1, total + 1):
        # first an unbind that succeeds: the journal's original (e1000e) must survive the bind's failure
        _unbind(host)
        faults = Faults(host, at, how)
        with pytest.raises(OperationFailedError) as info:
            _bind(host)
        faults.remove()
        if how == "signal":
            assert info.value.exit_code == 130 and "interrupted by SIGTERM" in str(info.value)
        assert "rolled back" in str(info.value) or "nothing to roll back" in str(info.value)
        assert journal.Journal.load(host).devices[E1000E]["driver"] == "e1000e", at
        try:
            _restore_all(host)
        except HostdevError as exc:  # pragma: no cover - the assertion below says which step
            pytest.fail(f"restore --all after a fault at change {at}: {exc}")
        assert (_driver(host, E1000E), _override(host, E1000E)) == ("e1000e", None), at
        assert journal.Journal.load(host).devices == {}, at
