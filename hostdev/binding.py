"""Driver binding: vfio-pci bind, unbind and restore, group-aware and guarded.

The sequence is the kernel's documented one (Documentation/ABI/testing/sysfs-bus-pci,
driver_override): load the target driver, write ``driver_override``, unbind from the current
driver, ``drivers_probe``, then read the ``driver`` link back — a bind that "succeeds" while the
device stays on its old driver is an error here (ANCHORS.md: silent success). ``new_id`` is
never used: it binds every device with that ID (dpdk-devbind's reason too).

What hostdev changed is recorded in a journal (journal.py) so that ``restore`` returns each
device to the driver it had before hostdev touched it; the interlocks are in hostuse.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from . import hostuse, journal, pci, pciids, rules
from .errors import DeviceNotFoundError, HostdevError, HostEnvironmentError, RefusedError, UsageError
from .host import Host
from .model import PciAddress, PciDevice
from .plan import Plan
from .rules import VFIO, is_vfio_driver

DRIVERS = "/sys/bus/pci/drivers"
DRIVERS_PROBE = "/sys/bus/pci/drivers_probe"
class VerifyError(HostdevError):
    """The kernel accepted the writes but the device is not where it should be."""


# A PCI driver's name as /sys/bus/pci/drivers lists it (vfio-pci, snd_hda_intel, nvgrace_gpu_vfio_pci):
# it becomes a path component and a driver_override value, so nothing else is accepted.
_DRIVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_driver_name(driver: str) -> str:
    """``driver`` when it is a plain driver name. Raises UsageError (an empty name, a path)."""
    if not isinstance(driver, str) or not _DRIVER_NAME.fullmatch(driver):
        raise UsageError(f"invalid driver name {driver!r}",
                         fix="a name as 'ls /sys/bus/pci/drivers' shows it, e.g. vfio-pci")
    return driver


# ---------------------------------------------------------------- primitive steps
def _write_override(address: str, value: Optional[str]):
    # An empty write ("\n") clears the override (drivers/pci/pci-sysfs.c driver_override_store).
    return lambda host: host.write_attr(f"{pci.PCI_DEVICES}/{address}/driver_override", value or "\n")


def _unbind(address: str, driver: str):
    return lambda host: host.write_attr(f"{DRIVERS}/{driver}/unbind", address)


def _probe(address: str):
    return lambda host: host.write_attr(DRIVERS_PROBE, address)


def _unbind_if_on(address: str, driver: str):
    def run(host: Host) -> None:
        if host.link_name(f"{pci.PCI_DEVICES}/{address}/driver") == driver:
            host.write_attr(f"{DRIVERS}/{driver}/unbind", address)
    return run


def _rebind(address: str, driver: Optional[str], override: Optional[str]):
    """Give the device back to ``driver`` with its old override (the rollback of an unbind)."""
    def run(host: Host) -> None:
        current = host.link_name(f"{pci.PCI_DEVICES}/{address}/driver")
        if current and current != driver:
            host.write_attr(f"{DRIVERS}/{current}/unbind", address)
        # An override naming another driver (written while the device was bound: it only counts
        # at the next probe) makes the kernel refuse the bind to ``driver`` (pci_match_device
        # matches only the override's driver: ENODEV), so it goes back after the bind.
        in_the_way = bool(override and driver and override != driver)
        host.write_attr(f"{pci.PCI_DEVICES}/{address}/driver_override", "\n" if in_the_way else override or "\n")
        if driver and host.link_name(f"{pci.PCI_DEVICES}/{address}/driver") != driver:
            if host.exists(f"{DRIVERS}/{driver}"):
                host.write_attr(f"{DRIVERS}/{driver}/bind", address)
            else:
                host.write_attr(DRIVERS_PROBE, address)
        if in_the_way:
            host.write_attr(f"{pci.PCI_DEVICES}/{address}/driver_override", override)
    return run


def _give_back(address: str, driver: Optional[str], override: Optional[str], now: Optional[str],
               now_override: Optional[str]):
    """``_rebind`` to ``driver`` as one step that is never left half done: it writes up to three
    times (unbind, driver_override, bind), and a plan rolls back only the steps that completed, so
    when a later write fails (the driver's probe fails) the step itself first puts the device back
    on ``now`` with ``now_override``, then the error goes on."""
    give = _rebind(address, driver, override)
    take_back = _rebind(address, now, now_override)

    def run(host: Host) -> None:
        try:
            give(host)
        except HostdevError as exc:
            try:
                take_back(host)
            except HostdevError as undo_exc:
                exc.message += f"; {address} could not be put back on {now or 'no driver'}: {undo_exc.message}"
            raise
    return run


def _verify(address: str, driver: Optional[str], group: Optional[int]):
    def run(host: Host) -> None:
        now = host.link_name(f"{pci.PCI_DEVICES}/{address}/driver")
        if now != driver:
            raise VerifyError(f"{address} is on {now or 'no driver'} after the writes, not {driver or 'no driver'}",
                              fix="see dmesg for the driver's probe error")
        if is_vfio_driver(driver) and group is not None and not host.exists(f"/dev/vfio/{group}"):
            raise VerifyError(f"{address} is on {driver} but /dev/vfio/{group} did not appear",
                              fix="is the IOMMU on? run 'hostdev check'")
    return run


def driver_module(host: Host, driver: Optional[str]) -> Optional[str]:
    """The kernel module a loaded PCI driver belongs to (its ``module`` link, as lspci -k's
    "Kernel driver in use" and modinfo agree), or None for no driver or a built-in one."""
    return host.link_name(f"{DRIVERS}/{driver}/module") if driver else None


def _load_driver(driver: str, module: Optional[str] = None):
    """Load ``driver`` by its ``module`` (the driver's own name when none is known) unless it is loaded."""
    module = module or driver

    def run(host: Host) -> None:
        if host.exists(f"{DRIVERS}/{driver}"):
            return
        from .errors import CommandError

        try:
            host.run(["modprobe", module])
        except CommandError as exc:
            raise HostEnvironmentError(f"driver {driver} is not available: {exc.message}",
                                       fix=f"install the module that provides {driver} for this kernel") from None
        if not host.exists(f"{DRIVERS}/{driver}"):
            raise HostEnvironmentError(f"modprobe {module} succeeded but {DRIVERS}/{driver} did not appear",
                                       fix="check the driver name: 'ls /sys/bus/pci/drivers'")
    return run


# ---------------------------------------------------------------- plans
@dataclass
class DeviceChange:
    address: str
    before: Optional[str]
    after: Optional[str]
    action: str               # "bind" | "unbind" | "restore" | "none"
    group: Optional[int]
    note: Optional[str] = None

    @property
    def changed(self) -> bool:
        return self.action != "none"

    def to_dict(self) -> dict:
        return {"address": self.address, "from_driver": self.before, "to_driver": self.after,
                "action": self.action, "group": self.group, "changed": self.changed, "note": self.note}


@dataclass
class BindingPlan:
    plan: Plan
    devices: List[DeviceChange]

    @property
    def changed(self) -> bool:
        # a device moved, or a file of ours (journal, persistence) was written or removed
        return any(d.changed for d in self.devices) or self.plan.changes

    def to_dict(self, dry_run: bool) -> dict:
        # reboot_required: binding acts on the running kernel; only boot-time persistence would
        # need a reboot, and that is not part of these plans
        return self.plan.result(dry_run, changed=self.changed, reboot_required=False,
                                devices=[d.to_dict() for d in self.devices])


def resolve_addresses(host: Host, addresses: Sequence[str], device_ids: Sequence[str] = (),
                      vendor: Optional[str] = None, class_: Optional[str] = None) -> List[PciDevice]:
    """Devices named by address, by vendor:device ID, or selected by --vendor/--class (every
    function that matches all of them, never a bridge: rules.Selector), each once, in address
    order. Raises UsageError."""
    wanted: Dict[str, PciDevice] = {}
    for text in addresses:
        dev = pci.get_device(host, text)
        wanted[dev.address] = dev
    if device_ids or vendor or class_:
        selector = pci.parse_selector(device_ids, vendor, class_, pciids.load(host) if vendor else None)
        matched = [d for d in pci.list_devices(host) if selector.selects(d)]
        if not matched:
            what = ", ".join(filter(None, [", ".join(selector.device_ids), vendor and f"vendor {vendor}",
                                           class_ and f"class {class_}"]))
            raise UsageError(f"no device matches {what} on this host (bridges are never selected)",
                             fix="run 'hostdev devices' to see the IDs")
        for dev in matched:
            wanted[dev.address] = dev
    if not wanted:
        raise UsageError("no device given",
                         fix="name devices by address (0000:65:00.0), --device VVVV:DDDD, --vendor or --class")
    return [wanted[a] for a in sorted(wanted, key=PciAddress.parse)]


def _with_group(host: Host, devices: List[PciDevice], force: bool, plan: Plan) -> List[PciDevice]:
    """Add the other functions of the same card; refuse a group that other host-driver devices
    would keep from being viable (rules.group_blockers)."""
    chosen = {d.address: d for d in devices}
    groups: Dict[int, List[PciDevice]] = {}
    for dev in devices:
        if dev.iommu_group is None:
            continue
        if dev.iommu_group not in groups:
            members = (pci.read_device(host, m) for m in pci.group_members(host, dev.iommu_group))
            # an mdev or something that is not a PCI function reads as None
            groups[dev.iommu_group] = [m for m in members if m is not None]
        for other in rules.same_card(dev, groups[dev.iommu_group]):
            if other.address not in chosen:
                chosen[other.address] = other
                plan.notes.append(f"also binding {other.address} ({other.pci_id}, on {other.driver or 'no driver'}): "
                                  f"another function of the same card in IOMMU group {dev.iommu_group}")
    for group, members in sorted(groups.items()):
        for other in rules.group_blockers(members, chosen):
            first = next(d for d in chosen.values() if d.iommu_group == group)
            if not force:
                fix = ("nothing can make this group viable without taking a bridge from its driver"
                       if rules.is_bridge(other.class_id) else
                       f"bind it too (hostdev bind {first.address} {other.address}) or pass --force")
                raise RefusedError(
                    f"{other.address} ({other.pci_id}, on {other.driver}) shares IOMMU group {group} with "
                    f"{first.address}: the group would not be viable", fix=fix)
            plan.notes.append(f"--force: {other.address} stays on {other.driver}; IOMMU group {group} "
                              "will not be viable for VFIO")
    return [chosen[a] for a in sorted(chosen, key=PciAddress.parse)]


def refuse_unbindable(host: Host, devices: Sequence[PciDevice], bridges_only: bool = False) -> None:
    """Raise for a function hostdev never takes from its driver (rules.unbindable): a bridge is a
    UsageError, a function the IOMMU does not cover a HostEnvironmentError. ``bridges_only`` (unbind,
    which hands nothing to vfio, so IOMMU coverage does not matter) refuses the bridges alone."""
    active = pci.iommu_active(host)
    for dev in devices:
        why = rules.unbindable(dev, active)
        if why is None or (bridges_only and why.kind != "bridge"):
            continue
        if why.kind == "bridge":
            raise UsageError(why.message, fix="name the device behind it (hostdev devices)")
        raise HostEnvironmentError(why.message, fix="see dmesg for the IOMMU driver's messages about this device")


def plan_bind(host: Host, devices: List[PciDevice], driver: str = VFIO, force: bool = False,
              persist: bool = False) -> BindingPlan:
    """The plan that puts every device (and its group siblings) on ``driver``; with ``persist``
    also the files that re-apply it at boot.

    Raises UsageError (a bridge, a bad driver name, a corrupt journal), HostEnvironmentError (no
    IOMMU group on an IOMMU host), RefusedError (interlocks, partial group) before anything is
    planned.
    """
    check_driver_name(driver)
    journal.Journal.load(host)  # a corrupt journal stops the plan before any change
    plan = Plan()
    refuse_unbindable(host, devices)
    devices = _with_group(host, devices, force, plan)
    changes: List[DeviceChange] = []
    todo = [d for d in devices if d.driver != driver]
    for dev in devices:
        if dev.driver == driver:
            changes.append(DeviceChange(dev.address, dev.driver, driver, "none", dev.iommu_group,
                                        f"already on {driver}"))
    use = hostuse.host_use(host) if todo else None
    for dev in todo:
        reasons = hostuse.interlocks(host, dev, use)
        if reasons and not force:
            raise RefusedError(f"refusing to take {reasons[0]}", fix="pass --force if you are sure")
        plan.notes.extend(f"--force: {r}" for r in reasons)
    if todo:
        plan.add(f"load driver {driver} (modprobe {driver}) unless it is loaded", _load_driver(driver))
    for dev in todo:
        addr = dev.address
        run, undo = journal.record(addr, dev.driver, dev.driver_override, driver, driver_module(host, dev.driver))
        plan.add(f"record {addr}'s driver ({dev.driver or 'none'}) in {journal.JOURNAL}", run, undo, addr,
                 files=(("write", journal.JOURNAL),))
        plan.add(f"write {driver} to {pci.PCI_DEVICES}/{addr}/driver_override",
                 _write_override(addr, driver), _write_override(addr, dev.driver_override), addr)
        if dev.driver:
            plan.add(f"unbind {addr} from {dev.driver}", _unbind(addr, dev.driver),
                     _rebind(addr, dev.driver, dev.driver_override), addr)
        plan.add(f"probe {addr} (drivers_probe)", _probe(addr), _unbind_if_on(addr, driver), addr)
        has_node = is_vfio_driver(driver) and dev.iommu_group is not None
        dev_node = f" and /dev/vfio/{dev.iommu_group} exists" if has_node else ""
        plan.add(f"verify {addr} is on {driver}{dev_node}",
                 _verify(addr, driver, dev.iommu_group), None, addr)
        changes.append(DeviceChange(addr, dev.driver, driver, "bind", dev.iommu_group))
    changes.sort(key=lambda c: PciAddress.parse(c.address))
    if persist:
        already = journal.persisted(host)
        missing = [d.address for d in devices if already.get(d.address) != driver]
        if missing or not (host.exists(journal.UDEV_RULE) and host.exists(journal.UNIT)
                           and host.readlink(journal.UNIT_WANTS) == journal.UNIT):
            journal.persist_actions(plan, missing, driver)
    return BindingPlan(plan, changes)


def plan_persisted(host: Host, force: bool = False) -> BindingPlan:
    """The boot-time re-apply: bind every device of PERSIST_DIR to its recorded driver."""
    by_driver: Dict[str, List[PciDevice]] = {}
    plan = Plan()
    changes: List[DeviceChange] = []
    for addr, driver in sorted(journal.persisted(host).items()):
        dev = pci.read_device(host, addr)
        if dev is None:
            plan.notes.append(f"{addr} ({journal.PERSIST_DIR}/pci-{addr}) is not on this host")
            continue
        by_driver.setdefault(driver, []).append(dev)
    for driver, devices in by_driver.items():
        part = plan_bind(host, devices, driver, force)
        plan.actions.extend(part.plan.actions)
        plan.notes.extend(part.plan.notes)
        changes.extend(part.devices)
    return BindingPlan(plan, changes)


def _refuse_if_held(host: Host, dev: PciDevice, force: bool, use: hostuse.HostUse,
                    to: Optional[str] = None) -> None:
    """Refuse to take ``dev`` from its driver (to ``to``, a restore's original driver; None: no
    driver) when that would block or fail in the kernel, or take something the host uses (unless
    ``force``). Never forced: a group a VFIO user holds. Raises RefusedError."""
    leaving_vfio = is_vfio_driver(dev.driver)
    joining = dev.driver is None and bool(to) and not is_vfio_driver(to)
    if (leaving_vfio or joining) and dev.iommu_group is not None:
        holders = hostuse.vfio_group_holders(host, dev.iommu_group, use)
        if holders:
            held = f"/dev/vfio/{dev.iommu_group} is held by {', '.join(holders)}"
            raise RefusedError(
                # leaving: the kernel would block the unbind until the user lets go; joining: EBUSY
                # (pci_dma_configure → iommu_device_use_default_domain: the group has a DMA owner)
                f"{dev.address} is in use: {held}" if leaving_vfio else
                f"{dev.address} cannot go back to {to} while {held}: the kernel refuses a host driver in a group a "
                "VFIO user holds", fix="stop the VM or process first (virsh destroy …)")
    if dev.driver is not None and not is_vfio_driver(dev.driver):  # no driver: nothing of the host's to take
        reasons = hostuse.interlocks(host, dev, use)
        if reasons and not force:
            raise RefusedError(f"refusing to take {reasons[0]}", fix="pass --force if you are sure")


def plan_unbind(host: Host, devices: List[PciDevice], force: bool = False) -> BindingPlan:
    """Leave each device without a driver (recording the one it had)."""
    journal.Journal.load(host)  # a corrupt journal stops the plan before any change
    refuse_unbindable(host, devices, bridges_only=True)
    plan = Plan()
    changes = []
    use = hostuse.host_use(host)
    for dev in devices:
        if dev.driver is None:
            changes.append(DeviceChange(dev.address, None, None, "none", dev.iommu_group, "no driver"))
            continue
        _refuse_if_held(host, dev, force, use)
        run, undo = journal.record(dev.address, dev.driver, dev.driver_override, None,
                                   driver_module(host, dev.driver))
        plan.add(f"record {dev.address}'s driver ({dev.driver}) in {journal.JOURNAL}", run, undo, dev.address,
                 files=(("write", journal.JOURNAL),))
        plan.add(f"unbind {dev.address} from {dev.driver}", _unbind(dev.address, dev.driver),
                 _rebind(dev.address, dev.driver, dev.driver_override), dev.address)
        plan.add(f"verify {dev.address} has no driver", _verify(dev.address, None, None), None, dev.address)
        changes.append(DeviceChange(dev.address, dev.driver, None, "unbind", dev.iommu_group))
    return BindingPlan(plan, changes)


def plan_restore(host: Host, addresses: Sequence[str], every: bool = False, force: bool = False) -> BindingPlan:
    """Return devices to the driver (and override) the journal recorded before hostdev's change."""
    recorded = journal.Journal.load(host)
    if every:
        targets = sorted(recorded.devices, key=PciAddress.parse)
    else:
        targets = [str(PciAddress.parse(a)) for a in addresses]
        if not targets:
            raise UsageError("no device given", fix="name devices by address, or --all")
    plan = Plan()
    changes = []
    forgets: List[str] = []
    persistent = journal.persisted(host)
    use = hostuse.host_use(host)
    for addr in targets:
        if addr in persistent:
            path = f"{journal.PERSIST_DIR}/pci-{addr}"
            plan.add(f"persist: remove {path}", lambda h, p=path: h.remove_file(p),
                     lambda h, p=path, d=persistent[addr]: h.write_file(p, d + "\n", backup=False), addr,
                     files=(("remove", path),))
        entry = recorded.devices.get(addr)
        dev = pci.read_device(host, addr)
        if dev is None:
            raise DeviceNotFoundError(addr)
        if entry is None:
            changes.append(DeviceChange(addr, dev.driver, dev.driver, "none", dev.iommu_group,
                                        "hostdev has no record of changing it"))
            continue
        original, override = entry.get("driver"), entry.get("driver_override")
        if dev.driver == original and dev.driver_override == override:
            forgets.append(addr)
            changes.append(DeviceChange(addr, dev.driver, original, "none", dev.iommu_group,
                                        f"already on {original or 'no driver'}"))
            continue
        _refuse_if_held(host, dev, force, use, to=original)
        if original and not host.exists(f"{DRIVERS}/{original}"):
            module = entry.get("module") or original
            plan.add(f"load driver {original} (modprobe {module})", _load_driver(original, module))
        plan.add(f"give {addr} back to {original or 'no driver'}",
                 _give_back(addr, original, override, dev.driver, dev.driver_override),
                 _rebind(addr, dev.driver, dev.driver_override), addr)
        plan.add(f"verify {addr} is on {original or 'no driver'}", _verify(addr, original, None), None, addr)
        forgets.append(addr)
        changes.append(DeviceChange(addr, dev.driver, original, "restore", dev.iommu_group))
    # forgotten last, once every device is back and verified: a failure before leaves every
    # entry in the journal, and the rollback of a failed forget remembers the device again
    for addr in forgets:
        plan.add(f"forget {addr} in {journal.JOURNAL}", *journal.forget(addr), addr,
                 files=(("write", journal.JOURNAL),))
    if persistent and not set(persistent) - set(targets):
        journal.unpersist_shared_actions(plan, host)   # the last persistent binding went
    return BindingPlan(plan, changes)
