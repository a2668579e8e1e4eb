"""hostdev apply PROFILE.yaml: the declarative host profile (for Ansible and people alike)."""

import typer

from ..render import Format
from .context import OutputOption, carry_out, command, host, planning, set_output


@command
def apply(
    profile: str = typer.Argument(..., metavar="PROFILE.yaml", help="The host profile ('-': standard input)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing (Ansible check mode)."),
    output: Format = OutputOption,
) -> int:
    """Bring the host to a profile (IOMMU arguments, modules, bindings, mdevs) in one idempotent plan;
    reports changed and reboot_required."""
    import sys

    from .. import profile as profiles
    from ..documents import MAX_BYTES
    from ..render import message, table

    set_output(output)
    h = host()
    wanted = (profiles.parse_profile(sys.stdin.read(MAX_BYTES + 1), "standard input") if profile == "-"
              else profiles.load_profile_file(profile))
    with planning(h, dry_run, "apply"):
        planned = profiles.plan_profile(h, wanted)
        written = carry_out(h, planned, dry_run, output, "apply")
    if not written:
        table(["section", "changed"], [[s["section"], ("would change" if dry_run else "changed") if s["changed"]
                                        else "no"] for s in planned.sections])
        if planned.reboot_required:
            message("reboot required: the boot configuration has arguments the running kernel lacks", "warn")
    return 0
