"""SR-IOV: enable and disable the virtual functions of a physical function.

The count is set through ``sriov_numvfs`` (Documentation/ABI/testing/sysfs-bus-pci). The kernel
refuses to change one non-zero count into another ("%d VFs already enabled. Disable before
enabling %d VFs", -EBUSY, drivers/pci/iov.c sriov_numvfs_store), so a change writes 0 first.
It also needs the PF's driver: without one, or with a driver that has no ``sriov_configure``,
the write fails with -ENOENT. After the write the VFs are read back (``virtfnN`` links and the
count); a VF that does not appear is an error, not a silent success.

VFs that disappear are forgotten in the binding journal, so that ``hostdev restore --all`` does
not trip over devices that no longer exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from . import binding, hostuse, journal, pci, rules
from .errors import RefusedError, UsageError
from .host import Host
from .model import PciDevice
from .plan import Plan

# How long to wait for the VFs to appear after the write. The PF driver creates them inside
# the write on current kernels (pci_enable_sriov → pci_iov_add_virtfn), but some drivers
# finish asynchronously (mlx5 on firmware reset), and udev may still be renaming links.
VF_WAIT_S = 5.0
_POLL_S = 0.05


# ---------------------------------------------------------------- reading
def _numvfs_path(pf: str) -> str:
    return f"{pci.PCI_DEVICES}/{pf}/sriov_numvfs"


def read_num_vfs(host: Host, pf: str) -> int:
    """The current VF count of ``pf`` (0 when the attribute is unreadable)."""
    text = host.read_attr(_numvfs_path(pf))
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def _virtfn_indexes(host: Host, pf: str) -> List[int]:
    names = host.listdir(f"{pci.PCI_DEVICES}/{pf}")
    return sorted(int(n[6:]) for n in names if n.startswith("virtfn") and n[6:].isdigit())


def vf_addresses(host: Host, pf: str) -> List[str]:
    """The VFs of ``pf`` in virtfn order (virtfn0, virtfn1, …), from its ``virtfnN`` links."""
    out = []
    for index in _virtfn_indexes(host, pf):
        addr = host.link_name(f"{pci.PCI_DEVICES}/{pf}/virtfn{index}")
        if addr:
            out.append(addr)
    return out


def _get_pf(host: Host, address: str) -> PciDevice:
    """The device at ``address``, which must be an SR-IOV PF. Raises UsageError."""
    dev = pci.get_device(host, address)
    if dev.sriov is None or dev.sriov.role != "pf" or not dev.sriov.total_vfs:
        what = f"a VF of {dev.sriov.physfn}" if dev.sriov is not None and dev.sriov.role == "vf" else \
            "not an SR-IOV physical function (it has no sriov_totalvfs)"
        raise UsageError(f"{dev.address} ({dev.pci_id}) is {what}",
                         fix="run 'hostdev devices' and pick a device with an SR-IOV column of pf")
    return dev


def _refuse_if_vfs_busy(host: Host, pf: str, force: bool) -> List[str]:
    """Refuse when removing the VFs of ``pf`` would hurt; returns the notes for --force."""
    notes = []
    use = hostuse.host_use(host)
    for vf in vf_addresses(host, pf):
        dev = pci.read_device(host, vf)
        if dev is None:
            continue
        if dev.iommu_group is not None:
            holders = hostuse.vfio_group_holders(host, dev.iommu_group, use)
            if holders:
                # never forced: PF drivers refuse while VFs are assigned (ice_sriov_configure:
                # pci_vfs_assigned → -EBUSY), and the VM would lose its device
                raise RefusedError(f"VF {vf} of {pf} is in use: /dev/vfio/{dev.iommu_group} is held by "
                                   f"{', '.join(holders)}",
                                   fix="stop the VM or process first (virsh destroy …)")
        if not rules.is_vfio_driver(dev.driver):
            reasons = hostuse.interlocks(host, dev, use)
            if reasons and not force:
                raise RefusedError(f"refusing to remove VF: {reasons[0]}", fix="pass --force if you are sure")
            notes.extend(f"--force: {r}" for r in reasons)
    return notes


# ---------------------------------------------------------------- steps
def _write(pf: str, n: int, hint: Optional[str] = None) -> Callable[[Host], None]:
    return lambda host: host.write_attr(_numvfs_path(pf), str(n), hint)


def _set_count(pf: str, n: int) -> Callable[[Host], None]:
    """Bring the count to ``n`` whatever it is now (0 first when both are non-zero): the rollback."""
    def run(host: Host) -> None:
        current = read_num_vfs(host, pf)
        if current == n:
            return
        if current and n:
            host.write_attr(_numvfs_path(pf), "0")
        host.write_attr(_numvfs_path(pf), str(n))
    return run


def _wait_for_vfs(pf: str, n: int, timeout: float = VF_WAIT_S) -> Callable[[Host], None]:
    """Poll until sriov_numvfs reads ``n`` and the links are exactly virtfn0..virtfn{n-1}.
    Raises VerifyError after ``timeout`` seconds."""
    def run(host: Host) -> None:
        deadline = time.monotonic() + timeout
        while True:
            links = _virtfn_indexes(host, pf)
            count = read_num_vfs(host, pf)
            if count == n and links == list(range(n)):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_S)
        raise binding.VerifyError(
            f"{pf}: sriov_numvfs reads {count} and {len(links)} virtfn link(s) exist {timeout:.0f} s after "
            f"writing {n}", fix="see dmesg for the PF driver's error")
    return run


def _forget_in_journal(addresses: List[str]):
    """Drop journal entries of VFs that the write removes; the undo puts them back."""
    saved: Dict[str, dict] = {}

    def run(host: Host) -> None:
        entries = journal.Journal.load(host)
        for addr in addresses:
            entry = entries.devices.pop(addr, None)
            if entry is not None:
                saved[addr] = entry
        if saved:
            entries.save(host)

    def undo(host: Host) -> None:
        if not saved:
            return
        entries = journal.Journal.load(host)
        entries.devices.update(saved)
        entries.save(host)

    return run, undo


def _add_forget(host: Host, plan: Plan, pf: str, removed: List[str]) -> None:
    """Plan forgetting the journal entries of the VFs a write removes (only when it has some)."""
    recorded = [a for a in removed if a in journal.Journal.load(host).devices]
    if recorded:
        run, undo = _forget_in_journal(recorded)
        plan.add(f"forget {', '.join(recorded)} (VFs that go away) in {journal.JOURNAL}", run, undo, pf,
                 files=(("write", journal.JOURNAL),))


# ---------------------------------------------------------------- plans
@dataclass
class SriovPlan:
    """The enable/disable plan of one PF. ``vfs`` and ``devices`` are filled in by ``apply``
    when the VF addresses are only known after the write."""

    pf: str
    before: int
    after: int
    plan: Plan
    vfs: List[str] = field(default_factory=list)
    bind_driver: Optional[str] = None
    devices: List[binding.DeviceChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.plan.changes or any(d.changed for d in self.devices)

    @property
    def actions(self) -> list:
        return self.plan.actions

    def apply(self, host: Host, on_step: Optional[Callable] = None) -> None:
        """Run the plan (rollback on failure: OperationFailedError), then read the VFs back."""
        self.plan.apply(host, on_step)
        self.vfs = vf_addresses(host, self.pf) if self.after else []

    def to_dict(self, dry_run: bool) -> dict:
        # reboot_required: sriov_numvfs acts on the running kernel; the count does not survive
        # a reboot (persisting it is a udev rule or a systemd unit, not part of this plan)
        return self.plan.result(dry_run, changed=self.changed, reboot_required=False, pf=self.pf,
                                num_vfs_before=self.before, num_vfs_after=self.after, vfs=list(self.vfs),
                                devices=[d.to_dict() for d in self.devices])


def _bind_all(result: SriovPlan, driver: str, force: bool) -> Callable[[Host], None]:
    """The bind phase, planned when it runs (the VF addresses exist only then). Its own plan
    rolls itself back on failure; the OperationFailedError then rolls back the enable too."""
    def run(host: Host) -> None:
        devices = binding.resolve_addresses(host, vf_addresses(host, result.pf))
        bind_plan = binding.plan_bind(host, devices, driver, force)
        result.devices = bind_plan.devices
        result.plan.notes.extend(bind_plan.plan.notes)
        bind_plan.plan.apply(host)
    return run


def _no_driver_refusal(dev: PciDevice) -> RefusedError:
    return RefusedError(f"{dev.address} has no driver: the kernel needs the PF driver to create VFs",
                        fix=f"bind the PF to its driver first (hostdev restore {dev.address}, or "
                            f"echo {dev.address} > /sys/bus/pci/drivers_probe)")


def plan_enable(host: Host, pf_address: str, n: int, bind_driver: Optional[str] = None,
                force: bool = False) -> SriovPlan:
    """The plan that gives PF ``pf_address`` exactly ``n`` VFs, optionally all bound to ``bind_driver``.

    Raises UsageError (not a PF, n out of 1..sriov_totalvfs) and RefusedError (no PF driver,
    existing VFs in use) before anything is planned.
    """
    dev = _get_pf(host, pf_address)
    pf = dev.address
    total = dev.sriov.total_vfs or 0
    if n < 1 or n > total:
        raise UsageError(f"--vfs {n} is out of range for {pf}: it supports 1 to {total} VFs (sriov_totalvfs {total})",
                         fix=f"pass --vfs between 1 and {total}; 'hostdev sriov disable {pf}' removes them all")
    before = read_num_vfs(host, pf)
    plan = Plan()
    result = SriovPlan(pf, before, n, plan, bind_driver=bind_driver)
    if before == n:
        result.vfs = vf_addresses(host, pf)
        if bind_driver:
            bind_plan = binding.plan_bind(host, binding.resolve_addresses(host, result.vfs), bind_driver, force)
            result.devices = bind_plan.devices
            plan.actions.extend(bind_plan.plan.actions)
            plan.notes.extend(bind_plan.plan.notes)
        return result
    if dev.driver is None:
        raise _no_driver_refusal(dev)
    hint = (f"see dmesg; ENOENT means {dev.driver} cannot configure SR-IOV through sysfs "
            "(vfio-pci needs the module parameter enable_sriov=1)")
    if before:
        plan.notes.extend(_refuse_if_vfs_busy(host, pf, force))
        old_vfs = vf_addresses(host, pf)
        plan.notes.append(f"the {before} existing VF(s) of {pf} are removed and {n} new ones created; "
                          "VMs and drivers using them lose them")
        # the kernel refuses a change between two non-zero counts (drivers/pci/iov.c, -EBUSY)
        plan.add(f"write 0 to {_numvfs_path(pf)} (the kernel needs 0 before a new count)",
                 _write(pf, 0), _set_count(pf, before), pf)
        _add_forget(host, plan, pf, old_vfs)
    plan.add(f"write {n} to {_numvfs_path(pf)}", _write(pf, n, hint), _set_count(pf, 0), pf)
    plan.add(f"wait up to {VF_WAIT_S:.0f} s for virtfn0..virtfn{n - 1} and verify sriov_numvfs reads {n}",
             _wait_for_vfs(pf, n), None, pf)
    if bind_driver:
        plan.add(f"bind every VF of {pf} to {bind_driver} (driver_override, unbind, probe, verify)",
                 _bind_all(result, bind_driver, force), None, pf)
    return result


def plan_disable(host: Host, pf_address: str, force: bool = False) -> SriovPlan:
    """The plan that removes every VF of PF ``pf_address``.

    Raises UsageError (not a PF) and RefusedError (a VF is held open, an interlock, no PF driver).
    """
    dev = _get_pf(host, pf_address)
    pf = dev.address
    before = read_num_vfs(host, pf)
    plan = Plan()
    result = SriovPlan(pf, before, 0, plan)
    if before == 0:
        return result
    if dev.driver is None:
        raise _no_driver_refusal(dev)
    plan.notes.extend(_refuse_if_vfs_busy(host, pf, force))
    old_vfs = vf_addresses(host, pf)
    plan.add(f"write 0 to {_numvfs_path(pf)}", _write(pf, 0), _set_count(pf, before), pf)
    _add_forget(host, plan, pf, old_vfs)
    plan.add(f"wait up to {VF_WAIT_S:.0f} s until sriov_numvfs reads 0 and no virtfn link remains",
             _wait_for_vfs(pf, 0), None, pf)
    return result
