"""hostdev mdev types / list / create / remove."""

from typing import List, Optional

import typer

from ..render import Format
from .context import OutputOption, apply_plan, command, complete_address, host, set_output

app = typer.Typer(help="Mediated devices (vGPUs): types, instances, create and remove.", no_args_is_help=True)

DryRunOption = typer.Option(False, "--dry-run", "-n", help="Print the plan; change nothing.")


@app.command("types")
@command
def types(
    parents: Optional[List[str]] = typer.Argument(None, metavar="[PARENT...]", autocompletion=complete_address,
                                                  help="Parents (PCI address or mdev_bus name); default all."),
    name: Optional[str] = typer.Option(None, "--name", help='Only types with this name ("GRID T4-2A"; '
                                                             "KubeVirt's spaces-to-_ form matches too)."),
    output: Format = OutputOption,
) -> int:
    """The mdev types each parent offers (mdev_supported_types), and NVIDIA vGPU types on SR-IOV VFs."""
    from .. import mdev
    from ..errors import UsageError
    from ..render import emit, table

    set_output(output)
    h = host()
    found = []
    vf_types = mdev.nvidia_vf_types(h)
    known = mdev.parents(h)
    wanted = parents or (known + sorted(vf_types))
    for parent in wanted:
        if parent in known:
            offered, interface = mdev.types(h, parent), "mdev"
        elif parent in vf_types:
            offered, interface = vf_types[parent], "nvidia-vf"
        else:
            raise UsageError(f"{parent} offers no mdev types",
                             fix=f"parents here: {', '.join(known + sorted(vf_types)) or 'none'}")
        if name is not None:
            offered = [t for t in offered if mdev.matches_name(t, name)]
            if not offered:
                continue
        found.append({"address": parent, "interface": interface, "types": [t.to_dict() for t in offered]})
    if name is not None and not found:
        raise UsageError(f"no mdev type is named {name!r} on this host",
                         fix="run 'hostdev mdev types' to see the names")
    if not emit({"parents": found}, output):
        table(["parent", "type", "name", "available", "api", "interface"],
              [[p["address"], t["id"], t["name"], t["available_instances"], t["device_api"], p["interface"]]
               for p in found for t in p["types"]])
    return 0


@app.command("list")
@command
def list_(output: Format = OutputOption) -> int:
    """Existing mdevs, and those mdevctl has defined (persistent) but that are not running."""
    from .. import mdev
    from ..render import emit, table

    set_output(output)
    h = host()
    defined = mdev.definitions(h)
    rows = []
    for m in mdev.list_mdevs(h):
        d = defined.get(m.uuid)
        rows.append({**m.to_dict(), "active": True, "persistent": d is not None,
                     "autostart": d is not None and d.start == "auto"})
    active = {r["uuid"] for r in rows}
    for d in sorted(defined.values()):
        if d.uuid not in active:
            rows.append({"uuid": d.uuid, "parent": d.parent, "type_id": d.type_id, "type_name": None,
                         "iommu_group": None, "driver": None, "active": False, "persistent": True,
                         "autostart": d.start == "auto"})
    if not emit({"mdevs": rows}, output):
        table(["uuid", "parent", "type", "name", "group", "active", "persistent"],
              [[r["uuid"], r["parent"], r["type_id"], r["type_name"], r["iommu_group"], r["active"], r["persistent"]]
               for r in rows])
    return 0


def _apply(plan, values, dry_run: bool, output: Format, verb: str) -> int:
    from ..render import emit, message

    h = host()
    if not dry_run and plan.changes:
        apply_plan(h, plan, f"mdev {verb}")
    if not emit(plan.result(dry_run, changed=plan.changes, reboot_required=False, uuids=values), output):
        for action in plan.describe():
            message(("would: " if dry_run else "done: ") + action["action"])
        for value in values:
            typer.echo(value)
    return 0


@app.command("create")
@command
def create(
    parent: str = typer.Option(..., "--parent", metavar="PARENT", autocompletion=complete_address,
                               help="Parent device (PCI address or mdev_bus name)."),
    type_id: Optional[str] = typer.Option(None, "--type", metavar="TYPE", help="Type id (nvidia-226, mtty-2)."),
    name: Optional[str] = typer.Option(None, "--name", help='Type name ("GRID T4-2A").'),
    uuid: Optional[List[str]] = typer.Option(None, "--uuid", help="UUID to use (repeatable); default random."),
    count: int = typer.Option(1, "--count", min=1, help="How many mdevs."),
    persist: bool = typer.Option(False, "--persist", help="Also write mdevctl definitions (start at boot)."),
    dry_run: bool = DryRunOption,
    output: Format = OutputOption,
) -> int:
    """Create mdevs of one type on one parent; print their UUIDs."""
    from .. import mdev
    from ..errors import UsageError

    set_output(output)
    if (type_id is None) == (name is None):
        raise UsageError("give exactly one of --type and --name", fix="hostdev mdev types lists both")
    plan, values = mdev.plan_create(host(), parent, type_id, name, uuid or (), count, persist)
    return _apply(plan, values, dry_run, output, "create")


@app.command("remove")
@command
def remove(
    uuids: Optional[List[str]] = typer.Argument(None, metavar="UUID..."),
    parent: Optional[str] = typer.Option(None, "--parent", metavar="PARENT", help="Every mdev of this parent."),
    dry_run: bool = DryRunOption,
    output: Format = OutputOption,
) -> int:
    """Remove mdevs (refused while a VM has one open) and their mdevctl definitions."""
    from .. import mdev

    set_output(output)
    plan, values = mdev.plan_remove(host(), uuids or (), parent)
    return _apply(plan, values, dry_run, output, "remove")
