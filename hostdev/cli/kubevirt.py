"""hostdev kubevirt permitted / merge / vmi: KubeVirt CR snippets from the real host or from
inventories (docs/kubevirt.md)."""

from typing import List, Optional, Tuple

import typer

from ..render import Format
from .context import command, complete_address, host, hwdb, output_option, set_output

app = typer.Typer(help="KubeVirt output: permittedHostDevices, mdev configuration, VMI device blocks.",
                  no_args_is_help=True)

YamlOutputOption = output_option(Format.yaml, "yaml (the document; notes on stderr) or json ({format, document, "
                                                "notes}).")
FORMAT_HELP = ("cr (a kind: KubeVirt manifest), json-patch (kubectl patch --type json) or patch (--type merge), "
               "both built with --merge-with the cluster's CR, snippet (permittedHostDevices alone).")


def _fail_table(output: Format) -> None:
    from ..errors import UsageError

    if output == Format.table:
        raise UsageError("-o table is not available here", fix="use -o yaml (the default) or -o json")


def _emit(doc, fmt: str, output: Format) -> None:
    from ..render import emit, message

    if output == Format.json:
        emit({"format": fmt, "document": doc.data, "notes": doc.notes}, output)
        for note in doc.notes:
            message(note, "warn" if note.startswith("warning") else None)
        return
    for note in doc.notes:
        message(note, "warn" if note.startswith("warning") else None)
    emit(doc.data, output)


def _generate(inventory_files: List[str], addresses: List[str], device: List[str], vendor: Optional[str],
              class_: Optional[str], mdev_names: List[str], all_mdev_types: bool, pci_ids: Optional[str],
              fmt: str, name: str, namespace: str, merge_with: Optional[str], naming: Optional[str],
              resource_name: List[str], external: bool, mdev_config: bool, node_selector: List[str],
              output: Format) -> int:
    from .. import inventory, kubevirt, pci, pciids
    from ..errors import UsageError
    from ..host import read_document

    set_output(output)
    _fail_table(output)
    if fmt not in kubevirt.FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", fix=f"use one of {', '.join(kubevirt.FORMATS)}")
    if naming is not None and naming not in kubevirt.NAMINGS:
        raise UsageError(f"unknown --naming {naming!r}", fix=f"use one of {', '.join(kubevirt.NAMINGS)}")
    if node_selector and not mdev_config:
        raise UsageError("--node-selector only shapes --mdev-config", fix="add --mdev-config")
    if node_selector and inventory_files:
        raise UsageError("--node-selector is for one host; inventories carry their node labels",
                         fix="give each host's labels to hostdev inventory --label KEY=VALUE")
    sel = kubevirt.Selection(
        addresses=tuple(str(pci.PciAddress.parse(a)) for a in addresses),
        device_ids=tuple(pci.parse_pci_id(d) for d in device),
        vendor=pci.parse_vendor(vendor, pciids.load(host(), pci_ids)) if vendor else None,
        class_prefixes=pci.parse_class(class_) if class_ else None,
        mdev_names=tuple(mdev_names), all_mdev_types=all_mdev_types)
    opts = kubevirt.Options(naming=naming, external=external, overrides=kubevirt.parse_overrides(resource_name),
                            mdev_config=mdev_config,
                            node_selector=kubevirt.parse_key_values(node_selector, "--node-selector")
                            if node_selector else None)
    existing = None
    if merge_with:
        text = read_document(merge_with, "--merge-with",
                             fix="save it: kubectl get kubevirt -n kubevirt kubevirt -o yaml > kv.yaml")
        existing = kubevirt.read_existing(text, merge_with)
    if inventory_files:
        inventories = inventory.load(inventory_files)
        names, names_info = (inventory.load_pci_ids(host(), pci_ids) if pci_ids else (None, None))
        result = kubevirt.build(inventories, sel, opts, names, names_info)
    else:
        h = host()
        names, names_info = inventory.load_pci_ids(h, pci_ids)
        inv = inventory.collect(h, names, names_info, name=inventory.hostname(h) or "this host", hwdb=hwdb(h))
        result = kubevirt.build([inv], sel, opts, names, names_info)
    doc = kubevirt.render(result, fmt, name=name, namespace=namespace, existing=existing)
    if not inventory_files:
        # a permitted device whose BARs need a larger MMIO window than a VM gets by default
        from ..readiness import mmio_warnings

        doc.notes.extend(mmio_warnings(host(), {e.selector: 1 for e in result.entries if e.kind == "pci"}))
    _emit(doc, fmt, output)
    return 0


AddressesArg = typer.Argument(None, metavar="[ADDR...]", autocompletion=complete_address,
                              help="PCI addresses to permit (their vendor:device IDs).")
DeviceOption = typer.Option(None, "--device", metavar="VVVV:DDDD", help="Permit this ID (repeatable).")
VendorOption = typer.Option(None, "--vendor", metavar="VENDOR", help="Every device of this vendor (no bridges): its "
                                                                   "ID (10de) or its name in pci.ids (nvidia).")
ClassOption = typer.Option(None, "--class", metavar="CLASS", help="gpu, net, storage, accel, usb or a hex class.")
MdevOption = typer.Option(None, "--mdev", metavar="TYPE",
                          help='An mdev type by name ("GRID T4-1Q") or id (repeatable).')
AllMdevOption = typer.Option(False, "--all-mdev-types", help="Every mdev type the parents offer.")
InventoryOption = typer.Option(None, "--inventory", metavar="FILE",
                               help="Build from this host inventory (hostdev inventory -o json; repeatable).")
PciIdsOption = typer.Option(None, "--pci-ids", metavar="FILE", help="Name devices from this pci.ids.")
FormatOption = typer.Option("cr", "--format", "-f", metavar="FORMAT", help=FORMAT_HELP)
NameOption = typer.Option("kubevirt", "--name", help="metadata.name of the KubeVirt CR (cr format).")
NamespaceOption = typer.Option("kubevirt", "--namespace", help="metadata.namespace of the KubeVirt CR.")
MergeOption = typer.Option(None, "--merge-with", metavar="FILE",
                           help="The cluster's CR (kubectl get kubevirt -n kubevirt kubevirt -o yaml) or a snippet: "
                                "keep its entries, add the new ones, report unknown keys. Needed by the patch formats.")
NamingOption = typer.Option(None, "--naming", metavar="MODE",
                            help="The device plugin that advertises the devices: nvidia (NVIDIA kubevirt-gpu-"
                                 "device-plugin >= v1.2.2; default for 10de with --external), nvidia-v1.2.1 "
                                 "(v1.2.0-v1.2.1), nvidia-v1.1.2 (v1.1.1-v1.1.2), nvidia-legacy (v1.0.x); "
                                 "kubevirt (KubeVirt's own plugin; default). The older modes read the whole "
                                 "pci.ids: pass the plugin image's with --pci-ids.")
ResourceNameOption = typer.Option(None, "--resource-name", metavar="SELECTOR=NAME",
                                  help="Name one selector yourself: 10DE:1EB8=nvidia.com/T4 (repeatable).")
ExternalOption = typer.Option(False, "--external/--no-external",
                              help="externalResourceProvider: another device plugin advertises the devices.")
MdevConfigOption = typer.Option(False, "--mdev-config", help="Also emit mediatedDevicesConfiguration.")
NodeSelectorOption = typer.Option(None, "--node-selector", metavar="KEY=VALUE",
                                  help="With --mdev-config: nodeMediatedDeviceTypes for nodes with this label.")


@app.command("permitted")
@command
def permitted(
    addresses: Optional[List[str]] = AddressesArg,
    device: Optional[List[str]] = DeviceOption,
    vendor: Optional[str] = VendorOption,
    class_: Optional[str] = ClassOption,
    mdev_names: Optional[List[str]] = MdevOption,
    all_mdev_types: bool = AllMdevOption,
    inventory_files: Optional[List[str]] = InventoryOption,
    pci_ids: Optional[str] = PciIdsOption,
    fmt: str = FormatOption,
    name: str = NameOption,
    namespace: str = NamespaceOption,
    merge_with: Optional[str] = MergeOption,
    naming: Optional[str] = NamingOption,
    resource_name: Optional[List[str]] = ResourceNameOption,
    external: bool = ExternalOption,
    mdev_config: bool = MdevConfigOption,
    node_selector: Optional[List[str]] = NodeSelectorOption,
    output: Format = YamlOutputOption,
) -> int:
    """permittedHostDevices for this host (default: devices on vfio-pci and existing mdevs) or for
    the hosts of --inventory files, as a CR, merge patch, JSON patch or snippet."""
    return _generate(inventory_files or [], addresses or [], device or [], vendor, class_, mdev_names or [],
                     all_mdev_types, pci_ids, fmt, name, namespace, merge_with, naming, resource_name or [],
                     external, mdev_config, node_selector or [], output)


@app.command("merge")
@command
def merge(
    inventory_files: List[str] = typer.Argument(..., metavar="INVENTORY...", help="Host inventories (JSON)."),
    device: Optional[List[str]] = DeviceOption,
    vendor: Optional[str] = VendorOption,
    class_: Optional[str] = ClassOption,
    mdev_names: Optional[List[str]] = MdevOption,
    all_mdev_types: bool = AllMdevOption,
    pci_ids: Optional[str] = PciIdsOption,
    fmt: str = FormatOption,
    name: str = NameOption,
    namespace: str = NamespaceOption,
    merge_with: Optional[str] = MergeOption,
    naming: Optional[str] = NamingOption,
    resource_name: Optional[List[str]] = ResourceNameOption,
    external: bool = ExternalOption,
    mdev_config: bool = MdevConfigOption,
    output: Format = YamlOutputOption,
) -> int:
    """One cluster CR from many host inventories: union of selectors, one name per selector
    (conflicts are errors), nodeMediatedDeviceTypes per node label."""
    return _generate(inventory_files, [], device or [], vendor, class_, mdev_names or [], all_mdev_types, pci_ids,
                     fmt, name, namespace, merge_with, naming, resource_name or [], external, mdev_config, [], output)


@app.command("vmi")
@command
def vmi(
    gpu: Optional[List[str]] = typer.Option(None, "--gpu", metavar="RESOURCE[:NAME]",
                                            help="A gpus entry for this resourceName (repeatable)."),
    hostdev: Optional[List[str]] = typer.Option(None, "--hostdev", metavar="RESOURCE[:NAME]",
                                                help="A hostDevices entry for this resourceName (repeatable)."),
    fmt: str = typer.Option("snippet", "--format", "-f", metavar="FORMAT",
                            help="snippet (spec.domain.devices), vmi or vm (a minimal manifest)."),
    vm_name: str = typer.Option("vm", "--vm-name", help="metadata.name for --format vmi/vm."),
    memory: str = typer.Option("4Gi", "--memory", help="Guest memory for --format vmi/vm."),
    no_check: bool = typer.Option(False, "--no-check", help="Do not compare the names with the resources this "
                                                            "host permits (a VM for another node)."),
    output: Format = YamlOutputOption,
) -> int:
    """The gpus/hostDevices block of a VMI (or a whole minimal VM) for permitted resources. The
    names are checked against what this host permits ('kubevirt permitted'): a name that differs
    from a permitted one in case or by a typo is refused, naming the permitted one."""
    from .. import kubevirt
    from ..errors import UsageError

    set_output(output)
    _fail_table(output)
    if not gpu and not hostdev:
        raise UsageError("no device given", fix="use --gpu RESOURCE[:NAME] or --hostdev RESOURCE[:NAME]")
    for option, texts in (("--gpu", gpu or []), ("--hostdev", hostdev or [])):
        for text in texts:
            _refuse_address(text, option)
    gpus = [kubevirt.parse_device_spec(g, "--gpu") for g in gpu or []]
    hostdevs = [kubevirt.parse_device_spec(d, "--hostdev") for d in hostdev or []]
    devices = kubevirt.vmi_devices(gpus, hostdevs)
    doc = kubevirt.vmi_document(devices, fmt, vm_name, memory)
    entries = _host_entries()
    if not no_check:
        doc.notes.extend(kubevirt.check_requested([r for r, _ in gpus + hostdevs],
                                                  sorted({e.resource_name for e in entries})))
    doc.notes.extend(_vmi_mmio_warnings(entries, [r for r, _ in gpus + hostdevs]))
    _emit(doc, fmt, output)
    return 0


def _host_entries(addresses: Tuple[str, ...] = ()) -> list:
    """What 'kubevirt permitted' permits on this host (its devices on vfio-pci and the types of
    its mdevs; with ``addresses``, those devices): kubevirt.Entry list, empty when it cannot tell."""
    from .. import inventory, kubevirt
    from ..errors import HostdevError

    h = host()
    try:
        names, names_info = inventory.load_pci_ids(h, None)
        inv = inventory.collect(h, names, names_info, name=inventory.hostname(h) or "this host", hwdb=hwdb(h))
        return list(kubevirt.build([inv], kubevirt.Selection(addresses=addresses), kubevirt.Options(), names,
                                   names_info).entries)
    except HostdevError:
        return []     # nothing on vfio-pci here: this host cannot tell


def _refuse_address(text: str, option: str) -> None:
    """A PCI address where a resource name belongs (--gpu 0000:65:00.0): a UsageError naming the
    resource 'kubevirt permitted' gives that device on this host."""
    from ..errors import UsageError
    from ..model import PciAddress

    try:
        address = str(PciAddress.parse(text.strip()))
    except UsageError:
        return
    named = [e.resource_name for e in _host_entries((address,)) if e.kind == "pci"]
    if named:
        raise UsageError(f"{option} {text} is a PCI address, not a resource name: 'kubevirt permitted' names that "
                         f"device {named[0]}", fix=f"use {option} {named[0]} (and permit it: hostdev kubevirt "
                                                   f"permitted {address})")
    raise UsageError(f"{option} {text} is a PCI address, not a resource name",
                     fix=f"use the resourceName 'hostdev kubevirt permitted {address}' gives the device, e.g. "
                         "nvidia.com/TU104GL_TESLA_T4")


def _vmi_mmio_warnings(entries: list, resources: List[str]) -> List[str]:
    """The MMIO-window warnings for the resources a VMI asks for, when this host permits them
    (``entries``: _host_entries); the count of each resource in the VMI is the number of such
    devices the VM gets."""
    from ..readiness import mmio_warnings

    h = host()
    by_resource = {e.resource_name: e.selector for e in entries if e.kind == "pci"}
    wanted: dict = {}
    for resource in resources:
        if resource in by_resource:
            wanted[by_resource[resource]] = wanted.get(by_resource[resource], 0) + 1
    return mmio_warnings(h, wanted) if wanted else []
