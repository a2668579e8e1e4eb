"""hostdev inventory: what the KubeVirt generators need from this host, as JSON."""

from typing import List, Optional

import typer

from ..render import Format
from .context import command, host, hwdb, output_option, set_output


@command
def inventory(
    label: Optional[List[str]] = typer.Option(None, "--label", metavar="KEY=VALUE",
                                              help="A node label of this host (repeatable)."),
    hostname: Optional[str] = typer.Option(None, "--hostname", help="The node name (default: the host's name)."),
    pci_ids: Optional[str] = typer.Option(None, "--pci-ids", metavar="FILE", help="Name devices from this pci.ids."),
    output: Format = output_option(Format.json, "json, yaml, or table (a summary)."),
) -> int:
    """This host's devices, IOMMU groups, mdev types, mdevs, pci.ids version and labels, for
    hostdev kubevirt merge."""
    from .. import inventory as inv
    from .. import rules
    from ..kubevirt import parse_key_values
    from ..render import emit, table

    set_output(output)
    labels = parse_key_values(label or [], "--label")
    h = host()
    names, names_info = inv.load_pci_ids(h, pci_ids)
    data = inv.collect(h, names, names_info, labels, hostname, hwdb=hwdb(h))
    if not emit(data, output):
        table(["field", "value"], [
            ["hostname", data["hostname"]],
            ["labels", ",".join(f"{k}={v}" for k, v in data["labels"].items()) or None],
            ["pci.ids", " ".join(filter(None, [names_info["path"], names_info["version"]])) or None],
            ["devices", len(data["devices"])],
            ["on vfio", sum(1 for d in data["devices"] if rules.is_vfio_driver(d["driver"]))],
            ["iommu groups", len(data["iommu_groups"])],
            ["mdev parents", len(data["mdev_types"])],
            ["mdevs", len(data["mdevs"])],
        ])
    return 0
