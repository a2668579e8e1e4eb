"""``hostdev apply PROFILE.yaml``: a declarative host profile applied as ONE idempotent plan.

A profile says what the host should look like, not what to run::

    iommu:                      # hostdev iommu enable
      passthrough: true
      args: [vfio-pci.ids=10de:1eb8]
      replace: false
    modules:                    # hostdev modules load
      persist: true
    devices:                    # hostdev bind (each entry: address, or id, or vendor/class)
      - address: "0000:65:00.0"
        persist: true
      - id: "10de:1eb8"
    mdevs:                      # hostdev mdev create: this many of the type on the parent
      - parent: "0000:3b:00.0"
        name: GRID T4-1Q        # or type: nvidia-222
        count: 2
        persist: true

Each section is planned against the host as it is now and skipped when already satisfied, so a
second ``apply`` changes nothing. The sections' actions form one Plan: a failing step rolls back
every earlier one, across sections.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple

from .documents import Base60, load_yaml
from .errors import UsageError
from .host import Host, read_document
from .plan import Plan

# section → {key: (type, required)}; devices and mdevs are lists of such mappings
SCHEMA: Dict[str, Dict[str, tuple]] = {
    "iommu": {"enable": (bool, False), "passthrough": (bool, False), "args": (list, False), "replace": (bool, False),
              "force": (bool, False)},
    "modules": {"load": (bool, False), "persist": (bool, False), "early": (list, False)},
    "devices": {"address": (str, False), "id": (str, False), "vendor": (str, False), "class": (str, False),
                "driver": (str, False), "persist": (bool, False), "force": (bool, False)},
    "mdevs": {"parent": (str, True), "type": (str, False), "name": (str, False), "count": (int, False),
              "uuids": (list, False), "persist": (bool, False)},
}
LIST_SECTIONS = ("devices", "mdevs")


def _fail(where: str, problem: str) -> UsageError:
    return UsageError(f"profile: {where}: {problem}", fix="see docs/ansible.md for the profile format")


def _check_mapping(value: Any, section: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if isinstance(item, Base60):
            raise _fail(f"{where}.{key}", f"YAML reads an unquoted {item} as a base-60 number: quote it "
                                          f"(\"{item}\")")
        if key not in SCHEMA[section]:
            raise _fail(f"{where}.{key}", f"unknown key (known: {', '.join(SCHEMA[section])})")
        kind, _ = SCHEMA[section][key]
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise _fail(f"{where}.{key}", f"expected {kind.__name__}, got {type(item).__name__} {item!r}")
    for key, (_, required) in SCHEMA[section].items():
        if required and key not in value:
            raise _fail(where, f"missing {key}")
    return value


def parse_profile(text: str, source: str = "profile") -> dict:
    """The validated profile. Raises UsageError naming the key path of the first problem."""
    data = load_yaml(text, source, fix="check the indentation and quoting")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(source, "the profile must be a mapping of sections (iommu, modules, devices, mdevs)")
    for section, value in data.items():
        if section not in SCHEMA:
            raise _fail(section, f"unknown section (known: {', '.join(SCHEMA)})")
        if section in LIST_SECTIONS:
            if not isinstance(value, list):
                raise _fail(section, "expected a list")
            for index, entry in enumerate(value):
                _check_mapping(entry, section, f"{section}[{index}]")
        elif value is not None:
            _check_mapping(value, section, section)
    for index, entry in enumerate(data.get("devices") or []):
        if not ({"address", "id", "vendor", "class"} & set(entry)):
            raise _fail(f"devices[{index}]", "give address, id, or vendor/class")
    for index, entry in enumerate(data.get("mdevs") or []):
        if ("type" in entry) == ("name" in entry):
            raise _fail(f"mdevs[{index}]", "give exactly one of type and name")
        if "count" in entry:
            from .mdev import check_count

            check_count(entry["count"], f"profile: mdevs[{index}].count")
    return data


class ProfilePlan(NamedTuple):
    plan: Plan
    sections: List[dict]        # per section: {"section", "changed", ...details}
    reboot_required: bool

    @property
    def changed(self) -> bool:
        return self.plan.changes

    def to_dict(self, dry_run: bool) -> dict:
        return self.plan.result(dry_run, changed=self.changed, reboot_required=self.reboot_required,
                                sections=self.sections)


def _merge(into: Plan, part: Plan) -> bool:
    into.actions.extend(part.actions)
    into.notes.extend(part.notes)
    return part.changes


def plan_profile(host: Host, profile: dict) -> ProfilePlan:
    """One plan for the whole profile. Raises what the section planners raise (UsageError,
    RefusedError, HostEnvironmentError) before anything is changed."""
    from . import binding, bootargs, modules, rules

    plan = Plan()
    sections: List[dict] = []
    reboot = False
    iommu = profile.get("iommu")
    if iommu is not None and iommu.get("enable", True):
        args, notes = bootargs.decide_args(host, iommu.get("passthrough", False),
                                           [str(a) for a in iommu.get("args", [])], iommu.get("force", False))
        boot = bootargs.plan_enable(host, args, iommu.get("replace", False), notes)
        sections.append({"section": "iommu", "changed": _merge(plan, boot.plan), "added": boot.added,
                         "present": boot.present, "files": sorted(boot.files), "reboot_required": boot.reboot_required})
        reboot = reboot or boot.reboot_required
    mods = profile.get("modules")
    if mods is not None and mods.get("load", True):
        early = [str(a) for a in mods.get("early", [])]
        drivers = [d.driver for d in (binding.resolve_addresses(host, early) if early else [])
                   if d.driver and not rules.is_vfio_driver(d.driver)]
        loaded = modules.plan_load(host, mods.get("persist", False), drivers)
        sections.append({"section": "modules", "changed": _merge(plan, loaded.plan), "load": loaded.load,
                         "files": loaded.files})
    claimed: Dict[str, str] = {}  # address → driver, of the devices an earlier entry planned
    for index, entry in enumerate(profile.get("devices") or []):
        devices = binding.resolve_addresses(host, [entry["address"]] if "address" in entry else [],
                                            [entry["id"]] if "id" in entry else [], entry.get("vendor"),
                                            entry.get("class"))
        driver = entry.get("driver", rules.VFIO)
        for dev in devices:
            if claimed.get(dev.address, driver) != driver:
                raise _fail(f"devices[{index}]", f"{dev.address} is also in an earlier entry, "
                                                 f"for {claimed[dev.address]}, not {driver}")
        # a device named twice (by address and by ID) is planned once: the plans are made from
        # the host as it is now, and a second bind of it would fail half-way
        fresh = [d for d in devices if d.address not in claimed]
        if not fresh:
            sections.append({"section": f"devices[{index}]", "changed": False, "devices": []})
            plan.notes.append(f"devices[{index}]: every device it names is in an earlier entry")
            continue
        bound = binding.plan_bind(host, fresh, driver, entry.get("force", False), entry.get("persist", False))
        claimed.update((d.address, driver) for d in bound.devices)
        sections.append({"section": f"devices[{index}]", "changed": _merge(plan, bound.plan),
                         "devices": [d.to_dict() for d in bound.devices]})
    for index, entry in enumerate(profile.get("mdevs") or []):
        sections.append(_mdev_section(host, plan, index, entry))
    return ProfilePlan(plan, sections, reboot)


def _mdev_section(host: Host, plan: Plan, index: int, entry: dict) -> dict:
    """Create what is missing: the named UUIDs that do not exist, or up to ``count`` mdevs of the
    type on the parent, counting those that exist already."""
    from . import mdev

    parent = entry["parent"]
    mtype = mdev.find_type(host, parent, entry.get("type"), entry.get("name"))
    existing = [m for m in mdev.list_mdevs(host) if m.parent == parent and m.type_id == mtype.id]
    have = {m.uuid for m in existing}
    uuids = [u for u in entry.get("uuids", []) if u not in have]
    missing = 0 if entry.get("uuids") else max(0, entry.get("count", 1) - len(existing))
    created: List[str] = []
    changed = False
    if uuids or missing:
        part, created = mdev.plan_create(host, parent, mtype.id, None, uuids, len(uuids) or missing,
                                         entry.get("persist", False))
        changed = _merge(plan, part)
    return {"section": f"mdevs[{index}]", "changed": changed, "type": mtype.id, "existing": sorted(have),
            "created": created}


def load_profile_file(path: str) -> dict:
    """Read and validate a profile file named on the command line. Raises UsageError."""
    return parse_profile(read_document(path, "profile"), path)
