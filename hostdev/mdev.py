"""Mediated devices: the types parents offer, the mdevs that exist, create and remove.

sysfs ABI: Documentation/driver-api/vfio-mediated-device.rst. A parent appears under
/sys/class/mdev_bus/NAME (a PCI address, or a name such as ``mtty`` for the sample drivers);
``mdev_supported_types/TYPE/create`` takes a UUID; ``/sys/bus/mdev/devices/UUID/remove``
takes ``1``.
"""

from __future__ import annotations

import json
import uuid as _uuid
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .documents import DocumentError, load_json
from .errors import RefusedError, SysfsWriteError, UsageError
from .host import Host
from .model import Mdev, MdevType
from .pci import int_or_none
from .plan import Plan

MDEV_BUS = "/sys/class/mdev_bus"
MDEV_DEVICES = "/sys/bus/mdev/devices"
MDEVCTL_DIR = "/etc/mdevctl.d"
PCI_DEVICES = "/sys/bus/pci/devices"
# NVIDIA vGPU on SR-IOV VFs (Ada, Hopper, some Ampere; vGPU 17+): no mdev bus, the types are a
# table in the VF's nvidia/creatable_vgpu_types ("ID    : vGPU Name" then "557   : NVIDIA L4-1Q").
NVIDIA_VF_TYPES = "nvidia/creatable_vgpu_types"


# mdevctl's udev rule, which starts the persistent mdevs of a parent when it appears (at boot). udev
# reads a rules file from the first of these directories that has one by that name: /etc overrides
# the package's.
MDEVCTL_RULE = "60-mdevctl.rules"
MDEVCTL_RULE_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/lib/udev/rules.d", "/lib/udev/rules.d")
MDEVCTL_RULE_OVERRIDE = f"/etc/udev/rules.d/{MDEVCTL_RULE}"
MDEVCTL_BINARIES = ("/usr/bin/mdevctl", "/usr/sbin/mdevctl")
OVERRIDE_HEADER = "# Written by hostdev (hostdev mdev create --persist): "


class MdevctlRule(NamedTuple):
    """The mdevctl udev rule udev uses, and whether the mdevctl it runs exists."""

    path: str                  # the rules file udev reads
    called: List[str]          # the mdevctl paths it runs
    missing: List[str]         # those that do not exist
    present: Optional[str]     # the installed mdevctl binary, if any
    text: str


def mdevctl_rule(host: Host) -> Optional[MdevctlRule]:
    """The 60-mdevctl.rules udev uses (/etc first), or None when mdevctl's rule is not installed.

    Debian 12's mdevctl 1.2.0-3 rule runs /usr/sbin/mdevctl, but the package installs
    /usr/bin/mdevctl: persistent mdevs silently never start at boot (ANCHORS.md)."""
    for directory in MDEVCTL_RULE_DIRS:
        path = f"{directory}/{MDEVCTL_RULE}"
        text = host.read_text(path)
        if text is None:
            continue
        called = sorted({word for line in text.splitlines() if not line.lstrip().startswith("#")
                         for word in line.replace("'", " ").replace('"', " ").split() if word.endswith("/mdevctl")})
        present = next((p for p in MDEVCTL_BINARIES if host.exists(p)), None)
        return MdevctlRule(path, called, [p for p in called if not host.exists(p)], present, text)
    return None


def mdevctl_rule_override(host: Host) -> Optional[str]:
    """The text of /etc/udev/rules.d/60-mdevctl.rules that makes mdevctl's own rule run the
    mdevctl that is installed, when the rule udev uses calls one that is not; else None (the rule
    works, there is no rule or no mdevctl, or the administrator's own override is in /etc)."""
    rule = mdevctl_rule(host)
    if rule is None or not rule.missing or rule.present is None:
        return None
    if rule.path == MDEVCTL_RULE_OVERRIDE and not rule.text.startswith(OVERRIDE_HEADER):
        return None  # the administrator's own file: never replaced
    text = rule.text
    for missing in rule.missing:
        text = text.replace(missing, rule.present)
    return (f"{OVERRIDE_HEADER}{rule.path} with {rule.present}\n"
            f"# instead of {', '.join(rule.missing)}, which does not exist (Debian 12's mdevctl 1.2.0-3), so that\n"
            "# persistent mdevs start at boot. 'hostdev mdev remove' of the last definition removes it.\n"
            + (text if text.endswith("\n") else text + "\n"))


def normalize(name: str) -> str:
    """KubeVirt's comparison form of a type name: spaces to ``_``, then trimmed
    (pkg/virt-handler/device-manager/mediated_device.go). Trim first yourself: leading spaces
    would otherwise become ``_``."""
    return name.strip().replace(" ", "_").strip()


def type_name(host: Host, path: str) -> Optional[str]:
    """A type's ``name`` attribute without its newline but with any other surrounding space:
    KubeVirt turns those spaces into ``_`` (kubevirt.normalize), so they are part of the name."""
    text = host.read_text(path)
    if text is None:
        return None
    return text[:-1] if text.endswith("\n") else text


def parents(host: Host) -> List[str]:
    return host.listdir(MDEV_BUS)


def types(host: Host, parent: str) -> List[MdevType]:
    base = f"{MDEV_BUS}/{parent}/mdev_supported_types"
    found = []
    for type_id in host.listdir(base):
        values, _, _ = host.scan_attrs(f"{base}/{type_id}", ("available_instances", "device_api", "description"))
        found.append(MdevType(parent, type_id, type_name(host, f"{base}/{type_id}/name"),
                              int_or_none(values["available_instances"]),
                              values["device_api"], values["description"]))
    return found


def nvidia_vf_types(host: Host) -> Dict[str, List[MdevType]]:
    """PCI address → the vGPU types its nvidia/creatable_vgpu_types offers (SR-IOV vGPU)."""
    found: Dict[str, List[MdevType]] = {}
    for address in host.listdir(PCI_DEVICES):
        text = host.read_text(f"{PCI_DEVICES}/{address}/{NVIDIA_VF_TYPES}")
        if text is None:
            continue
        entries = []
        for line in text.splitlines()[1:]:
            type_id, sep, name = line.partition(":")
            if sep and type_id.strip().isdigit():
                entries.append(MdevType(address, type_id.strip(), name.strip(), None, "vfio-pci",
                                        "NVIDIA vGPU on an SR-IOV VF (nvidia/creatable_vgpu_types)"))
        found[address] = entries
    return found


def matches_name(mtype: MdevType, wanted: str) -> bool:
    """Does ``wanted`` name this type, exactly or as KubeVirt compares (spaces → ``_``)?
    A type without a ``name`` file (Intel GVT-g) is known by its id."""
    wanted = wanted.strip()
    candidates = [mtype.id] if mtype.name is None else [mtype.name.strip()]
    return any(wanted == c or normalize(wanted) == normalize(c) for c in candidates)


class Definition(NamedTuple):
    """An mdevctl definition: /etc/mdevctl.d/PARENT/UUID (JSON: mdev_type, start, attrs)."""

    uuid: str
    parent: str
    type_id: Optional[str]
    start: Optional[str]


def definitions(host: Host) -> Dict[str, Definition]:
    found: Dict[str, Definition] = {}
    for parent in host.listdir(MDEVCTL_DIR):
        if parent == "scripts.d":
            continue
        for name in host.listdir(f"{MDEVCTL_DIR}/{parent}"):
            path = f"{MDEVCTL_DIR}/{parent}/{name}"
            try:
                data = load_json(host.read_text(path) or "", path)
                value = str(_uuid.UUID(name))
            except (ValueError, DocumentError):
                continue  # not an mdevctl definition (mdevctl skips it too)
            if isinstance(data, dict):
                found[value] = Definition(value, parent, data.get("mdev_type"), data.get("start"))
    return found


def definition_text(type_id: str) -> str:
    """mdevctl's own format (mdevctl 1.x ``define``), so that mdevctl and its udev rule start
    the device at boot."""
    return json.dumps({"mdev_type": type_id, "start": "auto", "attrs": []}, indent=2) + "\n"


def list_mdevs(host: Host) -> List[Mdev]:
    found = []
    for name in host.listdir(MDEV_DEVICES):
        real = host.resolve(f"{MDEV_DEVICES}/{name}")
        type_id = host.link_name(f"{MDEV_DEVICES}/{name}/mdev_type")
        type_name_ = type_name(host, f"{MDEV_DEVICES}/{name}/mdev_type/name")
        group = host.link_name(f"{MDEV_DEVICES}/{name}/iommu_group")
        found.append(Mdev(name, real.rsplit("/", 2)[-2], type_id, type_name_,
                          int(group) if group and group.isdigit() else None,
                          host.link_name(f"{MDEV_DEVICES}/{name}/driver")))
    return found


def find_type(host: Host, parent: str, type_id: Optional[str] = None, name: Optional[str] = None) -> MdevType:
    """The parent's type with this id, or with this name (exact or KubeVirt-normalised)."""
    if parent not in parents(host):
        raise UsageError(f"{parent} is not an mdev parent on this host",
                         fix=f"parents here: {', '.join(parents(host)) or 'none'} (hostdev mdev types)")
    offered = types(host, parent)
    for t in offered:
        if (type_id is not None and t.id == type_id) or (name is not None and matches_name(t, name)):
            return t
    wanted = type_id if type_id is not None else f"named {name!r}"
    raise UsageError(f"{parent} has no mdev type {wanted}",
                     fix=f"types of {parent}: {', '.join(f'{t.id} ({t.name})' for t in offered)}")


def _check_uuid(host: Host, text: str) -> str:
    try:
        value = str(_uuid.UUID(text))
    except ValueError:
        raise UsageError(f"invalid UUID {text!r}", fix="use the 8-4-4-4-12 hex form, or omit --uuid") from None
    if host.exists(f"{MDEV_DEVICES}/{value}"):
        raise UsageError(f"an mdev with UUID {value} already exists", fix="pick another UUID or omit --uuid")
    return value


def _create_step(parent: str, type_id: str, value: str):
    path = f"{MDEV_BUS}/{parent}/mdev_supported_types/{type_id}/create"

    def run(host: Host) -> None:
        host.write_attr(path, value)
        if not host.exists(f"{MDEV_DEVICES}/{value}"):
            raise SysfsWriteError(path, value, 5, "the kernel accepted the write but no mdev appeared")
    return run


def _remove_step(value: str, group: Optional[int] = None):
    def run(host: Host) -> None:
        from .hostuse import vfio_group_holders

        try:
            host.write_attr(f"{MDEV_DEVICES}/{value}/remove", "1")
        except SysfsWriteError as exc:
            if exc.errno == 16:  # EBUSY: the vendor driver refuses while the device is open
                holders = vfio_group_holders(host, group) if group is not None else []
                who = f"by {', '.join(holders)}" if holders else "(the kernel answered EBUSY)"
                raise RefusedError(f"mdev {value} is in use {who}",
                                   fix="stop the VM or process that has it open") from None
            raise
    return run


# More mdevs of one type than any parent offers (NVIDIA's largest profiles allow 32 per GPU,
# ×(up to) 16 GPUs a card; mtty 24): a count above it is a typo, refused before anything else.
MAX_COUNT = 1024


def check_count(count: int, where: str = "--count") -> None:
    """Raises UsageError unless 1 <= count <= MAX_COUNT."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise UsageError(f"{where} {count!r} is out of range", fix=f"give a number of mdevs from 1 to {MAX_COUNT}")


def plan_create(host: Host, parent: str, type_id: Optional[str] = None, name: Optional[str] = None,
                uuids: Sequence[str] = (), count: int = 1, persist: bool = False) -> Tuple[Plan, List[str]]:
    """The plan that creates ``count`` mdevs (or one per given UUID), optionally with mdevctl
    definitions. Raises UsageError (unknown parent/type, bad or taken UUID) and RefusedError
    (not enough instances left)."""
    check_count(count)
    mtype = find_type(host, parent, type_id, name)
    if uuids and count not in (1, len(uuids)):
        raise UsageError("--count and --uuid disagree", fix="give one --uuid per mdev, or only --count")
    wanted = len(uuids) or count
    # checked before any UUID is generated: a huge --count is refused at once
    if mtype.available_instances is not None and mtype.available_instances < wanted:
        raise RefusedError(f"{parent} has {mtype.available_instances} {mtype.id} instance(s) left, "
                           f"{wanted} asked for",
                           fix="remove mdevs of this parent (hostdev mdev remove --parent …), or use another parent")
    values = [_check_uuid(host, u) for u in uuids] or [str(_uuid.uuid4()) for _ in range(count)]
    plan = Plan()
    if persist:
        override = mdevctl_rule_override(host)
        if override is not None:
            plan.add_file(host, MDEVCTL_RULE_OVERRIDE, override,
                          description=f"write {MDEVCTL_RULE_OVERRIDE}: mdevctl's udev rule calling the installed "
                                      "mdevctl, so that the definitions start at boot")
    for value in values:
        plan.add(f"create mdev {value} ({mtype.id}, {mtype.name or 'no name'}) on {parent}",
                 _create_step(parent, mtype.id, value), _remove_step(value), value)
        if persist:
            path = f"{MDEVCTL_DIR}/{parent}/{value}"
            plan.add(f"write mdevctl definition {path} (start auto)",
                     lambda h, p=path, t=mtype.id: h.write_file(p, definition_text(t), backup=False),
                     lambda h, p=path: h.remove_file(p), value, files=(("write", path),))
    return plan, values


def plan_remove(host: Host, uuids: Sequence[str] = (), parent: Optional[str] = None) -> Tuple[Plan, List[str]]:
    """Remove mdevs (by UUID, or every mdev of ``parent``) and their mdevctl definitions.
    Raises UsageError (no such mdev) and RefusedError (in use: /dev/vfio/N held open)."""
    from .hostuse import host_use, vfio_group_holders

    active = {m.uuid: m for m in list_mdevs(host)}
    defined = definitions(host)
    if parent is not None:
        known = set(parents(host)) | {m.parent for m in active.values()} | {d.parent for d in defined.values()}
        if parent not in known:
            raise UsageError(f"{parent} is not an mdev parent on this host (and no mdevctl definition names it)",
                             fix=f"parents here: {', '.join(sorted(known)) or 'none'} (hostdev mdev list)")
        targets = sorted(u for u, m in active.items() if m.parent == parent) + \
            sorted(u for u, d in defined.items() if d.parent == parent and u not in active)
    else:
        targets = []
        for text in uuids:
            try:
                value = str(_uuid.UUID(text))
            except ValueError:
                raise UsageError(f"invalid UUID {text!r}", fix="use the 8-4-4-4-12 hex form") from None
            if value not in active and value not in defined:
                raise UsageError(f"no mdev {value} on this host", fix="run 'hostdev mdev list'")
            targets.append(value)
    if not targets and parent is None:
        raise UsageError("no mdev given", fix="name mdevs by UUID, or --parent ADDR")
    plan = Plan()
    use = host_use(host) if active else None
    for value in targets:
        mdev = active.get(value)
        if mdev is not None:
            holders = vfio_group_holders(host, mdev.iommu_group, use) if mdev.iommu_group is not None else []
            if holders:
                raise RefusedError(f"mdev {value} is in use: /dev/vfio/{mdev.iommu_group} is held by "
                                   f"{', '.join(holders)}", fix="stop the VM using it first")
            plan.add(f"remove mdev {value} ({mdev.type_id}) from {mdev.parent}", _remove_step(value, mdev.iommu_group),
                     _create_step(mdev.parent, mdev.type_id or "", value), value)
        definition = defined.get(value)
        if definition is not None:
            path = f"{MDEVCTL_DIR}/{definition.parent}/{value}"
            old = host.read_config(path) or ""
            plan.add(f"remove mdevctl definition {path}", lambda h, p=path: h.remove_file(p),
                     lambda h, p=path, t=old: h.write_file(p, t, backup=False), value, files=(("remove", path),))
    own_rule = host.read_config(MDEVCTL_RULE_OVERRIDE)
    if own_rule is not None and own_rule.startswith(OVERRIDE_HEADER) and not set(defined) - set(targets):
        plan.add_file(host, MDEVCTL_RULE_OVERRIDE, None,
                      description=f"remove {MDEVCTL_RULE_OVERRIDE} (hostdev's, for the last mdevctl definition)")
    return plan, targets


def create(host: Host, parent: str, type_id: str, uuid: Optional[str] = None, persist: bool = False) -> Mdev:
    """Create one mdev now; returns it as sysfs shows it."""
    plan, values = plan_create(host, parent, type_id, uuids=[uuid] if uuid else (), persist=persist)
    host.require_mutable("creating an mdev")
    plan.apply(host)
    return next(m for m in list_mdevs(host) if m.uuid == values[0])


def remove(host: Host, uuid: str) -> None:
    """Remove one mdev (and its mdevctl definition) now."""
    plan, _ = plan_remove(host, [uuid])
    host.require_mutable("removing an mdev")
    plan.apply(host)
