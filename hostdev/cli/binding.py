"""hostdev bind / unbind / restore / bindings."""

from typing import List, Optional

import typer

from ..render import Format
from .context import OutputOption, command, complete_address, host, set_output

DryRunOption = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing (Ansible check mode).")
ForceOption = typer.Option(False, "--force", help="Override the safety interlocks (boot VGA, mounted disk, routed NIC, "
                                                  "partial IOMMU group).")
AddressesArg = typer.Argument(None, metavar="ADDR...", help="PCI addresses (0000:65:00.0 or 65:00.0).",
                              autocompletion=complete_address)


def _run(binding_plan, dry_run: bool, output: Format, verb: str) -> int:
    from ..render import emit, message, table

    h = host()
    if not dry_run and binding_plan.plan.changes:
        h.require_mutable(f"hostdev {verb}")
        with h.lock():
            binding_plan.plan.apply(h)
    if not emit(binding_plan.to_dict(dry_run), output):
        for note in binding_plan.plan.notes:
            message(f"note: {note}", "warn")
        if dry_run:
            for action in binding_plan.plan.describe():
                message(f"would: {action['action']}")
        table(["address", "from", "to", "changed"],
              [[d.address, d.before or "none", d.after or "none",
                ("would change" if dry_run else "changed") if d.changed else (d.note or "no")]
               for d in binding_plan.devices])
    return 0


def bind(
    addresses: Optional[List[str]] = AddressesArg,
    device: Optional[List[str]] = typer.Option(None, "--device", metavar="VVVV:DDDD",
                                               help="Every function with this ID (repeatable)."),
    vendor: Optional[str] = typer.Option(None, "--vendor", metavar="VVVV", help="Every function of this vendor."),
    class_: Optional[str] = typer.Option(None, "--class", metavar="CLASS",
                                         help="Every function of this class (gpu, net, accel, HEX); "
                                              "with --vendor or --device: those that match both."),
    driver: str = typer.Option("vfio-pci", "--driver", help="Target driver."),
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Bind devices to vfio-pci (driver_override, unbind, probe, verify), whole IOMMU groups."""
    from .. import binding

    set_output(output)
    h = host()
    devices = binding.resolve_addresses(h, addresses or [], device or [], vendor, class_)
    return _run(binding.plan_bind(h, devices, driver, force), dry_run, output, "bind")


def unbind(
    addresses: Optional[List[str]] = AddressesArg,
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Leave devices without a driver (the driver they had is recorded for restore)."""
    from .. import binding

    set_output(output)
    h = host()
    devices = binding.resolve_addresses(h, addresses or [])
    return _run(binding.plan_unbind(h, devices, force), dry_run, output, "unbind")


def restore(
    addresses: Optional[List[str]] = AddressesArg,
    all_: bool = typer.Option(False, "--all", help="Every device hostdev changed."),
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Give devices back to the driver they had before hostdev changed them."""
    from .. import binding

    set_output(output)
    return _run(binding.plan_restore(host(), addresses or [], all_, force), dry_run, output, "restore")


def bindings(output: Format = OutputOption) -> int:
    """What hostdev changed (its journal), with each device's driver now."""
    from .. import binding, pci
    from ..render import emit, table

    set_output(output)
    h = host()
    journal = binding.Journal.load(h)
    rows = []
    for addr, entry in sorted(journal.devices.items()):
        dev = pci.read_device(h, addr)
        rows.append({"address": addr, "original_driver": entry.get("driver"),
                     "original_driver_override": entry.get("driver_override"),
                     "bound_to": entry.get("bound_to"), "driver": dev.driver if dev else None,
                     "present": dev is not None, "time": entry.get("time")})
    if not emit({"bindings": rows}, output):
        table(["address", "original", "bound to", "driver now", "since"],
              [[r["address"], r["original_driver"] or "none", r["bound_to"] or "none", r["driver"] or "none",
                r["time"]] for r in rows])
    return 0


for _fn in (bind, unbind, restore, bindings):
    globals()[_fn.__name__] = command(_fn)
