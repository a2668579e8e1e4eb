"""hostdev check [ADDR...]: is this host (or each device) ready for passthrough? Exit 0 ready,
1 not ready."""

from typing import List, Optional

import typer

from ..render import Format
from .context import OutputOption, command, complete_address, host, set_output

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


@command
def check(
    addresses: Optional[List[str]] = typer.Argument(None, metavar="[ADDR]...", autocompletion=complete_address,
                                                    help="Check these devices instead of the host: BARs against "
                                                         "the guest's MMIO window, reset, boot driver, power, "
                                                         "NUMA, option ROM, IOMMU group."),
    stack: str = typer.Option("kubevirt", "--stack", metavar="kubevirt|libvirt",
                              help="Whose settings the fixes name (the VM spec or the domain XML)."),
    per_vm: int = typer.Option(1, "--per-vm", min=1, metavar="N",
                               help="How many such devices one VM gets (the MMIO window grows with them)."),
    output: Format = OutputOption,
) -> int:
    """Check CPU virtualization, the IOMMU, kernel arguments, vfio and IOMMU-group viability;
    with ADDR, whether each device will work in a VM."""
    from ..errors import EXIT_NOT_READY, EXIT_OK, UsageError
    from ..readiness import STACKS
    from ..render import emit, message

    set_output(output)
    if stack not in STACKS:
        raise UsageError(f"invalid --stack {stack!r}", fix=f"use one of {', '.join(STACKS)}")
    h = host()
    if addresses:
        from .. import pci
        from ..readiness import assess

        devices = [pci.get_device(h, a) for a in addresses]
        results = assess(h, devices, stack, per_vm)
        ready = all(r.ready for r in results)
        if not emit({"ready": ready, "devices": [r.to_dict() for r in results]}, output):
            for r in results:
                _rows(r.checks, title=f"{r.address}: {'ready' if r.ready else 'NOT ready'}")
            message("every device is ready for a VM" if ready else "a device is NOT ready for a VM",
                    "ok" if ready else "error")
        return EXIT_OK if ready else EXIT_NOT_READY
    from ..checks import run_checks, vfio_readiness

    report = run_checks(h)
    summary, results = vfio_readiness(h, stack)
    checks = report.checks + ((summary,) if summary else ())
    data = {**report._replace(checks=checks).to_dict(), "devices": [r.to_dict() for r in results]}
    if not emit(data, output):
        _rows(checks)
        message("host is ready for passthrough" if report.ready else "host is NOT ready for passthrough",
                "ok" if report.ready else "error")
    return EXIT_OK if report.ready else EXIT_NOT_READY


def _rows(checks, title: Optional[str] = None) -> None:
    from ..render import message, table

    table(["status", "check", "summary"], [[_MARK[c.status], c.id, c.summary] for c in checks], title=title)
    for c in checks:
        if c.fix and c.status in ("fail", "warn"):
            message(f"{_MARK[c.status]} {c.id}: {c.fix}", c.status)
