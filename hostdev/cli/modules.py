"""hostdev modules status / load / unpersist."""

from typing import List, Optional

import typer

from ..render import Format
from .context import OutputOption, carry_out, command, complete_address, host, planning, set_output

app = typer.Typer(help="The vfio kernel modules: status, load now, load at boot, load before device drivers; "
                       "unpersist takes the boot-time part back.",
                  no_args_is_help=True)


@app.command("status")
@command
def status(output: Format = OutputOption) -> int:
    """vfio, vfio_iommu_type1, vfio_pci (and vfio_virqfd before 6.2): loaded, built in, available or missing."""
    from .. import modules
    from ..render import emit, table

    set_output(output)
    h = host()
    found = modules.status(h)
    data = {"modules": [m.to_dict() for m in found], "softdeps": modules.softdeps(h)}
    if not emit(data, output):
        table(["module", "state", "at boot"], [[m.name, m.state, "yes" if m.persistent else "no"] for m in found])
    return 0


@app.command("load")
@command
def load(
    persist: bool = typer.Option(False, "--persist", help="Also load them at every boot "
                                                          "(/etc/modules-load.d/hostdev-vfio.conf)."),
    early: Optional[List[str]] = typer.Option(None, "--early", metavar="ADDR", autocompletion=complete_address,
                                              help="Make this device's driver wait for vfio-pci (modprobe.d "
                                                   "softdep), so that early binding wins (repeatable)."),
    initramfs: bool = typer.Option(False, "--initramfs", help="With --early: regenerate the initramfs "
                                                              "(update-initramfs, dracut or mkinitcpio)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing."),
    output: Format = OutputOption,
) -> int:
    """Load vfio-pci and what it needs with modprobe; built-in modules count as present."""
    from .. import binding, journal, modules, rules
    from ..render import message, table

    set_output(output)
    h = host()
    drivers = []
    if early:
        recorded = journal.Journal.load(h).devices
        for dev in binding.resolve_addresses(h, early):
            # on vfio already: the driver it had before hostdev moved it is the one to hold back
            driver = dev.driver if not rules.is_vfio_driver(dev.driver) else \
                (recorded.get(dev.address) or {}).get("driver")
            if driver and not rules.is_vfio_driver(driver):
                drivers.append(driver)
            else:
                message(f"note: {dev.address} has no host driver to hold back", "warn")
    plan = modules.plan_load(h, persist, drivers, initramfs)
    if not carry_out(h, plan, dry_run, output, "modules load"):
        table(["module", "state", "action"],
              [[m.name, m.state, ("would load" if dry_run else "loaded") if m.name in plan.load else "none"]
               for m in plan.modules])
    return 0


@app.command("unpersist")
@command
def unpersist(
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing."),
    output: Format = OutputOption,
) -> int:
    """Undo 'modules load --persist/--early': remove the files it wrote (modules-load.d, the modprobe.d softdep)
    and regenerate the initramfs that carries them. The modules stay loaded until the next boot. A file that is
    no longer hostdev's text is refused (exit 3), nothing changed."""
    from .. import modules
    from ..render import message, table

    set_output(output)
    h = host()
    with planning(h, dry_run, "modules unpersist"):
        plan = modules.plan_unpersist(h)
        if carry_out(h, plan, dry_run, output, "modules unpersist"):
            return 0
    if plan.files:
        table(["file", "action"], [[path, "would remove" if dry_run else "removed"] for path in plan.files])
    else:
        message("nothing to undo: no file of 'hostdev modules load --persist/--early' is there")
    return 0
