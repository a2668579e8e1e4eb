"""hostdev devices [list filters] / hostdev devices show ADDR."""

from typing import Optional

import typer

from ..render import Format
from . import listing
from .context import OutputOption, command, complete_address, host, note_names, pci_names, set_output

app = typer.Typer(help="List PCI functions (like lspci -Dnnk, with IOMMU groups and SR-IOV).",
                  invoke_without_command=True, no_args_is_help=False)

PciIdsOption = typer.Option(None, "--pci-ids", metavar="FILE",
                            help="Use this pci.ids instead of the host's (hwdata).")


@app.callback()
@command
def devices(
    ctx: typer.Context,
    vendor: Optional[str] = typer.Option(None, "--vendor", metavar="VENDOR",
                                         help="Only this vendor: its ID (10de) or its name in pci.ids (nvidia)."),
    device: Optional[str] = typer.Option(None, "--device", metavar="VVVV:DDDD", help="Only this ID (10de:1eb8)."),
    class_: Optional[str] = typer.Option(None, "--class", metavar="CLASS",
                                         help="gpu, net, storage, accel, usb, or a hex class code."),
    driver: Optional[str] = typer.Option(None, "--driver", metavar="NAME",
                                         help="Only devices on this driver ('none' for unbound)."),
    iommu_group: Optional[int] = typer.Option(None, "--iommu-group", metavar="N", help="Only this IOMMU group."),
    pci_ids: Optional[str] = PciIdsOption,
    output: Format = OutputOption,
) -> int:
    """List every PCI function with IDs, names, driver, IOMMU group and SR-IOV role."""
    if ctx.invoked_subcommand is not None:
        return 0
    # the same code as the fast path in front of typer (cli/listing.py, tried by cli/main.py)
    set_output(output)
    names = pci_names(pci_ids, note=False)
    listing.show(listing.select(host(), names, vendor, device, class_, driver, iommu_group, note=note_names), output)
    return 0


@app.command("show")
@command
def show(
    address: str = typer.Argument(..., metavar="ADDR", help="PCI address, 0000:65:00.0 or 65:00.0.",
                                  autocompletion=complete_address),
    pci_ids: Optional[str] = PciIdsOption,
    output: Format = OutputOption,
) -> int:
    """Everything about one device, including the other members of its IOMMU group."""
    from .. import pci
    from ..render import emit, table

    set_output(output)
    h = host()
    pci.get_device(h, address)  # a bad or absent address is refused before any note about names
    dev = pci.get_device(h, address, pci_names(pci_ids))
    siblings = []
    if dev.iommu_group is not None:
        for member in pci.group_members(h, dev.iommu_group):
            other = pci.read_device(h, member)
            siblings.append({"address": member, "vendor_id": other.vendor_id if other else None,
                             "device_id": other.device_id if other else None,
                             "class_id": other.class_id if other else None,
                             "driver": other.driver if other
                             else h.link_name(f"/sys/bus/mdev/devices/{member}/driver")})
    extra = pci.device_extras(h, dev.address)
    from ..readiness import assess

    [ready] = assess(h, [dev])
    data = {"device": dev.to_dict(), **extra,
            "iommu_group": {"id": dev.iommu_group, "devices": siblings} if dev.iommu_group is not None else None,
            "readiness": ready.to_dict()}
    if not emit(data, output):
        rows = [[k, v] for k, v in dev.to_dict().items() if k != "sriov"]
        rows.append(["sriov", listing.sriov_cell(dev)])
        rows.extend([k, v] for k, v in extra.items())
        table(["field", "value"], rows)
        if siblings:
            table(["group member", "id", "class", "driver"],
                  [[s["address"], f"{s['vendor_id']}:{s['device_id']}" if s["vendor_id"] else "-", s["class_id"],
                    s["driver"]] for s in siblings])
        table(["readiness", "check", "summary"], [[c.status.upper(), c.id, c.summary] for c in ready.checks],
              title="hostdev check " + dev.address)
    return 0
