"""``hostdev devices`` (the listing) without typer: the command's code, which cli/devices.py's
typer callback runs, and a fast path in front of typer (cli/main.py tries it first) for the plain
forms of the line, ``hostdev [--root DIR] [-o FMT] devices [FILTERS] [-o FMT]``, so that a listing
costs the interpreter, the domain modules and the scan, not typer's start-up (docs/benchmarks.md).

Any other line goes to the typer app unchanged: help, an option or value the fast path does not
take exactly as written here (``-ojson``, ``JSON``, a value that starts with ``-``, ``--``), a
subcommand, a recording or anything but a directory as the root, a host without pci.ids (the typer
path prints the note about it), and any exception that is not a HostdevError (a bug: the typer path
runs again and reports it). Imports neither typer, click nor rich (a table on a terminal draws
with rich, as in the typer path)."""

from __future__ import annotations

import gc
import os
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

from ..render import Format, emit, table

# The options the fast path reads, by name → parameter, as cli/app.py (before the command) and
# cli/devices.py declare them; tests/test_listing.py compares them with the command index.
GLOBAL_OPTIONS = {"--root": "root", "--output": "output", "-o": "output"}
DEVICES_OPTIONS = {"--vendor": "vendor", "--device": "device", "--class": "class_", "--driver": "driver",
                   "--iommu-group": "iommu_group", "--pci-ids": "pci_ids", "--output": "output", "-o": "output"}
FORMATS = {f.value: f for f in Format}


def label(dev) -> str:
    """The NAME column: the vendor's short name (or ID) and the device's name (or ID)."""
    from ..pciids import short_vendor

    vendor = short_vendor(dev.vendor_name) if dev.vendor_name else dev.vendor_id
    return f"{vendor} {dev.device_name or dev.device_id}"


def sriov_cell(dev) -> str:
    """The SR-IOV column: ``PF num/total``, ``VF of ADDR`` or ``-``."""
    if not dev.sriov:
        return "-"
    if dev.sriov.role == "pf":
        return f"PF {dev.sriov.num_vfs}/{dev.sriov.total_vfs}"
    return f"VF of {dev.sriov.physfn}"


def select(h, names, vendor: Optional[str] = None, device: Optional[str] = None, class_: Optional[str] = None,
           driver: Optional[str] = None, iommu_group: Optional[int] = None,
           note: Callable[[object], None] = lambda names: None) -> list:
    """The functions ``hostdev devices`` lists: pci.list_devices under the filters (pci.DeviceFilter).
    ``note(names)`` runs once the filters are accepted (an error comes alone). Raises UsageError."""
    from .. import pci

    wanted = pci.DeviceFilter.parse(vendor, device, class_, driver, iommu_group, names)
    note(names)
    return [d for d in pci.list_devices(h, names) if wanted.matches(d)]


def show(found: list, output: Format) -> None:
    """The listing on stdout: json/yaml ({"devices": [...]}, docs/json.md) or the table."""
    if not emit({"devices": [d.to_dict() for d in found]}, output):
        table(["address", "id", "class", "name", "driver", "group", "sr-iov"],
              [[d.address, d.pci_id, d.class_name or d.class_id, label(d), d.driver, d.iommu_group, sriov_cell(d)]
               for d in found])


def parse(argv: Sequence[str]) -> Optional[Dict[str, Union[str, int, None]]]:
    """The parameters of a plain ``devices`` line (see the module's docstring): root, output (the
    command's, else the one before it), the filters and pci_ids; None for any other line."""
    given: Dict[str, Union[str, int, None]] = {}
    before: Optional[str] = None  # -o given before the command
    options = GLOBAL_OPTIONS
    words = iter(argv)
    for word in words:
        if options is GLOBAL_OPTIONS and word == "devices":
            options = DEVICES_OPTIONS
            continue
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        param = options.get(name)
        if param is None:
            return None
        if not eq:
            value = next(words, None)
            if value is None or value.startswith("-"):
                return None
        if param == "output" and value not in FORMATS:
            return None
        if param == "iommu_group":
            if not (value.isascii() and value.isdigit()):
                return None
            given[param] = int(value)
        elif param == "output" and options is GLOBAL_OPTIONS:
            before = value
        else:
            given[param] = value
    if options is GLOBAL_OPTIONS:
        return None  # not the devices command
    given["output"] = given.get("output") or before or Format.table.value
    return given


def fast_main(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Optional[int]:
    """Run a plain ``devices`` line (``argv`` after the program name) as the typer path would,
    to the byte; its exit code, or None for a line the typer app must run."""
    given = parse(argv)
    if given is None:
        return None
    root = given.pop("root", None)
    if root is None:
        root = environ.get("HOSTDEV_ROOT")  # as typer's envvar: unset or empty is no --root
        if root == "":
            return None
    if root is not None and not os.path.isdir(root):
        return None
    from .. import pciids
    from ..errors import HostdevError
    from ..host import host_from_env
    from ..render import error
    from ..signals import signals_roll_back
    from .main import output_failed

    output = FORMATS[str(given.pop("output"))]
    pci_ids = given.pop("pci_ids", None)
    try:
        with signals_roll_back():  # as cli/context.py's command: Ctrl-C is an Interrupted error
            h = host_from_env(root)
            names = pciids.load(h, str(pci_ids) if pci_ids is not None else None)
            if names.path is None:
                return None
            # a listing makes ~40 objects a function and no reference cycles: the cyclic
            # collector's passes over them are pure cost (5% of a 4,096-function listing)
            collecting = gc.isenabled()
            gc.disable()
            try:
                show(select(h, names, **given), output)  # type: ignore[arg-type]
            finally:
                if collecting:
                    gc.enable()
    except HostdevError as exc:
        error(exc, output)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: the typer path runs again and reports it as one
        failed = output_failed(exc)
        if failed is None:
            return None
        error(failed, output)  # stdout could not be written (a full disk): as the typer path says it
        return failed.exit_code
    return 0

