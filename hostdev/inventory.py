"""A host's inventory for the KubeVirt generators: what ``hostdev inventory -o json`` prints
(docs/json.md) and what ``hostdev kubevirt permitted --inventory`` / ``kubevirt merge`` read.

One JSON object per host: hostname, node labels, the pci.ids used (path, version, date), every
PCI function with its names, the IOMMU groups, the mdev types each parent offers and the
existing mdevs. Reading a live host and reading a file give the same dict, so the generators in
hostdev/kubevirt.py never touch the machine.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from . import mdev, pci, pciids
from .errors import UsageError
from .host import Host, read_document, read_user_file
from .kubevirt import BadDocumentError, label_problem

INVENTORY_VERSION = 1
_HEADER = re.compile(rb"^#\s*(Version|Date):\s*(.+?)\s*$", re.M)
_HEX4 = re.compile(r"[0-9a-f]{4}\Z")
_HEX6 = re.compile(r"[0-9a-f]{6}\Z")


def pci_ids_header(data: bytes) -> Dict[str, Optional[str]]:
    """``Version:`` and ``Date:`` from a pci.ids header (the first 2 KiB), or None each."""
    found = {key.decode().lower(): value.decode("utf-8", "replace") for key, value in _HEADER.findall(data[:2048])}
    return {"version": found.get("version"), "date": found.get("date")}


def load_pci_ids(host: Host, override: Optional[str] = None) -> Tuple[pciids.PciIds, dict]:
    """The PciIds (as pciids.load finds it) and ``{"path", "version", "date"}`` (all None when
    the host has no pci.ids). Raises UsageError when ``override`` cannot be read."""
    data: Optional[bytes] = None
    path: Optional[str] = None
    if override:
        try:
            data, path = read_user_file(override), override
        except OSError as exc:
            raise UsageError(f"cannot read --pci-ids {override}: {exc.strerror}",
                             fix="pass a readable pci.ids file") from None
    else:
        for candidate in pciids.SEARCH_PATHS:
            data = host.read_bytes(candidate)
            if data is not None:
                path = candidate
                break
    if data is None:
        return pciids.PciIds.empty(), {"path": None, "version": None, "date": None}
    return pciids.PciIds(data, path), {"path": path, **pci_ids_header(data)}


def hostname(host: Host) -> Optional[str]:
    """The host's name: the kernel's (/proc/sys/kernel/hostname), else /etc/hostname."""
    for path in ("/proc/sys/kernel/hostname", "/etc/hostname"):
        value = host.read_attr(path)
        if value:
            return value.split()[0]
    return None


def collect(host: Host, names: pciids.PciIds, names_info: dict, labels: Optional[Dict[str, str]] = None,
            name: Optional[str] = None, hwdb=None) -> dict:
    """The inventory of ``host`` (docs/json.md). ``hwdb``: a (vendor_id, device_id) → name
    lookup (udev.hwdb_pci_names) for devices pci.ids does not name; each device says where its
    name came from in ``device_name_source``. Raises UsageError when the host name cannot be
    read and ``name`` is not given."""
    host_name = name or hostname(host)
    if not host_name:
        raise UsageError(f"cannot read the host name under {host.recording or host.root}", fix="pass --hostname NAME")
    parents = []
    for parent in mdev.parents(host):
        parents.append({"address": parent, "interface": "mdev",
                        "types": [t.to_dict() for t in mdev.types(host, parent)]})
    for address, offered in sorted(mdev.nvidia_vf_types(host).items()):
        parents.append({"address": address, "interface": "nvidia-vf", "types": [t.to_dict() for t in offered]})
    return {
        "inventory_version": INVENTORY_VERSION,
        "hostname": host_name,
        "labels": dict(labels or {}),
        "pci_ids": dict(names_info),
        "devices": [_named(d.to_dict(), hwdb) for d in pci.list_devices(host, names)],
        "iommu_groups": [g.to_dict() for g in pci.iommu_groups(host)],
        "mdev_types": parents,
        "mdevs": [m.to_dict() for m in mdev.list_mdevs(host)],
    }


NAME_SOURCES = ("pci.ids", "hwdb")


def _named(device: dict, hwdb) -> dict:
    source = "pci.ids" if device.get("device_name") else None
    if source is None and hwdb is not None:
        device["device_name"] = hwdb(device["vendor_id"], device["device_id"])
        source = "hwdb" if device["device_name"] else None
    device["device_name_source"] = source
    return device


def parse(text: str, source: str) -> dict:
    """An inventory from JSON text, its shape checked where the generators rely on it.
    Raises BadDocumentError naming the file and the field."""
    from .documents import load_json

    return validate(load_json(text, source, fix="write it with hostdev inventory -o json"), source)


def _need(cond: bool, source: str, where: str, problem: str) -> None:
    if not cond:
        raise BadDocumentError(source, where, problem, fix="regenerate it with hostdev inventory -o json")


def validate(doc, source: str) -> dict:
    """``doc`` when it has the inventory shape (docs/json.md); raises BadDocumentError."""
    _need(isinstance(doc, dict), source, "", "an inventory is a JSON object (hostdev inventory -o json)")
    version = doc.get("inventory_version")
    _need(version == INVENTORY_VERSION, source, "inventory_version",
          f"is {version!r}; this hostdev reads version {INVENTORY_VERSION}")
    _need(isinstance(doc.get("hostname"), str) and bool(doc["hostname"]), source, "hostname", "must be a string")
    labels = doc.get("labels")
    _need(isinstance(labels, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()),
          source, "labels", "must map label names to string values")
    for key, value in labels.items():
        problem = label_problem(key, value)
        _need(problem is None, source, "labels", problem or "")
    _need(doc.get("pci_ids") is None or isinstance(doc["pci_ids"], dict), source, "pci_ids", "must be an object")
    for key in ("devices", "iommu_groups", "mdev_types", "mdevs"):
        _need(isinstance(doc.get(key), list), source, key, "must be a list")
    for i, dev in enumerate(doc["devices"]):
        where = f"devices[{i}]"
        _need(isinstance(dev, dict), source, where, "must be an object")
        _need(isinstance(dev.get("address"), str), source, f"{where}.address", "must be a string")
        for key in ("vendor_id", "device_id"):
            _need(isinstance(dev.get(key), str) and bool(_HEX4.match(dev[key])), source, f"{where}.{key}",
                  "must be 4 lower-case hex digits")
        _need(isinstance(dev.get("class_id"), str) and bool(_HEX6.match(dev["class_id"])), source,
              f"{where}.class_id", "must be 6 lower-case hex digits")
        for key in ("driver", "device_name"):
            _need(dev.get(key) is None or isinstance(dev[key], str), source, f"{where}.{key}",
                  "must be a string or null")
        _need(dev.get("device_name_source") in (None,) + NAME_SOURCES, source, f"{where}.device_name_source",
              "must be \"pci.ids\", \"hwdb\" or null")
        _need(dev.get("iommu_group") is None or isinstance(dev["iommu_group"], int), source,
              f"{where}.iommu_group", "must be a number or null")
    for i, group in enumerate(doc["iommu_groups"]):
        _need(isinstance(group, dict) and isinstance(group.get("id"), int) and isinstance(group.get("devices"), list),
              source, f"iommu_groups[{i}]", "must be {\"id\": N, \"devices\": [...]}")
    for i, parent in enumerate(doc["mdev_types"]):
        where = f"mdev_types[{i}]"
        _need(isinstance(parent, dict) and isinstance(parent.get("address"), str)
              and isinstance(parent.get("types"), list), source, where,
              "must be {\"address\": ..., \"types\": [...]}")
        for j, t in enumerate(parent["types"]):
            _need(isinstance(t, dict) and isinstance(t.get("id"), str) and
                  (t.get("name") is None or isinstance(t["name"], str)), source, f"{where}.types[{j}]",
                  "must have a string id and a string or null name")
    for i, m in enumerate(doc["mdevs"]):
        _need(isinstance(m, dict) and isinstance(m.get("uuid"), str) and isinstance(m.get("parent"), str)
              and (m.get("type_id") is None or isinstance(m["type_id"], str))
              and (m.get("type_name") is None or isinstance(m["type_name"], str)),
              source, f"mdevs[{i}]", "must have string uuid, parent, and type_id/type_name strings or null")
    return doc


def load(paths: List[str]) -> List[dict]:
    """Inventories from files (``-`` is not supported: pass paths). Raises UsageError."""
    found = []
    for path in paths:
        text = read_document(path, "inventory", fix="write one per host with hostdev inventory -o json > HOST.json")
        found.append(parse(text, path))
    return found
