"""hostdev sriov enable / disable."""

from typing import Optional

import typer

from ..render import Format
from .context import OutputOption, carry_out, command, complete_address, host, set_output

app = typer.Typer(help="SR-IOV virtual functions: enable and disable them on a physical function.",
                  no_args_is_help=True)

DryRunOption = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing (Ansible check mode).")
ForceOption = typer.Option(False, "--force", help="Override the safety interlocks on VFs that are removed or bound "
                                                  "(a routed VF netdev, a mounted disk).")
PfArg = typer.Argument(..., metavar="PF", help="The physical function (0000:31:00.0 or 31:00.0).",
                       autocompletion=complete_address)


def _run(sriov_plan, dry_run: bool, output: Format, verb: str) -> int:
    from ..render import table

    if not carry_out(host(), sriov_plan, dry_run, output, f"sriov {verb}"):
        done = ("would change" if dry_run else "changed") if sriov_plan.changed else "no"
        rows = [[sriov_plan.pf, "pf", f"{sriov_plan.before} VFs", f"{sriov_plan.after} VFs", done]]
        bound = {d.address: d for d in sriov_plan.devices}
        for vf in sriov_plan.vfs:
            change = bound.get(vf)
            if change is None:
                rows.append([vf, "vf", "", "", ""])
            else:
                rows.append([vf, "vf", change.before or "none", change.after or "none",
                             ("would change" if dry_run else "changed") if change.changed else (change.note or "no")])
        table(["device", "role", "from", "to", "changed"], rows)
    return 0


@app.command("enable")
@command
def enable(
    pf: str = PfArg,
    vfs: int = typer.Option(..., "--vfs", metavar="N", help="How many VFs the PF should have (1 to sriov_totalvfs)."),
    bind: Optional[str] = typer.Option(None, "--bind", metavar="DRIVER",
                                       help="Then bind every VF to DRIVER (vfio-pci); 'hostdev restore' undoes it."),
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Give a PF exactly N VFs (writes 0 first when changing a non-zero count), optionally bound to vfio-pci."""
    from .. import sriov

    set_output(output)
    return _run(sriov.plan_enable(host(), pf, vfs, bind, force), dry_run, output, "enable")


@app.command("disable")
@command
def disable(
    pf: str = PfArg,
    dry_run: bool = DryRunOption,
    force: bool = ForceOption,
    output: Format = OutputOption,
) -> int:
    """Remove every VF of a PF (refused while a VM holds one)."""
    from .. import sriov

    set_output(output)
    return _run(sriov.plan_disable(host(), pf, force), dry_run, output, "disable")
