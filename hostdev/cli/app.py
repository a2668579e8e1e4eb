"""The typer application and the entry point that renders errors once."""

import sys
from typing import Optional

import typer

from .. import __version__
from ..errors import HostdevError
from . import apply as apply_cmd
from . import binding as binding_cmd
from . import check as check_cmd
from . import devices as devices_cmd
from . import inventory as inventory_cmd
from . import iommu as iommu_cmd
from . import kubevirt as kubevirt_cmd
from . import mdev as mdev_cmd
from . import modules as modules_cmd
from . import sriov as sriov_cmd
from . import vm as vm_cmd
from .context import render_error, set_root

app = typer.Typer(
    name="hostdev",
    help="Prepare Linux hosts for PCI and mediated-device passthrough (KubeVirt, libvirt).",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"hostdev {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    root: Optional[str] = typer.Option(None, "--root", envvar="HOSTDEV_ROOT", metavar="PATH",
                                       help="Act on the tree under PATH instead of / (env HOSTDEV_ROOT)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    try:
        ctx.obj = set_root(root)
    except HostdevError as exc:
        render_error(exc)
        raise typer.Exit(exc.exit_code) from None


app.add_typer(devices_cmd.app, name="devices")
app.add_typer(iommu_cmd.app, name="iommu")
app.add_typer(kubevirt_cmd.app, name="kubevirt")
app.add_typer(mdev_cmd.app, name="mdev")
app.add_typer(modules_cmd.app, name="modules")
app.add_typer(sriov_cmd.app, name="sriov")
app.add_typer(vm_cmd.app, name="vm")
app.command("check")(check_cmd.check)
app.command("bind")(binding_cmd.bind)
app.command("unbind")(binding_cmd.unbind)
app.command("restore")(binding_cmd.restore)
app.command("bindings")(binding_cmd.bindings)
app.command("inventory")(inventory_cmd.inventory)
app.command("apply")(apply_cmd.apply)


def main() -> None:
    """The console-script entry point."""
    app(prog_name="hostdev")
