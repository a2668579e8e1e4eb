"""hostdev check: is this host ready for passthrough? Exit 0 ready, 1 not ready."""


from ..render import Format
from .context import OutputOption, command, host, set_output

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


@command
def check(output: Format = OutputOption) -> int:
    """Check CPU virtualization, the IOMMU, kernel arguments, vfio and IOMMU-group viability."""
    from ..checks import run_checks
    from ..errors import EXIT_NOT_READY, EXIT_OK
    from ..render import emit, message, table

    set_output(output)
    report = run_checks(host())
    if not emit(report.to_dict(), output):
        table(["status", "check", "summary"], [[_MARK[c.status], c.id, c.summary] for c in report.checks])
        for c in report.checks:
            if c.fix and c.status in ("fail", "warn"):
                message(f"{_MARK[c.status]} {c.id}: {c.fix}", c.status)
        message("host is ready for passthrough" if report.ready else "host is NOT ready for passthrough",
                "ok" if report.ready else "error")
    return EXIT_OK if report.ready else EXIT_NOT_READY
