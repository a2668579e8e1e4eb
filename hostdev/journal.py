"""What hostdev changed, kept on disk: the journal of original drivers and the persistence files.

The journal (/var/lib/hostdev/bindings.json under the root) records, per device hostdev re-bound,
the driver and driver_override it had before, so that ``restore`` gives each device back.
The persistence files re-apply a binding at boot (``hostdev bind --persist``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .errors import HostdevError
from .host import Host
from .model import PciAddress
from .plan import Plan

JOURNAL = "/var/lib/hostdev/bindings.json"
# Persistence, the way driverctl does it: one file per device naming its driver, re-applied at
# boot by a udev rule (driver_override set when the device appears, so the first probe already
# goes to vfio-pci) and a oneshot unit (for devices a driver claimed before udev ran).
PERSIST_DIR = "/etc/hostdev/bindings.d"
UDEV_RULE = "/etc/udev/rules.d/60-hostdev.rules"
UNIT = "/etc/systemd/system/hostdev-bindings.service"
UNIT_WANTS = "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"
UDEV_RULE_TEXT = f"""# Written by hostdev (hostdev bind --persist): set driver_override for the devices listed in
# {PERSIST_DIR}/pci-ADDRESS when they appear, so that their first probe goes to that driver.
ACTION=="add", SUBSYSTEM=="pci", TEST=="{PERSIST_DIR}/pci-$kernel", \\
  PROGRAM="/bin/cat {PERSIST_DIR}/pci-$kernel", ATTR{{driver_override}}="%c", \\
  RUN+="/sbin/modprobe -b -q %c"
"""
UNIT_TEXT = f"""# Written by hostdev (hostdev bind --persist): bind the devices listed in {PERSIST_DIR}
# that a driver claimed before udev could set their driver_override.
[Unit]
Description=hostdev: re-apply persistent PCI driver bindings
After=systemd-udev-settle.service systemd-modules-load.service
Before=libvirtd.service virtqemud.service kubelet.service
ConditionDirectoryNotEmpty={PERSIST_DIR}

[Service]
Type=oneshot
ExecStart=/usr/local/bin/hostdev bind --persisted
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""


def persisted(host: Host) -> Dict[str, str]:
    """Address → driver for every persistent binding (PERSIST_DIR/pci-ADDRESS)."""
    found = {}
    for name in host.listdir(PERSIST_DIR):
        if name.startswith("pci-"):
            driver = (host.read_attr(f"{PERSIST_DIR}/{name}") or "").strip()
            if driver:
                found[name[4:]] = driver
    return found


def persist_actions(plan: Plan, addresses: Sequence[str], driver: str) -> None:
    """Add the persistence files for ``addresses`` and, once, the udev rule and the unit."""
    for addr in addresses:
        path = f"{PERSIST_DIR}/pci-{addr}"
        plan.add(f"persist: write {path} ({driver})",
                 lambda h, p=path: h.write_file(p, driver + "\n", backup=False),
                 lambda h, p=path: h.remove_file(p), addr, files=(("write", path),))
    for path, text in ((UDEV_RULE, UDEV_RULE_TEXT), (UNIT, UNIT_TEXT)):
        plan.add(f"persist: install {path}", lambda h, p=path, t=text: h.write_file(p, t, backup=False),
                 files=(("write", path),))
    plan.add(f"persist: enable hostdev-bindings.service ({UNIT_WANTS})",
             lambda h: h.symlink(UNIT, UNIT_WANTS), files=(("link", UNIT_WANTS),))


def unpersist_shared_actions(plan: Plan, host: Host) -> None:
    """Remove the udev rule and the unit (and its enabling link) that ``persist_actions`` installed,
    for when the last persistent binding goes: hostdev takes back what it added. Files whose text
    is not hostdev's own (an administrator edited them) are left alone."""
    for path, text in ((UDEV_RULE, UDEV_RULE_TEXT), (UNIT, UNIT_TEXT)):
        if host.read_config(path) == text:
            plan.add_file(host, path, None, description=f"persist: remove {path} (no persistent binding left)")
    if host.readlink(UNIT_WANTS) == UNIT:
        plan.add(f"persist: disable hostdev-bindings.service ({UNIT_WANTS})", lambda h: h.remove_file(UNIT_WANTS),
                 lambda h: h.symlink(UNIT, UNIT_WANTS), files=(("remove", UNIT_WANTS),))


@dataclass
class Journal:
    """Original drivers of the devices hostdev re-bound: address → {driver, driver_override, …}."""

    devices: Dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, host: Host) -> Journal:
        """Raises DocumentError (exit 2) naming the file and what is wrong with it: a journal
        that cannot be read must stop the run, not be replaced by an empty one."""
        from .documents import DocumentError, load_json

        text = host.read_config(JOURNAL)
        if not text:
            return cls()
        fix = f"inspect it; move it aside to start a new journal ({JOURNAL}.broken)"
        data = load_json(text, JOURNAL, fix=fix)
        devices = data.get("devices", {}) if isinstance(data, dict) else None
        if not isinstance(devices, dict):
            raise DocumentError(JOURNAL, "expected an object with a \"devices\" object", fix=fix)
        for address, entry in devices.items():
            if not (isinstance(entry, dict) and all(isinstance(entry.get(k), (str, type(None)))
                                                    for k in ("driver", "driver_override"))):
                raise DocumentError(JOURNAL, f"devices.{address}: expected an object with driver and "
                                             "driver_override (strings or null)", fix=fix)
            try:
                PciAddress.parse(address)
            except HostdevError:
                raise DocumentError(JOURNAL, f"devices: {address!r} is not a PCI address", fix=fix) from None
        return cls(dict(devices))

    def save(self, host: Host) -> None:
        host.write_file(JOURNAL, json.dumps({"version": 1, "devices": self.devices}, indent=2, sort_keys=True) + "\n",
                        backup=False)


def record(address: str, original_driver: Optional[str], original_override: Optional[str], target: Optional[str],
           module: Optional[str] = None):
    """The journal step that comes before a device is touched. ``module`` is the kernel module of
    the original driver (its ``module`` link; none for a built-in driver), which restore loads
    when the driver is gone: a driver's name need not be its module's (4xxx is qat_4xxx). Its
    undo removes only the entry this run made, and only when the device is back exactly as it
    was (driver and override); when the rollback did not get it there, the entry is the only
    record of the driver to give it back to, and stays. An earlier run's entry is never removed by a failing run: only a
    restore that succeeded forgets a device (``forget``)."""
    before: List[Optional[dict]] = []

    def run(host: Host) -> None:
        journal = Journal.load(host)
        entry = journal.devices.get(address)
        before.append(dict(entry) if entry is not None else None)
        if entry is None:  # keep the FIRST original: a second bind must not forget it
            entry = {"driver": original_driver, "driver_override": original_override}
            if module:
                entry["module"] = module
        entry.update({"bound_to": target, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        journal.devices[address] = entry
        journal.save(host)

    def undo(host: Host) -> None:
        # the last undo of a rollback (they run in reverse): the device's own steps are undone
        if not before:
            return
        journal = Journal.load(host)
        if before[-1] is not None:  # an earlier run's entry: put back what it said
            journal.devices[address] = before[-1]
        else:
            from .pci import read_device

            now = read_device(host, address)
            if now is None or (now.driver, now.driver_override) != (original_driver, original_override):
                return  # not back where it was: the entry is how restore --all finds it
            journal.devices.pop(address, None)  # back exactly as it was: nothing to remember
        journal.save(host)

    return run, undo


def forget(address: str):
    """The last step of a restore: forget the device (and, on rollback, remember it again).
    Returns (run, undo)."""
    removed: List[dict] = []

    def run(host: Host) -> None:
        journal = Journal.load(host)
        entry = journal.devices.pop(address, None)
        if entry is not None:
            removed.append(entry)
            journal.save(host)

    def undo(host: Host) -> None:
        if removed:
            journal = Journal.load(host)
            journal.devices.setdefault(address, removed.pop())
            journal.save(host)

    return run, undo
