"""hostdev record FILE: this host (or --root) as one file that --root FILE opens."""

import typer

from ..render import Format
from .context import OutputOption, command, host, set_output


@command
def record(
    file: str = typer.Argument(..., metavar="FILE", help="The new file (a gzip tar); refused when it exists."),
    output: Format = OutputOption,
) -> int:
    """Record what hostdev reads of this host (the PCI, IOMMU and mdev parts of sysfs, the
    relevant /proc and /etc files, pci.ids) into one file, read-only towards the host; 'hostdev
    --root FILE COMMAND' then answers as on the host (for a bug report, or KubeVirt planning
    away from the host). Changes nothing; needs no root (sysfs is world-readable)."""
    import json
    import time

    from .. import __version__, recording
    from ..errors import UsageError
    from ..host import write_archive
    from ..render import emit, message

    set_output(output)
    problem = recording.refuse_destination(file)
    if problem:
        raise UsageError(f"{problem}: {file}", fix="name a file in a directory of your own")
    h = host()
    members = recording.record(h)
    manifest = json.dumps({"format": recording.FORMAT, "hostdev": __version__,
                           "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "root": h.root if not h.is_live else "/"}, indent=2) + "\n"
    try:
        size = write_archive(file, recording.archive_members(members, manifest.encode()))
    except FileExistsError:
        raise UsageError(f"{file} exists", fix="name a new file (hostdev record never overwrites)") from None
    except OSError as exc:
        raise UsageError(f"cannot write {file}: {exc.strerror or exc}", fix="name a file in a writable directory") \
            from None
    result = {"file": file, "functions": recording.functions(members), "members": len(members), "bytes": size}
    if not emit(result, output):
        message(f"recorded {result['functions']} PCI functions ({result['members']} files, {size} bytes) "
                f"into {file}; open it with: hostdev --root {file} COMMAND")
    return 0
