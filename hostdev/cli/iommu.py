"""hostdev iommu groups / enable / disable."""

from typing import List, Optional

import typer

from ..render import Format
from .context import OutputOption, command, host, pci_names, set_output

app = typer.Typer(help="IOMMU groups and the IOMMU kernel arguments.", no_args_is_help=True)


@app.command("groups")
@command
def groups(
    pci_ids: Optional[str] = typer.Option(None, "--pci-ids", metavar="FILE",
                                          help="Name classes from this pci.ids instead of the host's (hwdata)."),
    output: Format = OutputOption,
) -> int:
    """List IOMMU groups and their member devices (a group is assigned to a VM whole)."""
    from .. import pci
    from ..render import emit, table

    set_output(output)
    h = host()
    found = pci.iommu_groups(h)
    if emit({"groups": [g.to_dict() for g in found]}, output):
        return 0
    devices = {d.address: d for d in pci.list_devices(h, pci_names(pci_ids))}
    rows = []
    for group in found:
        for member in group.devices:
            dev = devices.get(member)
            rows.append([group.id, member, dev.pci_id if dev else "-",
                         (dev.class_name or dev.class_id) if dev else "mdev",
                         dev.driver if dev else h.link_name(f"/sys/bus/mdev/devices/{member}/driver")])
    table(["group", "address", "id", "class", "driver"], rows)
    return 0


DryRunOption = typer.Option(False, "--dry-run", "-n", help="Print the diff and the commands; change nothing "
                                                          "(Ansible check mode).")


def _report(boot_plan, dry_run: bool, output: Format, verb: str) -> int:
    import sys

    from ..render import message
    from .context import carry_out

    if carry_out(host(), boot_plan, dry_run, output, f"iommu {verb}", describe=False):
        return 0
    if dry_run:
        sys.stdout.write(boot_plan.diff())
        for argv in boot_plan.commands:
            message(f"would run: {' '.join(argv)}")
    what = ", ".join(boot_plan.added if verb == "enable" else boot_plan.removed)
    if boot_plan.changed:
        done = "would change" if dry_run else ("added" if verb == "enable" else "removed")
        message(f"{done}: {what or 'nothing'} ({boot_plan.stack}: {', '.join(sorted(boot_plan.files)) or 'grubby'})",
                "ok")
    else:
        where = f" ({boot_plan.stack})" if boot_plan.stack != "none" else ""  # the notes said why
        message(f"nothing to change{where}" + (f": {', '.join(boot_plan.present)} already configured"
                                               if boot_plan.present else ""))
    if boot_plan.reboot_required:
        message("reboot required: the running kernel does not have these arguments yet ('hostdev check' says "
                "'reboot pending' until then)", "warn")
    return 0


@app.command("enable")
@command
def enable(
    passthrough: bool = typer.Option(False, "--passthrough", help="Also add iommu=pt (host devices skip "
                                                                  "translation; DMA for VMs is unchanged)."),
    arg: Optional[List[str]] = typer.Option(None, "--arg", metavar="K=V", help="Another kernel argument to add, "
                                            "e.g. vfio-pci.ids=10de:1eb8 (repeatable)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an argument configured with another value "
                                                          "(intel_iommu=off)."),
    force: bool = typer.Option(False, "--force", help="Write the arguments even on a virtual machine without a "
                                                      "virtual IOMMU (they do nothing until the hypervisor adds "
                                                      "one)."),
    dry_run: bool = DryRunOption,
    output: Format = OutputOption,
) -> int:
    """Add the IOMMU kernel arguments to the boot configuration with its own tool (GRUB drop-in or
    /etc/default/grub + update-grub/grub2-mkconfig; grubby on BLS). Idempotent; reboot to apply. On a
    virtual machine without a virtual IOMMU nothing is written (and no reboot needed) unless --force."""
    from .. import bootargs

    set_output(output)
    h = host()
    args, notes = bootargs.decide_args(h, passthrough, arg or [], force)
    return _report(bootargs.plan_enable(h, args, replace, notes), dry_run, output, "enable")


@app.command("disable")
@command
def disable(dry_run: bool = DryRunOption, output: Format = OutputOption) -> int:
    """Remove exactly the kernel arguments 'hostdev iommu enable' added (nothing of the administrator's)."""
    from .. import bootargs

    set_output(output)
    return _report(bootargs.plan_disable(host()), dry_run, output, "disable")
