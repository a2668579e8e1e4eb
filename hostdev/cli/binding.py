"""hostdev bind / unbind / restore / bindings."""

from typing import List, Optional

import typer

from ..render import Format
from .context import OutputOption, carry_out, command, complete_address, host, planning, set_output

DryRunOption = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing (Ansible check mode).")
ForceOption = typer.Option(False, "--force", help="Override the safety interlocks (boot VGA, mounted disk, routed NIC, "
                                                  "partial IOMMU group).")
AddressesArg = typer.Argument(None, metavar="ADDR...", help="PCI addresses (0000:65:00.0 or 65:00.0).",
                              autocompletion=complete_address)


def _run(h, binding_plan, dry_run: bool, output: Format, verb: str) -> int:
    from ..render import table

    if not carry_out(h, binding_plan, dry_run, output, verb):
        table(["address", "from", "to", "changed"],
              [[d.address, d.before or "none", d.after or "none",
                ("would change" if dry_run else "changed") if d.changed else (d.note or "no")]
               for d in binding_plan.devices])
    return 0


def bind(
    addresses: Optional[List[str]] = AddressesArg,
    device: Optional[List[str]] = typer.Option(None, "--device", metavar="VVVV:DDDD",
                                               help="Every function with this ID (repeatable)."),
    vendor: Optional[str] = typer.Option(None, "--vendor", metavar="VENDOR",
                                          help="Every function of this vendor: its ID (10de) or its name in pci.ids "
                                               "(nvidia)."),
    class_: Optional[str] = typer.Option(None, "--class", metavar="CLASS",
                                         help="Every function of this class (gpu, net, accel, HEX); "
                                              "with --vendor or --device: those that match both."),
    driver: str = typer.Option("vfio-pci", "--driver", help="Target driver."),
    persist: bool = typer.Option(False, "--persist", help="Re-apply at every boot (udev rule + systemd unit, "
                                                          "/etc/hostdev/bindings.d)."),
    persisted: bool = typer.Option(False, "--persisted", help="Bind every persistent binding now (what the "
                                                              "boot-time unit runs)."),
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Bind devices to vfio-pci (driver_override, unbind, probe, verify), whole IOMMU groups."""
    from .. import binding, journal
    from ..errors import UsageError

    set_output(output)
    h = host()
    if persisted and (addresses or device or vendor or class_ or persist):
        raise UsageError("--persisted takes no devices", fix="it binds what /etc/hostdev/bindings.d lists")
    binding.check_driver_name(driver)
    # bad input (and a corrupt journal) is refused before root and the lock are asked for
    journal.Journal.load(h)
    if not persisted:
        binding.resolve_addresses(h, addresses or [], device or [], vendor, class_)
    with planning(h, dry_run, "bind"):
        if persisted:
            return _run(h, binding.plan_persisted(h, force), dry_run, output, "bind")
        devices = binding.resolve_addresses(h, addresses or [], device or [], vendor, class_)
        return _run(h, binding.plan_bind(h, devices, driver, force, persist), dry_run, output, "bind")


def unbind(
    addresses: Optional[List[str]] = AddressesArg,
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Leave devices without a driver (the driver they had is recorded for restore)."""
    from .. import binding, journal

    set_output(output)
    h = host()
    journal.Journal.load(h)  # bad input and a corrupt journal first, then root and the lock
    binding.resolve_addresses(h, addresses or [])
    with planning(h, dry_run, "unbind"):
        devices = binding.resolve_addresses(h, addresses or [])
        return _run(h, binding.plan_unbind(h, devices, force), dry_run, output, "unbind")


def restore(
    addresses: Optional[List[str]] = AddressesArg,
    all_: bool = typer.Option(False, "--all", help="Every device hostdev changed."),
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Give devices back to the driver they had before hostdev changed them."""
    from .. import binding, journal

    set_output(output)
    h = host()
    journal.Journal.load(h)  # a corrupt journal is refused before root and the lock are asked for
    with planning(h, dry_run, "restore"):
        return _run(h, binding.plan_restore(h, addresses or [], all_, force), dry_run, output, "restore")


def bindings(output: Format = OutputOption) -> int:
    """What hostdev changed (its journal), with each device's driver now."""
    from .. import journal, pci
    from ..render import emit, table

    set_output(output)
    h = host()
    recorded = journal.Journal.load(h)
    persistent = journal.persisted(h)
    rows = []
    for addr in sorted(set(recorded.devices) | set(persistent)):
        entry = recorded.devices.get(addr, {})
        dev = pci.read_device(h, addr)
        rows.append({"address": addr, "original_driver": entry.get("driver"),
                     "original_driver_override": entry.get("driver_override"),
                     "bound_to": entry.get("bound_to"), "driver": dev.driver if dev else None,
                     "present": dev is not None, "time": entry.get("time"),
                     "persistent_driver": persistent.get(addr)})
    if not emit({"bindings": rows}, output):
        table(["address", "original", "bound to", "driver now", "persistent", "since"],
              [[r["address"], r["original_driver"] or "none", r["bound_to"] or "none", r["driver"] or "none",
                r["persistent_driver"] or "no", r["time"]] for r in rows])
    return 0


for _fn in (bind, unbind, restore, bindings):
    globals()[_fn.__name__] = command(_fn)
