"""hostdev iommu groups (later: enable / disable)."""

import typer

from ..render import Format
from .context import OutputOption, command, host, set_output

app = typer.Typer(help="IOMMU groups and the IOMMU kernel arguments.", no_args_is_help=True)


@app.command("groups")
@command
def groups(output: Format = OutputOption) -> int:
    """List IOMMU groups and their member devices (a group is assigned to a VM whole)."""
    from .. import pci
    from ..render import emit, table

    set_output(output)
    h = host()
    found = pci.iommu_groups(h)
    if emit({"groups": [g.to_dict() for g in found]}, output):
        return 0
    devices = {d.address: d for d in pci.list_devices(h)}
    rows = []
    for group in found:
        for member in group.devices:
            dev = devices.get(member)
            rows.append([group.id, member, dev.pci_id if dev else "-", dev.class_id if dev else "mdev",
                         dev.driver if dev else h.link_name(f"/sys/bus/mdev/devices/{member}/driver")])
    table(["group", "address", "id", "class", "driver"], rows)
    return 0
