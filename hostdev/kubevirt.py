"""KubeVirt output: permittedHostDevices, mediatedDevicesConfiguration, VMI/VM device blocks.

Pure transforms, no I/O: host inventories (hostdev/inventory.py, docs/json.md) and options in,
plain dicts in KubeVirt's field order and spelling out, ready for render.dump_yaml. The rules
come from KubeVirt v1.9.0 and the NVIDIA kubevirt-gpu-device-plugin (docs/kubevirt.md):

* pciVendorSelector is ``VVVV:DDDD`` upper-case: virt-handler lower-cases both sides now, but
  KubeVirt before kubevirt#4925 only matched upper-case.
* mdevNameSelector is the type's ``name``; virt-handler compares both sides with every space
  turned into ``_`` and then trimmed (normalize()), so a name with surrounding spaces is written
  in that form; types without a name file (Intel GVT-g) are known by the type directory's name.
* A resourceName must be a valid Kubernetes extended resource name, or kubelet rejects the
  device plugin and pods stay Pending.
* The CRD has no ``additionalProperties: false``: a misspelt key is silently dropped by the API
  server, so hostdev never emits one and points out the ones it reads.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from . import rules
from .documents import DocumentError
from .errors import DeviceNotFoundError, UsageError

NVIDIA = "10de"
API_VERSION = "kubevirt.io/v1"
# The NVIDIA kubevirt-gpu-device-plugin's name for a passthrough GPU, per release. Read from
# NVIDIA/kubevirt-gpu-device-plugin pkg/device_plugin/device_plugin.go, getDeviceName(), which
# reads the plugin's own bundled pci.ids (/usr/pci.ids in its image) and falls back to the
# lower-case device id when it finds nothing or the name cleans down to "":
#   lookups
#   * "anywhere" (v1.0.0 .. v1.1.2): the first line of the whole file that contains the 4 hex
#     digits anywhere (any vendor, a subsystem line, a comment); the name is what follows them.
#     A line holding them twice ends the search with no name (its len(splits) != 2 check).
#     NVIDIA/kubevirt-gpu-device-plugin#42: 10de:1f08 named SAS_5_IR_INTEGRATED_RAID_CONTROLLER.
#   * "line-start" (PR #53, first released in v1.2.0, .. v1.2.1): the same scan, skipping lines
#     whose trimmed text does not start with the digits (the twice-on-a-line stop still comes
#     first): 10de:2330 named by Intel's "2330  DH89xxCC SMBus Controller" (issue #106).
#   * "vendor-block" (PR #72, commit 5b4613600c5f765809b275e19d351d8eadf48c05, v1.2.2 .. v1.6.0):
#     the first "\tdddd" line after the first line starting "10de", until a line that starts
#     with neither a tab nor "#".
#   characters
#   * "legacy" (v1.0.0, v1.0.1, as the code stood before PR #33): trimmed, whitespace runs to
#     "_", every character outside [A-Za-z0-9_] dropped ("/" and "." included).
#   * "upper" (PR #33, in the v1.1.0 tag; v1.1.0 was never published as an image, issue #37,
#     so v1.1.1 is the first image): trimmed, upper-cased, "/" and "." to "_", whitespace runs
#     to "_", characters outside [A-Za-z0-9_.] dropped.
NVIDIA_NAMINGS = {
    "nvidia": ("vendor-block", "upper"),          # plugin >= v1.2.2
    "nvidia-v1.2.1": ("line-start", "upper"),     # v1.2.0, v1.2.1
    "nvidia-v1.1.2": ("anywhere", "upper"),       # v1.1.1, v1.1.2 (and the unpublished v1.1.0 tag)
    "nvidia-legacy": ("anywhere", "legacy"),      # v1.0.0, v1.0.1
}
NAMINGS = tuple(NVIDIA_NAMINGS) + ("kubevirt",)
FORMATS = ("cr", "patch", "json-patch", "snippet")
VMI_FORMATS = ("snippet", "vmi", "vm")
FALLBACK_DOMAIN = "pci.hostdev.io"
MDEV_FALLBACK_DOMAIN = "mdev.hostdev.io"

# Readable default domains for KubeVirt's own plugin (any valid name works there).
VENDOR_DOMAINS = {
    "10de": "nvidia.com", "8086": "intel.com", "1002": "amd.com", "1022": "amd.com",
    "15b3": "mellanox.com", "144d": "samsung.com", "14e4": "broadcom.com", "1000": "broadcom.com",
}

# Where a permittedHostDevices list lives, as JSON-patch paths.
CONFIG_PATH = "/spec/configuration"

# ----------------------------------------------------------------------------- errors


class InvalidResourceNameError(UsageError):
    """A resourceName kubelet would reject (k8s.io/apimachinery IsExtendedResourceName)."""

    def __init__(self, name: str, rule: str, fix: Optional[str] = None) -> None:
        super().__init__(f"invalid resource name {name!r}: {rule}",
                         fix=fix or "pass --resource-name SELECTOR=DOMAIN/NAME with a valid name")
        self.name = name
        self.rule = rule


class ResourceNameConflictError(UsageError):
    """One selector would get two names: KubeVirt keeps only the last entry for a selector."""

    def __init__(self, selector: str, names: Dict[str, List[str]]) -> None:
        shown = "; ".join(f"{name} on {_few(hosts)}" for name, hosts in names.items())
        super().__init__(f"{selector} is named two ways: {shown}",
                         fix=f"name it once with --resource-name {selector}=NAME, or give every host the same "
                             "pci.ids with --pci-ids FILE")
        self.selector = selector
        self.names = names


class BadDocumentError(DocumentError):
    """An inventory or an existing CR that hostdev cannot use (its shape; documents.py says when
    it cannot be read at all)."""

    def __init__(self, source: str, where: str, problem: str, fix: Optional[str] = None) -> None:
        super().__init__(source, f"{where}: {problem}" if where else problem, fix=fix)
        self.where = where


def _few(items: Sequence[str], limit: int = 3) -> str:
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


# ----------------------------------------------------------------------------- names

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*\Z")
_DNS_LABEL_RE = re.compile(rf"{_DNS_LABEL}\Z")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
# Go's regexp \s is [\t\n\f\r ] (RE2: no \v); strings.TrimSpace trims Unicode White_Space
# (Python's str.strip would also trim \x1c-\x1f); strings.ToUpper maps each rune alone, so
# "ß" stays (Python's "SS"), while "ı" becomes "I".
_GO_WS = re.compile(r"[\t\n\f\r ]+")
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B))
             + "\u2028\u2029\u202f\u205f\u3000")
_NOT_NVIDIA_CHAR = re.compile(r"[^A-Za-z0-9_.]+")
_NOT_LEGACY_CHAR = re.compile(r"[^A-Za-z0-9_]+")


def _go_upper(text: str) -> str:
    return "".join(u if len(u) == 1 else c for c, u in ((c, c.upper()) for c in text))


def resource_name_problem(name: str) -> Optional[str]:
    """Why ``name`` is not a valid extended resource name, or None. The rules of
    IsExtendedResourceName: DOMAIN/NAME, not in kubernetes.io, "requests." + it a qualified
    name (domain a lower-case DNS subdomain of ≤ 253 characters with the prefix; name 1–63
    characters, alphanumeric at both ends, ``-_.`` inside)."""
    if not isinstance(name, str) or "/" not in name:
        return "a device resource needs a domain: DOMAIN/NAME, e.g. nvidia.com/TU104GL_TESLA_T4"
    if "kubernetes.io/" in name:
        return "the kubernetes.io domains are reserved for Kubernetes' own resources"
    if name.startswith("requests."):
        return "it starts with 'requests.', the prefix Kubernetes reserves for quota names"
    domain, _, short = name.partition("/")
    if "/" in short:
        return "it has more than one '/'"
    if not domain:
        return "the domain before '/' is empty"
    if len("requests." + domain) > 253:
        return f"the domain is {len(domain)} characters; with the 'requests.' quota prefix it must fit in 253"
    if not _DNS_SUBDOMAIN.match(domain):
        return f"the domain {domain!r} must be a lower-case DNS subdomain (a-z, 0-9, '-', '.')"
    if not short:
        return "the name after '/' is empty"
    if len(short) > 63:
        return f"the part after '/' is {len(short)} characters; at most 63 are allowed"
    if not _QUALIFIED_NAME.match(short):
        return (f"the part after '/' ({short!r}) must start and end with a letter or digit and hold only "
                "letters, digits, '-', '_' and '.'")
    return None


def check_resource_name(name: str, fix: Optional[str] = None) -> str:
    """``name`` when valid; raises InvalidResourceNameError naming the broken rule."""
    problem = resource_name_problem(name)
    if problem:
        raise InvalidResourceNameError(name, problem, fix)
    return name


def nvidia_pci_name(device_id: str, pci_name: Optional[str], chars: str = "upper") -> str:
    """The NVIDIA plugin's name for a passthrough GPU whose pci.ids text is ``pci_name`` (what
    follows the device id on the line its lookup found; None: not found). ``chars`` "upper"
    (plugin >= v1.1.1): trimmed, upper-cased, ``/`` and ``.`` to ``_``, whitespace runs to ``_``,
    other characters dropped; "legacy" (v1.0.x): trimmed, whitespace runs to ``_``, everything
    outside ``[A-Za-z0-9_]`` dropped. ``nvidia.com/<device id>`` when nothing is left."""
    text = (pci_name or "").strip(_GO_SPACE)
    if chars == "legacy":
        text = _NOT_LEGACY_CHAR.sub("", _GO_WS.sub("_", text))
    else:
        text = _go_upper(text).replace("/", "_").replace(".", "_")
        text = _NOT_NVIDIA_CHAR.sub("", _GO_WS.sub("_", text))
    return "nvidia.com/" + (text or device_id.lower())


def nvidia_legacy_pci_name(device_id: str, pci_name: Optional[str]) -> str:
    """The character rules of plugins v1.0.x (``nvidia.com/TU104GL_Tesla_T4``, the KubeVirt user
    guide's name; "GA107GL [A2 / A16]" → ``nvidia.com/GA107GL_A2__A16``)."""
    return nvidia_pci_name(device_id, pci_name, "legacy")


def nvidia_plugin_text(text: str, device_id: str, lookup: str) -> Optional[str]:
    """What the plugin's "anywhere" or "line-start" lookup (see NVIDIA_NAMINGS) takes as the
    name of ``device_id`` in the whole pci.ids ``text``: the text after the id on the line it
    stops at, or None (no name: the plugin then uses the id)."""
    device_id = device_id.lower()
    pos = text.find(device_id)
    while pos >= 0:
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.endswith("\r"):
            line = line[:-1]  # bufio.ScanLines drops a trailing CR
        line = line.strip(_GO_SPACE)
        parts = line.split(device_id)
        if len(parts) != 2:
            return None
        if lookup == "anywhere" or parts[0] == "":
            return parts[1]
        pos = text.find(device_id, end)
    return None


def nvidia_mdev_name(type_name: str) -> str:
    """The NVIDIA plugin's vGPU name: ``nvidia.com/`` + the type name with whitespace runs as
    ``_`` (not upper-cased): "GRID T4-1Q" → nvidia.com/GRID_T4-1Q."""
    # readVgpuIDFromFile: strings.Trim(name, "\n"), then \s+ to "_" (every plugin release)
    return "nvidia.com/" + _GO_WS.sub("_", type_name.strip("\n"))


def _sanitise(text: str, lower: bool) -> str:
    text = text.lower() if lower else text
    text = re.sub(r"[^A-Za-z0-9_.-]+" if not lower else r"[^a-z0-9]+", "_", text, flags=re.ASCII)
    return text.strip("_.-")[:63].rstrip("_.-")


def kubevirt_pci_name(vendor_id: str, device_id: str, pci_name: Optional[str]) -> str:
    """A readable default for KubeVirt's own plugin: NVIDIA devices as the NVIDIA plugin names
    them (so switching plugins keeps the name), other known vendors ``<domain>/<pci.ids name in
    lower case>`` (intel.com/4xxx_series_qat), else ``pci.hostdev.io/VVVV_DDDD``."""
    if vendor_id == NVIDIA:
        name = nvidia_pci_name(device_id, pci_name)
        if resource_name_problem(name) is None:
            return name
        short = name.split("/", 1)[1].strip("_.-")[:63].rstrip("_.-")
        if short:
            return f"nvidia.com/{short}"
    domain = VENDOR_DOMAINS.get(vendor_id)
    short = _sanitise(pci_name, lower=True) if pci_name else ""
    if domain and short:
        return f"{domain}/{short}"
    return f"{FALLBACK_DOMAIN}/{vendor_id.upper()}_{device_id.upper()}"


def kubevirt_mdev_name(selector: str, parent_vendor: Optional[str]) -> str:
    """Default name of an mdev type for KubeVirt's own plugin: NVIDIA types as the NVIDIA plugin
    names them, Intel's under intel.com, others under mdev.hostdev.io."""
    if parent_vendor == NVIDIA:
        name = nvidia_mdev_name(selector)
        if resource_name_problem(name) is None:
            return name
    domain = "intel.com" if parent_vendor == "8086" else ("nvidia.com" if parent_vendor == NVIDIA
                                                          else MDEV_FALLBACK_DOMAIN)
    return f"{domain}/{_sanitise(normalize(selector), lower=False) or 'mdev'}"


def env_var(resource_name: str, mdev: bool) -> str:
    """The variable an external plugin must put in virt-launcher's environment:
    ``PCI_RESOURCE_<R>`` / ``MDEV_PCI_RESOURCE_<R>``, R upper-cased with ``/`` and ``.`` as ``_``."""
    r = resource_name.upper().replace("/", "_").replace(".", "_")
    return ("MDEV_PCI_RESOURCE_" if mdev else "PCI_RESOURCE_") + r


def normalize(name: str) -> str:
    """virt-handler's comparison form of an mdev type name and of an mdevNameSelector: every
    space to ``_``, then strings.TrimSpace, in that order (getMdevTypeName and the types scan in
    pkg/virt-handler/device-manager/mediated_device.go, KubeVirt v1.9), so a leading or
    trailing space becomes part of the name: " GRID T4-1Q\n" → "_GRID_T4-1Q"."""
    return name.replace(" ", "_").strip(_GO_SPACE)


def mdev_selector(type_name: Optional[str], type_id: str) -> str:
    """The mdevNameSelector for a type: its name as sysfs gives it (KubeVirt turns the spaces
    into ``_`` itself), or the name in KubeVirt's form when it has surrounding whitespace, which
    a reader of the CR would not see; the type id when there is no name (Intel GVT-g)."""
    if not type_name or not normalize(type_name):
        return type_id
    name = type_name.strip("\n")
    return name if name == name.strip(_GO_SPACE) else normalize(name)


def pci_selector(vendor_id: str, device_id: str) -> str:
    return f"{vendor_id}:{device_id}".upper()


def parse_selector_key(text: str) -> Tuple[str, str]:
    """A --resource-name selector: ``("pci", "10DE:1EB8")`` or ``("mdev", "GRID_T4-1Q")``
    (an mdev type name, compared in KubeVirt's form)."""
    value = text.strip()
    if re.fullmatch(r"(0x)?[0-9A-Fa-f]{4}:(0x)?[0-9A-Fa-f]{4}", value):
        vendor, device = (p[2:] if p.lower().startswith("0x") else p for p in value.split(":"))
        return "pci", pci_selector(vendor.lower(), device.lower())
    if not value:
        raise UsageError("empty selector in --resource-name", fix="use VVVV:DDDD=NAME or 'TYPE NAME'=NAME")
    return "mdev", normalize(value)


def parse_overrides(pairs: Iterable[str]) -> Dict[Tuple[str, str], str]:
    """--resource-name SELECTOR=NAME values, validated. Raises UsageError, InvalidResourceNameError."""
    found: Dict[Tuple[str, str], str] = {}
    for pair in pairs:
        selector, sep, name = pair.rpartition("=")
        if not sep or not selector:
            raise UsageError(f"invalid --resource-name {pair!r}",
                             fix="use SELECTOR=NAME: 10DE:1EB8=nvidia.com/TU104GL_TESLA_T4 or "
                                 "'GRID T4-1Q'=nvidia.com/GRID_T4-1Q")
        found[parse_selector_key(selector)] = check_resource_name(name.strip())
    return found


# Kubernetes label syntax (apimachinery validation.IsQualifiedName / IsValidLabelValue): a key
# is [DNS-1123 subdomain prefix, at most 253, "/"] a name of at most 63; a value is empty or a name.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def label_problem(key: str, value: str) -> Optional[str]:
    """Why ``key: value`` is not a valid Kubernetes label, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r}: the prefix before '/' must be a DNS subdomain (example.com)"
    if not _LABEL_NAME.fullmatch(name):
        return (f"label key {key!r}: the name must be 1-63 characters, A-Z a-z 0-9 - _ . and alphanumeric at "
                "both ends")
    if value and not _LABEL_NAME.fullmatch(value):
        return f"label value {value!r}: at most 63 characters, A-Z a-z 0-9 - _ . and alphanumeric at both ends"
    return None


def parse_key_values(pairs: Iterable[str], option: str) -> Dict[str, str]:
    """``key=value`` options (--label, --node-selector) as a dict, in order; each a valid
    Kubernetes label. Raises UsageError."""
    found: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"invalid {option} {pair!r}",
                             fix=f"use {option} KEY=VALUE, e.g. nvidia.com/gpu.present=true")
        problem = label_problem(key.strip(), value.strip())
        if problem:
            raise UsageError(f"invalid {option} {pair!r}: {problem}",
                             fix=f"use {option} KEY=VALUE, e.g. nvidia.com/gpu.present=true")
        found[key.strip()] = value.strip()
    return found


# A Kubernetes resource.Quantity (apimachinery's quantity.go): a decimal number and an optional
# binary (Ki … Ei), decimal (n u m k M G T P E) or exponent (e3, E-2) suffix.
_QUANTITY = re.compile(r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?")


def check_memory(text: str) -> str:
    """``text`` when it is a positive Kubernetes quantity (4Gi, 4096Mi, 4e9). Raises UsageError."""
    match = _QUANTITY.fullmatch(text or "")
    if not match or float(match.group(1)) == 0:
        raise UsageError(f"invalid --memory {text!r}", fix="a Kubernetes quantity such as 4Gi, 4096Mi or 4G")
    return text


def dns_label(text: str) -> str:
    """A DNS-1123 label derived from ``text``: lower case, other characters as ``-``, ≤ 63."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    return label or "dev"


# ----------------------------------------------------------------------------- notes


class Notes:
    """Messages for people, each once, in order; repeated ones (10,000 hosts) counted."""

    def __init__(self) -> None:
        self._items: Dict[str, List[Any]] = {}

    def add(self, key: str, text: str, host: Optional[str] = None) -> None:
        item = self._items.get(key)
        if item is None:
            self._items[key] = [text, [host] if host else []]
        elif host and host not in item[1]:
            item[1].append(host)

    def lines(self) -> List[str]:
        out = []
        for text, hosts in self._items.values():
            out.append(f"{text} [{_few(hosts)}]" if len(hosts) > 1 else text)
        return out


def feature_gate_note() -> str:
    return ("KubeVirt needs the HostDevices feature gate for hostDevices (still Alpha in v1.9) and, up to v1.3, "
            "the GPU gate for gpus: add them to spec.configuration.developerConfiguration.featureGates")


# ----------------------------------------------------------------------------- selection


class Selection(NamedTuple):
    """What to permit. Empty everywhere: the devices on vfio-pci and the types of existing mdevs."""

    addresses: Tuple[str, ...] = ()
    device_ids: Tuple[str, ...] = ()       # "10de:1eb8"
    vendor: Optional[str] = None
    class_prefixes: Optional[tuple] = None
    mdev_names: Tuple[str, ...] = ()
    all_mdev_types: bool = False

    @property
    def explicit(self) -> bool:
        return bool(self.addresses or self.device_ids or self.vendor or self.class_prefixes or self.mdev_names
                    or self.all_mdev_types)


class Options(NamedTuple):
    naming: Optional[str] = None           # None: nvidia for 10de with external, else kubevirt
    external: bool = False
    overrides: Dict[Tuple[str, str], str] = {}
    mdev_config: bool = False
    node_selector: Optional[Dict[str, str]] = None


class Entry(NamedTuple):
    kind: str                              # "pci" | "mdev"
    selector: str                          # "10DE:1EB8" | "GRID T4-1Q"
    resource_name: str
    external: bool

    def to_cr(self) -> dict:
        key = "pciVendorSelector" if self.kind == "pci" else "mdevNameSelector"
        out: Dict[str, Any] = {key: self.selector, "resourceName": self.resource_name}
        if self.external:
            out["externalResourceProvider"] = True
        return out


class Result(NamedTuple):
    permitted: dict                        # permittedHostDevices
    mdev_config: Optional[dict]            # mediatedDevicesConfiguration, or None
    entries: List[Entry]
    notes: List[str]


def _function(dev: dict) -> rules.Function:
    """An inventory's device as the facts rules.py reads."""
    return rules.Function(dev["address"], dev.get("driver"), dev["class_id"], dev["vendor_id"], dev["device_id"],
                          dev.get("iommu_group"))


def _pci_ids_label(inv: dict) -> str:
    info = inv.get("pci_ids") or {}
    if not info.get("path"):
        return "the host's pci.ids (none found)"
    dated = ", ".join(filter(None, [info.get("version") and f"version {info['version']}", info.get("date")]))
    return f"{info['path']} ({dated})" if dated else info["path"]


def _pci_name(dev: dict, names) -> Tuple[Optional[str], Optional[str]]:
    """(the device's name, where it came from: "pci.ids" | "hwdb" | None). ``names`` (a
    PciIds) wins; the inventory's own name counts where ``names`` is None, and its udev hwdb
    name (device_name_source "hwdb") also where ``names`` lacks the device."""
    if names is not None:
        name = names.device(dev["vendor_id"], dev["device_id"])
        if name is not None:
            return name, "pci.ids"
    source = dev.get("device_name_source") or ("pci.ids" if dev.get("device_name") else None)
    if dev.get("device_name") and (names is None or source == "hwdb"):
        return dev["device_name"], source
    return None, None


def _select_devices(inv: dict, sel: Selection, found_addresses: set) -> List[dict]:
    if not sel.explicit:
        return [d for d in inv["devices"] if rules.is_vfio_driver(d.get("driver"))]
    wanted = []
    by_address = {d["address"]: d for d in inv["devices"]} if sel.addresses else {}
    for address in sel.addresses:
        dev = by_address.get(address)
        if dev is not None:
            found_addresses.add(address)
            wanted.append(dev)
    selector = rules.Selector(tuple(sel.device_ids), sel.vendor, sel.class_prefixes)
    if not selector.empty:
        wanted.extend(d for d in inv["devices"] if selector.selects(_function(d)))
    return wanted


def _select_mdev_types(inv: dict, sel: Selection, found_names: set) -> List[Tuple[str, Optional[str], str]]:
    """(selector, type name or None, parent) for the wanted types of one inventory."""
    out = []
    if not sel.explicit:
        for m in inv["mdevs"]:
            if m.get("type_name") or m.get("type_id"):
                name = m.get("type_name")
                out.append((mdev_selector(name, m["type_id"]), name, m["parent"]))
        return out
    for parent in inv["mdev_types"]:
        if parent.get("interface", "mdev") != "mdev":
            continue  # NVIDIA vGPU on SR-IOV VFs has no mdev bus: nothing for mediatedDevices
        for t in parent["types"]:
            name = t.get("name")
            selector = mdev_selector(name, t["id"])
            if sel.all_mdev_types:
                out.append((selector, name, parent["address"]))
                continue
            for wanted in sel.mdev_names:
                if normalize(wanted) == normalize(selector) or wanted.strip() == t["id"]:
                    found_names.add(wanted)
                    out.append((selector, name, parent["address"]))
                    break
    return out


def nvidia_plugin_name(naming: str, device_id: str, pci_name: Optional[str], names=None) -> str:
    """The name the plugin release(s) of ``naming`` (an NVIDIA_NAMINGS key) advertise for
    10de:``device_id``. ``pci_name``: the device's name in NVIDIA's block of pci.ids (what the
    "vendor-block" lookup finds); ``names``: the whole PciIds, which the older lookups scan."""
    lookup, chars = NVIDIA_NAMINGS[naming]
    if lookup != "vendor-block":
        pci_name = nvidia_plugin_text(names.text(), device_id, lookup)
    return nvidia_pci_name(device_id, pci_name, chars)


def _pci_resource(dev: dict, pci_name: Optional[str], naming: str, names) -> str:
    if dev["vendor_id"] == NVIDIA and naming in NVIDIA_NAMINGS:
        return nvidia_plugin_name(naming, dev["device_id"], pci_name, names)
    return kubevirt_pci_name(dev["vendor_id"], dev["device_id"], pci_name)


def build(inventories: Sequence[dict], sel: Selection, opts: Options, names=None,
          names_info: Optional[dict] = None) -> Result:
    """permittedHostDevices (and with ``opts.mdev_config`` mediatedDevicesConfiguration) for
    one host or a fleet. ``names`` (a PciIds; ``names_info`` its path/version/date) replaces
    each inventory's own pci.ids names.
    Linear in hosts × devices. Raises UsageError (nothing selected, unknown address/ID/type),
    InvalidResourceNameError, ResourceNameConflictError."""
    notes = Notes()
    naming_nvidia = opts.naming or ("nvidia" if opts.external else "kubevirt")
    if naming_nvidia in NVIDIA_NAMINGS and NVIDIA_NAMINGS[naming_nvidia][0] != "vendor-block" and \
            (names is None or names.path is None):
        raise UsageError(f"--naming {naming_nvidia} reads the whole pci.ids, as those plugin releases did, and "
                         + ("no pci.ids was found" if names is not None else "inventories carry only the names"),
                         fix="pass --pci-ids FILE, best the plugin image's own /usr/pci.ids")
    pci: Dict[str, Dict[str, List[str]]] = {}       # selector → name → hosts
    pci_dev: Dict[str, dict] = {}
    mdev: Dict[str, Dict[str, List[str]]] = {}      # normalised selector → name → hosts
    mdev_selector: Dict[str, str] = {}
    host_types: List[Tuple[dict, List[str]]] = []   # inventory, wanted type spellings
    found_addresses: set = set()
    found_names: set = set()
    name_cache: Dict[tuple, str] = {}
    for inv in inventories:
        host = inv.get("hostname") or "this host"
        devices = _select_devices(inv, sel, found_addresses)
        by_address = None
        for dev in devices:
            selector = pci_selector(dev["vendor_id"], dev["device_id"])
            pci_name, name_source = _pci_name(dev, names)
            override = opts.overrides.get(("pci", selector))
            if override:
                resource = override
            else:
                key = (dev["vendor_id"], dev["device_id"], pci_name)
                resource = name_cache.get(key)
                if resource is None:
                    resource = name_cache[key] = _pci_resource(dev, pci_name, naming_nvidia, names)
                if pci_name is None or name_source == "hwdb":
                    source = _pci_ids_label({"pci_ids": names_info} if names is not None else inv)
                    _missing_name_note(notes, dev, resource, source, naming_nvidia, host,
                                       pci_name if name_source == "hwdb" else None)
            pci.setdefault(selector, {}).setdefault(resource, []).append(host)
            pci_dev.setdefault(selector, dev)
            if rules.is_vfio_driver(dev.get("driver")) and dev.get("driver") != "vfio-pci" and not opts.external:
                # virt-handler's discoverPermittedHostPCIDevices (pkg/virt-handler/device-manager/
                # pci_device.go, KubeVirt v1.9) skips any driver but vfio-pci (NVIDIA vGPU VFs on
                # "nvidia" aside): a device on a vfio variant driver is never allocatable there.
                notes.add(f"variant {selector}",
                          f"warning: {selector} ({dev['address']}) is on {dev['driver']}, a vfio variant driver: "
                          "KubeVirt's own device plugin serves only devices on exactly vfio-pci, so this entry "
                          f"never becomes allocatable: bind it to vfio-pci (hostdev unbind {dev['address']}; "
                          f"hostdev bind {dev['address']}), or permit it with --external for a device plugin "
                          "that serves that driver", host)
            if not rules.is_vfio_driver(dev.get("driver")):
                notes.add(f"unbound {selector}",
                          f"{selector} ({dev['address']}) is on {dev.get('driver') or 'no driver'}, not vfio-pci: "
                          f"KubeVirt does not see it until it is bound (hostdev bind {dev['address']})", host)
            if dev.get("iommu_group") is not None:
                if by_address is None:
                    by_address = {d["address"]: d for d in inv["devices"]}
                _group_note(notes, inv, dev, by_address, host)
        wanted_types = []
        parent_vendor = {d["address"]: d["vendor_id"] for d in inv["devices"]} if inv["mdev_types"] or \
            inv["mdevs"] else {}
        for selector, type_name, parent in _select_mdev_types(inv, sel, found_names):
            key = normalize(selector)
            vendor = parent_vendor.get(parent)
            override = opts.overrides.get(("mdev", key))
            if override:
                resource = override
            elif vendor == NVIDIA and naming_nvidia in NVIDIA_NAMINGS:
                resource = nvidia_mdev_name(selector)
            else:
                resource = kubevirt_mdev_name(selector, vendor)
            mdev.setdefault(key, {}).setdefault(resource, []).append(host)
            mdev_selector.setdefault(key, selector)
            spelling = normalize(type_name) if type_name and normalize(type_name) else selector
            if spelling not in wanted_types:
                wanted_types.append(spelling)
        host_types.append((inv, wanted_types))

    _check_found(sel, found_addresses, found_names, inventories)
    if not pci and not mdev:
        raise UsageError("nothing to permit: no device is on vfio-pci and no mdev exists"
                         + (" on this host" if len(inventories) == 1 else " on these hosts"),
                         fix="bind devices first (hostdev bind ADDR), or name them: ADDR, --device VVVV:DDDD, "
                             "--vendor, --class, --mdev 'TYPE NAME'")
    for key in opts.overrides:
        if (key[0] == "pci" and key[1] not in pci) or (key[0] == "mdev" and key[1] not in mdev):
            raise UsageError(f"--resource-name {key[1]}: no selected device or mdev type has this selector",
                             fix=f"selected: {', '.join(list(pci) + [mdev_selector[k] for k in mdev]) or 'none'}")

    entries: List[Entry] = []
    for selector, named in pci.items():
        if len(named) > 1:
            raise ResourceNameConflictError(selector, named)
        resource = next(iter(named))
        _validate_generated(resource, selector, naming_nvidia, opts.external)
        entries.append(Entry("pci", selector, resource, opts.external))
    for key, named in mdev.items():
        if len(named) > 1:
            raise ResourceNameConflictError(mdev_selector[key], named)
        resource = next(iter(named))
        _validate_generated(resource, mdev_selector[key], naming_nvidia, opts.external)
        entries.append(Entry("mdev", mdev_selector[key], resource, opts.external))
    _entry_notes(notes, entries, pci_dev, opts)

    permitted: Dict[str, Any] = {}
    pci_entries = [e.to_cr() for e in entries if e.kind == "pci"]
    mdev_entries = [e.to_cr() for e in entries if e.kind == "mdev"]
    if pci_entries:
        permitted["pciHostDevices"] = pci_entries
    if mdev_entries:
        permitted["mediatedDevices"] = mdev_entries
    config = None
    if opts.mdev_config:
        config = _mdev_config(host_types, opts, notes)
    return Result(permitted, config, entries, notes.lines())


def _check_found(sel: Selection, addresses: set, names: set, inventories: Sequence[dict]) -> None:
    for address in sel.addresses:
        if address not in addresses:
            raise DeviceNotFoundError(address)
    if sel.device_ids or sel.vendor or sel.class_prefixes:
        wanted = set(sel.device_ids)
        seen = set()
        any_match = False
        for inv in inventories:
            for d in inv["devices"]:
                pid = f"{d['vendor_id']}:{d['device_id']}"
                if pid in wanted:
                    seen.add(pid)
                if (not sel.vendor or d["vendor_id"] == sel.vendor) and \
                        (not sel.class_prefixes or d["class_id"].startswith(sel.class_prefixes)):
                    any_match = True
        missing = sorted(wanted - seen)
        if missing or not any_match:
            what = ", ".join(missing) or ", ".join(filter(None, [sel.vendor and f"vendor {sel.vendor}",
                                                               sel.class_prefixes and "that class"]))
            raise UsageError(f"no device matches {what}", fix="run 'hostdev devices' to see the IDs")
    for wanted in sel.mdev_names:
        if wanted not in names:
            raise UsageError(f"no mdev type is named {wanted!r}",
                             fix="run 'hostdev mdev types' for the names (case-sensitive; spaces or '_')")


def _missing_name_note(notes: Notes, dev: dict, resource: str, source: str, naming: str, host: str,
                       hwdb_name: Optional[str] = None) -> None:
    selector = pci_selector(dev["vendor_id"], dev["device_id"])
    if hwdb_name is not None:
        text = (f"{selector} is not in {source}: named {resource} from the udev hardware database ({hwdb_name!r}, "
                "as lspci shows it)")
        if dev["vendor_id"] == NVIDIA and naming in NVIDIA_NAMINGS:
            text += (f"; the NVIDIA plugin names it from the pci.ids in its image, {resource} only if that file "
                     f"knows it (else nvidia.com/{dev['device_id']}): check with kubectl get node NODE -o "
                     f"jsonpath='{{.status.allocatable}}', or pass --resource-name {selector}=NAME")
        notes.add(f"hwdb {selector} {source}", "warning: " + text, host)
        return
    if dev["vendor_id"] == NVIDIA and naming in NVIDIA_NAMINGS:
        text = (f"{selector} is not in {source}: using the NVIDIA plugin's own fallback {resource}, but the plugin "
                f"reads its bundled pci.ids, which may name it differently; pass a newer --pci-ids FILE or "
                f"--resource-name {selector}=NAME (kubectl get node NODE -o jsonpath='{{.status.allocatable}}' "
                "shows what the plugin advertises)")
    else:
        text = (f"{selector} is not in {source}: named {resource}; pass a newer --pci-ids FILE or "
                f"--resource-name {selector}=NAME for a readable name")
    notes.add(f"missing {selector} {source}", "warning: " + text, host)


def _group_note(notes: Notes, inv: dict, dev: dict, by_address: dict, host: str) -> None:
    for group in inv["iommu_groups"]:
        if group["id"] != dev["iommu_group"]:
            continue
        members = [_function(by_address[m]) for m in group["devices"] if m in by_address]
        for other in rules.group_blockers(members, (dev["address"],)):
            notes.add(f"group {dev['address']} {other.address}",
                      f"{dev['address']}'s IOMMU group {group['id']} also holds {other.address} on "
                      f"{other.driver}: the group is not viable for passthrough until it is on vfio-pci "
                      f"(kubevirt#6718; hostdev bind {dev['address']} binds the whole group)", host)
        return


def _validate_generated(resource: str, selector: str, naming: str, external: bool) -> None:
    problem = resource_name_problem(resource)
    if problem:
        if external:
            fix = ("the external plugin would advertise this name and kubelet rejects it: use KubeVirt's own plugin "
                   f"(--no-external --naming kubevirt), or --resource-name {selector}=NAME with your own plugin")
        else:
            fix = f"pass --resource-name {selector}=DOMAIN/NAME with a valid name"
        raise InvalidResourceNameError(resource, f"{problem} (what --naming {naming} gives {selector})", fix)


def _entry_notes(notes: Notes, entries: List[Entry], pci_dev: Dict[str, dict], opts: Options) -> None:
    for e in entries:
        if e.resource_name == "nvidia.com/gpu":
            notes.add(f"owned {e.selector}", f"warning: nvidia.com/gpu is the NVIDIA GPU Operator's container "
                      f"resource; {e.selector} under that name collides with its device plugin")
        if not e.external:
            continue
        dev = pci_dev.get(e.selector)
        vendor = dev["vendor_id"] if dev else None
        if e.kind == "pci" and vendor != NVIDIA:
            notes.add(f"external {e.selector}",
                      f"warning: {e.selector} is marked externalResourceProvider: the plugin advertising "
                      f"{e.resource_name} must export {env_var(e.resource_name, False)} to virt-launcher; "
                      "Intel's QAT plugin and the SR-IOV network plugin do not, so they cannot be the provider")
    if any(e.external for e in entries):
        examples = [f"{env_var(e.resource_name, e.kind == 'mdev')} for {e.resource_name}" for e in entries
                    if e.external][:2]
        notes.add("env", "external plugins must set PCI_RESOURCE_<R> (MDEV_PCI_RESOURCE_<R> for vGPU), "
                         "R = resourceName upper-cased with '/' and '.' as '_': " + "; ".join(examples)
                  + " (the NVIDIA kubevirt-gpu-device-plugin does)")
    notes.add("gates", feature_gate_note())


def _mdev_config(host_types: List[Tuple[dict, List[str]]], opts: Options, notes: Notes) -> dict:
    notes.add("mdev-delete", "warning: while mediatedDevicesConfiguration is enabled, virt-handler deletes every "
                             "mdev whose type is not listed for its node, unless an external mdevNameSelector "
                             "covers it; set enabled: false (KubeVirt v1.8+) to keep managing mdevs yourself")
    notes.add("mdev-one", "virt-handler creates one type per parent card (all its instances), and only on parents "
                          "that have no mdevs yet")
    for inv, types in host_types:
        host = inv.get("hostname") or "this host"
        wanted = set(types)
        for m in inv["mdevs"]:
            spellings = {m.get("type_id"), normalize(m["type_name"]) if m.get("type_name") else None}
            if not wanted & spellings:
                notes.add(f"doomed {m['uuid']}",
                          f"warning: virt-handler will delete mdev {m['uuid']} "
                          f"({m.get('type_name') or m.get('type_id')}) on {host}: its type is not in the list", host)
    typed = [(inv, types) for inv, types in host_types if types]
    if not typed:
        return {}
    if opts.node_selector is not None:
        union = _union(t for _, types in typed for t in types)
        return {"nodeMediatedDeviceTypes": [{"nodeSelector": dict(opts.node_selector), "mediatedDeviceTypes": union}]}
    first = typed[0][1]
    if len(host_types) == len(typed) and all(types == first for _, types in typed):
        return {"mediatedDeviceTypes": list(first)}
    groups: Dict[tuple, Tuple[Dict[str, str], List[List[str]]]] = {}
    for inv, types in typed:
        labels = inv.get("labels") or {}
        selector = dict(labels) if labels else {"kubernetes.io/hostname": inv.get("hostname") or ""}
        key = tuple(sorted(selector.items()))
        entry = groups.setdefault(key, (selector, []))
        if types not in entry[1]:
            entry[1].append(types)
    node_entries = []
    for selector, type_lists in groups.values():
        if len(type_lists) > 1:
            label = ",".join(f"{k}={v}" for k, v in selector.items())
            notes.add(f"mixed {label}",
                      f"warning: hosts labelled {label} want different mdev types "
                      f"({' / '.join(','.join(t) for t in type_lists)}); KubeVirt gives them the union and creates "
                      "one type per card: label them apart (hostdev inventory --label)")
        node_entries.append({"nodeSelector": selector,
                             "mediatedDeviceTypes": _union(t for ts in type_lists for t in ts)})
    return {"nodeMediatedDeviceTypes": node_entries}


def _union(items: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(items))


# ----------------------------------------------------------------------------- existing CR

PERMITTED_KEYS = ("pciHostDevices", "mediatedDevices", "usb")
ENTRY_KEYS = {
    "pciHostDevices": (("pciVendorSelector", str, True), ("resourceName", str, True),
                       ("externalResourceProvider", bool, False)),
    "mediatedDevices": (("mdevNameSelector", str, True), ("resourceName", str, True),
                        ("externalResourceProvider", bool, False)),
    "usb": (("resourceName", str, True), ("selectors", list, True), ("externalResourceProvider", bool, False)),
}
MDEV_CONFIG_KEYS = ("mediatedDevicesTypes", "mediatedDeviceTypes", "nodeMediatedDeviceTypes", "enabled")
OWN_KEYS = {"permittedHostDevices": PERMITTED_KEYS, "mediatedDevicesConfiguration": MDEV_CONFIG_KEYS}


class Existing(NamedTuple):
    """What an existing CR or snippet holds, cleaned of unknown keys, and what was wrong with it."""

    doc: dict                      # the whole document as read
    is_cr: bool                    # a kind: KubeVirt manifest
    permitted: Dict[str, List[dict]]
    mdev_config: Optional[dict]
    problems: List[str]
    source: str                    # the file it came from, for messages


def _suggest(key: str, allowed: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _misspelt_list_key(key: str, value: Any) -> Optional[str]:
    """The permittedHostDevices list ``key`` surely means ("pciHostDevice", "PciHostDevices"),
    when ``value`` is a list of mappings; None otherwise."""
    import difflib

    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return None
    close = difflib.get_close_matches(key.lower(), [k.lower() for k in PERMITTED_KEYS], n=1, cutoff=0.85)
    return next(k for k in PERMITTED_KEYS if k.lower() == close[0]) if close else None


def read_existing(text: str, source: str) -> Existing:
    """Parse an existing KubeVirt CR (``kubectl get kubevirt -n kubevirt kubevirt -o yaml``), a
    merge patch, or a snippet (``permittedHostDevices:`` at the top). Unknown and misplaced keys
    are reported in ``problems`` and dropped; entries misplaced directly under ``configuration``
    are moved where KubeVirt reads them. Raises BadDocumentError when the shape is unusable."""
    from .documents import load_yaml

    doc = load_yaml(text, source, fix="save it: kubectl get kubevirt -n kubevirt kubevirt -o yaml > kv.yaml")
    if not isinstance(doc, dict):
        raise BadDocumentError(source, "", "expected a KubeVirt CR or a permittedHostDevices snippet (a mapping)")
    problems: List[str] = []
    is_cr = doc.get("kind") == "KubeVirt" or "spec" in doc
    if doc.get("kind") not in (None, "KubeVirt"):
        raise BadDocumentError(source, "kind", f"is {doc.get('kind')!r}, not KubeVirt")
    if is_cr:
        spec = doc.get("spec") or {}
        if not isinstance(spec, dict):
            raise BadDocumentError(source, "spec", "is not a mapping")
        config = spec.get("configuration") or {}
        prefix = "spec.configuration"
        for key in PERMITTED_KEYS + ("permittedHostDevices", "mediatedDevicesConfiguration"):
            if key in spec:
                problems.append(f"{source}: spec.{key} is misplaced: it belongs under spec.configuration "
                                "(KubeVirt ignores it there)")
    elif "configuration" in doc:
        config, prefix = doc.get("configuration") or {}, "configuration"
    else:
        config, prefix = doc, "(top level)"
    if not isinstance(config, dict):
        raise BadDocumentError(source, prefix, "is not a mapping")

    permitted: Dict[str, List[dict]] = {k: [] for k in PERMITTED_KEYS}
    moved: Dict[str, List[dict]] = {}
    raw_permitted = config.get("permittedHostDevices")
    if raw_permitted is not None:
        if not isinstance(raw_permitted, dict):
            raise BadDocumentError(source, f"{prefix}.permittedHostDevices", "is not a mapping")
        for key, value in raw_permitted.items():
            where = f"{prefix}.permittedHostDevices.{key}"
            if key in PERMITTED_KEYS:
                permitted[key].extend(_entries(value, key, where, source, problems))
            elif key in ("nodeMediatedDeviceTypes", "mediatedDeviceTypes", "mediatedDevicesTypes"):
                problems.append(f"{source}: {where} is misplaced: it belongs under "
                                "spec.configuration.mediatedDevicesConfiguration (KubeVirt ignores it here; dropped)")
            elif _misspelt_list_key(key, value):
                right = _misspelt_list_key(key, value)
                entries = _entries(value, right, where, source, problems)
                permitted[right].extend(entries)
                problems.append(f"{source}: {where} is not a KubeVirt field (the API server drops it silently): "
                                f"read as {right}, its {len(entries)} entries kept there")
            else:
                problems.append(f"{source}: {where} is not a KubeVirt field{_suggest(key, PERMITTED_KEYS)}: "
                                "the API server drops it silently (dropped)")
    for key in PERMITTED_KEYS:
        if key in config:
            where = f"{prefix}.{key}"
            moved[key] = _entries(config[key], key, where, source, problems)
            permitted[key].extend(moved[key])
            problems.append(f"{source}: {where} is misplaced: it belongs under permittedHostDevices "
                            f"(kubevirt#11135; KubeVirt ignores it there): its {len(moved[key])} entries were "
                            "moved there")
    for key in ("nodeMediatedDeviceTypes", "mediatedDeviceTypes"):
        if key in config:
            problems.append(f"{source}: {prefix}.{key} is misplaced: it belongs under mediatedDevicesConfiguration "
                            "(KubeVirt ignores it there; dropped)")
    mdev_config = None
    if "mediatedDevicesConfiguration" in config:
        mdev_config = _read_mdev_config(config["mediatedDevicesConfiguration"],
                                        f"{prefix}.mediatedDevicesConfiguration", source, problems)
    _duplicate_problems(permitted, source, problems)
    return Existing(doc, is_cr, permitted, mdev_config, problems, source)


def _entries(value: Any, key: str, where: str, source: str, problems: List[str]) -> List[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadDocumentError(source, where, "is not a list")
    allowed = ENTRY_KEYS[key]
    names = [k for k, _, _ in allowed]
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise BadDocumentError(source, at, "is not a mapping")
        clean: Dict[str, Any] = {}
        for field, kind, required in allowed:
            if field not in item:
                if required:
                    problems.append(f"{source}: {at} has no {field} (required; KubeVirt rejects the CR)")
                continue
            if not isinstance(item[field], kind):
                problems.append(f"{source}: {at}.{field} must be a {kind.__name__} (dropped)")
                continue
            clean[field] = item[field]
        for field in item:
            if field not in names:
                problems.append(f"{source}: {at}.{field} is not a KubeVirt field{_suggest(field, names)}: "
                                "the API server drops it silently (dropped)")
        if key == "pciHostDevices" and isinstance(clean.get("pciVendorSelector"), str):
            value_ = clean["pciVendorSelector"]
            if value_ != value_.upper():
                problems.append(f"{source}: {at}.pciVendorSelector {value_!r} is not upper-case (KubeVirt before "
                                "kubevirt#4925 matched only upper-case): written upper-case")
                clean["pciVendorSelector"] = value_.upper()
            if not re.fullmatch(r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}", value_):
                problems.append(f"{source}: {at}.pciVendorSelector {value_!r} is not VVVV:DDDD in hex: it never "
                                "matches (no 0x, spaces or wildcards)")
        if key == "mediatedDevices" and isinstance(clean.get("mdevNameSelector"), str):
            value_ = clean["mdevNameSelector"]
            if value_ != value_.strip():
                problems.append(f"{source}: {at}.mdevNameSelector {value_!r} has surrounding spaces: virt-handler "
                                "turns them into '_' and it never matches")
        if isinstance(clean.get("resourceName"), str):
            problem = resource_name_problem(clean["resourceName"])
            if problem:
                problems.append(f"{source}: {at}.resourceName {clean['resourceName']!r} is invalid: {problem}")
        if "pciVendorSelector" in clean or "mdevNameSelector" in clean or key == "usb":
            out.append(clean)
    return out


def _read_mdev_config(value: Any, where: str, source: str, problems: List[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadDocumentError(source, where, "is not a mapping")
    out: Dict[str, Any] = {}
    for key, item in value.items():
        at = f"{where}.{key}"
        if key in ("mediatedDeviceTypes", "mediatedDevicesTypes"):
            types = _type_list(item, at, source, problems)
            if key == "mediatedDevicesTypes":
                problems.append(f"{source}: {at} is the deprecated spelling: merged into mediatedDeviceTypes")
            out["mediatedDeviceTypes"] = _union(out.get("mediatedDeviceTypes", []) + types)
        elif key == "nodeMediatedDeviceTypes":
            if not isinstance(item, list):
                raise BadDocumentError(source, at, "is not a list")
            nodes = []
            for i, node in enumerate(item):
                node_at = f"{at}[{i}]"
                if not isinstance(node, dict) or not isinstance(node.get("nodeSelector"), dict):
                    raise BadDocumentError(source, node_at, "needs nodeSelector (a mapping of label to value)")
                types: List[str] = []
                for field, types_value in node.items():
                    if field in ("mediatedDeviceTypes", "mediatedDevicesTypes"):
                        types += _type_list(types_value, f"{node_at}.{field}", source, problems)
                    elif field != "nodeSelector":
                        problems.append(f"{source}: {node_at}.{field} is not a KubeVirt field: dropped")
                nodes.append({"nodeSelector": {str(k): str(v) for k, v in node["nodeSelector"].items()},
                              "mediatedDeviceTypes": _union(types)})
            out["nodeMediatedDeviceTypes"] = nodes
        elif key == "enabled":
            if isinstance(item, bool):
                out["enabled"] = item
            else:
                problems.append(f"{source}: {at} must be true or false (dropped)")
        else:
            problems.append(f"{source}: {at} is not a KubeVirt field{_suggest(key, MDEV_CONFIG_KEYS)}: dropped")
    return out


def _type_list(value: Any, where: str, source: str, problems: List[str]) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadDocumentError(source, where, "is not a list of type names")
    for v in value:
        if " " in v:
            problems.append(f"{source}: {where} has {v!r}: a type spelt with spaces never matches: "
                            f"written {normalize(v.strip())!r}")
    return [normalize(v.strip()) for v in value]


def _duplicate_problems(permitted: Dict[str, List[dict]], source: str, problems: List[str]) -> None:
    seen: Dict[str, str] = {}
    for e in permitted["pciHostDevices"]:
        sel = str(e.get("pciVendorSelector", "")).lower()
        if sel in seen:
            problems.append(f"{source}: pciVendorSelector {e['pciVendorSelector']} is listed twice: KubeVirt keeps "
                            f"only the last resourceName ({e.get('resourceName')})")
        seen[sel] = e.get("resourceName", "")


# ----------------------------------------------------------------------------- documents


class Document(NamedTuple):
    data: Any
    notes: List[str]


def _key_of(kind: str, entry: dict) -> str:
    if kind == "pciHostDevices":
        return str(entry.get("pciVendorSelector", "")).lower()
    if kind == "mediatedDevices":
        return normalize(str(entry.get("mdevNameSelector", "")))
    return str(entry.get("resourceName", ""))


def _merge_permitted(existing: Optional[Existing], new: dict, notes: List[str]) -> Tuple[dict, Dict[str, List[dict]]]:
    """(merged permittedHostDevices, the entries not already there per list)."""
    merged: Dict[str, Any] = {}
    added: Dict[str, List[dict]] = {}
    for kind in PERMITTED_KEYS:
        old = list(existing.permitted[kind]) if existing else []
        index = {_key_of(kind, e): e for e in old}
        fresh = []
        for entry in new.get(kind, []):
            have = index.get(_key_of(kind, entry))
            if have is None:
                fresh.append(entry)
                index[_key_of(kind, entry)] = entry
            elif have.get("resourceName") != entry["resourceName"] or \
                    bool(have.get("externalResourceProvider")) != bool(entry.get("externalResourceProvider")):
                selector = entry.get("pciVendorSelector") or entry.get("mdevNameSelector")
                notes.append(f"warning: the existing CR names {selector} {have.get('resourceName')}"
                             f"{' (external)' if have.get('externalResourceProvider') else ''}; hostdev would name it "
                             f"{entry['resourceName']}{' (external)' if entry.get('externalResourceProvider') else ''}:"
                             " kept the existing entry; if the device plugin advertises the other name, pods stay "
                             "Pending with 'Insufficient ...' (kubevirt#7547)")
        if old or fresh:
            merged[kind] = old + fresh
        added[kind] = fresh
    return merged, added


def _merge_mdev_config(existing: Optional[Existing], new: Optional[dict]) -> Optional[dict]:
    old = existing.mdev_config if existing else None
    if new is None:
        return old
    if not old:
        return new
    out: Dict[str, Any] = {}
    types = _union(old.get("mediatedDeviceTypes", []) + new.get("mediatedDeviceTypes", []))
    if types:
        out["mediatedDeviceTypes"] = types
    nodes = [dict(n) for n in old.get("nodeMediatedDeviceTypes", [])]
    index = {tuple(sorted(n["nodeSelector"].items())): n for n in nodes}
    for node in new.get("nodeMediatedDeviceTypes", []):
        key = tuple(sorted(node["nodeSelector"].items()))
        if key in index:
            index[key]["mediatedDeviceTypes"] = _union(index[key]["mediatedDeviceTypes"] + node["mediatedDeviceTypes"])
        else:
            nodes.append(node)
            index[key] = node
    if nodes:
        out["nodeMediatedDeviceTypes"] = nodes
    if "enabled" in old:
        out["enabled"] = old["enabled"]
    return out


def _configuration(permitted: dict, mdev_config: Optional[dict]) -> dict:
    config: Dict[str, Any] = {}
    if permitted:
        config["permittedHostDevices"] = permitted
    if mdev_config:
        config["mediatedDevicesConfiguration"] = mdev_config
    return config


def _cr(config: dict, name: str, namespace: str, existing: Optional[Existing]) -> dict:
    if existing is not None and existing.is_cr:
        old = existing.doc
        meta = old.get("metadata") or {}
        metadata: Dict[str, Any] = {"name": meta.get("name", name), "namespace": meta.get("namespace", namespace)}
        for key in ("labels", "annotations"):
            value = dict(meta.get(key) or {})
            value.pop("kubectl.kubernetes.io/last-applied-configuration", None)
            if value:
                metadata[key] = value
        spec = dict(old.get("spec") or {})
        for key in PERMITTED_KEYS + ("permittedHostDevices", "mediatedDevicesConfiguration"):
            spec.pop(key, None)  # misplaced (reported); never emitted
        configuration = dict(spec.get("configuration") or {})
        for key in PERMITTED_KEYS + ("nodeMediatedDeviceTypes", "mediatedDeviceTypes"):
            configuration.pop(key, None)
        configuration.pop("permittedHostDevices", None)
        configuration.pop("mediatedDevicesConfiguration", None)
        configuration.update(config)
        spec["configuration"] = configuration
        return {"apiVersion": old.get("apiVersion", API_VERSION), "kind": "KubeVirt", "metadata": metadata,
                "spec": spec}
    return {"apiVersion": API_VERSION, "kind": "KubeVirt", "metadata": {"name": name, "namespace": namespace},
            "spec": {"configuration": config}}


def _raw_configuration(existing: Existing) -> Tuple[bool, bool, dict]:
    """(spec present, spec.configuration present, spec.configuration as read) of an existing CR."""
    spec = existing.doc.get("spec")
    config = spec.get("configuration") if isinstance(spec, dict) else None
    return isinstance(spec, dict), isinstance(config, dict), config if isinstance(config, dict) else {}


def _pointer(*parts: str) -> str:
    # RFC 6901: "~" and "/" inside a member name are escaped
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _json_patch(existing: Existing, config: dict) -> List[dict]:
    """RFC 6902 operations that turn the existing CR's permittedHostDevices and
    mediatedDevicesConfiguration into ``config``'s (what ``--format cr`` writes): the first
    missing level added whole; a list the merge only extends gets ``add .../-`` per new entry;
    any other changed member is added whole (``add`` replaces an existing member) and a
    member the merge dropped (the deprecated ``mediatedDevicesTypes``) is removed."""
    ops: List[dict] = []
    has_spec, has_config, raw = _raw_configuration(existing)
    if not has_spec:
        return [{"op": "add", "path": "/spec", "value": {"configuration": config}}] if config else []
    if not has_config:
        return [{"op": "add", "path": CONFIG_PATH, "value": config}] if config else []
    for section in ("permittedHostDevices", "mediatedDevicesConfiguration"):
        want, have = config.get(section), raw.get(section)
        if want is None or want == have:
            continue
        if not isinstance(have, dict):
            ops.append({"op": "add", "path": _pointer("spec", "configuration", section), "value": want})
            continue
        for key, value in want.items():
            old = have.get(key)
            path = _pointer("spec", "configuration", section, key)
            if old == value:
                continue
            if isinstance(old, list) and isinstance(value, list) and value[:len(old)] == old:
                ops.extend({"op": "add", "path": path + "/-", "value": v} for v in value[len(old):])
            else:
                ops.append({"op": "add", "path": path, "value": value})
        for key in have:
            if key not in want and key in OWN_KEYS[section]:  # unknown keys: the server pruned them
                ops.append({"op": "remove", "path": _pointer("spec", "configuration", section, key)})
    return ops


def _merge_patch(existing: Optional[Existing], config: dict) -> dict:
    """RFC 7386 merge patch: the whole merged lists (a merge patch replaces lists), and null
    for every member of the two sections that the merge dropped (the deprecated spelling)."""
    patch = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    if existing is not None and existing.is_cr:
        _, _, raw = _raw_configuration(existing)
        for section in ("permittedHostDevices", "mediatedDevicesConfiguration"):
            have = raw.get(section)
            if isinstance(have, dict) and section in patch:
                for key in have:
                    if key in OWN_KEYS[section]:
                        patch[section].setdefault(key, None)
    return {"spec": {"configuration": patch}}


def render(result: Result, fmt: str, *, name: str = "kubevirt", namespace: str = "kubevirt",
           existing: Optional[Existing] = None) -> Document:
    """The document for ``fmt`` (cr, patch, json-patch, snippet), merged with ``existing``.
    Notes: the build's, the existing document's problems, and each format's caveat."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")
    if fmt in ("patch", "json-patch") and existing is None:
        raise UsageError(f"--format {fmt} needs --merge-with the cluster's current CR: a patch built without it "
                         + ("drops every entry already in the cluster (a merge patch replaces lists whole)"
                            if fmt == "patch" else "can add a second entry for a selector the cluster already "
                            "names, or fail on a list that does not exist yet"),
                         fix="save the CR with kubectl get kubevirt -n kubevirt kubevirt -o yaml > kv.yaml and add "
                             "--merge-with kv.yaml; or use --format cr or snippet")
    if fmt == "json-patch" and not existing.is_cr:
        raise UsageError(f"--format json-patch needs the whole KubeVirt CR in --merge-with, not a snippet "
                         f"({existing.source})",
                         fix="kubectl get kubevirt -n kubevirt kubevirt -o yaml > kv.yaml")
    notes = list(existing.problems) if existing else []
    permitted, _ = _merge_permitted(existing, result.permitted, notes)
    mdev_config = _merge_mdev_config(existing, result.mdev_config)
    config = _configuration(permitted, mdev_config)
    if fmt == "cr":
        data: Any = _cr(config, name, namespace, existing)
    elif fmt == "patch":
        data = _merge_patch(existing, config)
    elif fmt == "json-patch":
        data = _json_patch(existing, config)
    else:
        data = config
    gates = _feature_gates(existing)
    build_notes = result.notes
    if "HostDevices" in gates:  # the CR already enables it: no reminder
        build_notes = [n for n in build_notes if n != feature_gate_note()]
    return Document(data, notes + build_notes)


def _feature_gates(existing: Optional[Existing]) -> List[str]:
    """spec.configuration.developerConfiguration.featureGates of an existing CR, or []."""
    if existing is None:
        return []
    config = (existing.doc.get("spec") or {}).get("configuration") if existing.is_cr else existing.doc.get(
        "configuration", existing.doc)
    gates = ((config or {}).get("developerConfiguration") or {}).get("featureGates") if isinstance(config, dict) \
        else None
    return [g for g in gates if isinstance(g, str)] if isinstance(gates, list) else []


# ----------------------------------------------------------------------------- VMI / VM


def parse_device_spec(text: str, option: str) -> Tuple[str, Optional[str]]:
    """``RESOURCE[:NAME]`` → (resource, name or None); both validated."""
    resource, sep, name = text.partition(":")
    resource = resource.strip()
    check_resource_name(resource, fix=f"{option} takes a permitted resourceName, e.g. nvidia.com/TU104GL_TESLA_T4")
    if sep:
        name = name.strip()
        if len(name) > 63 or not _DNS_LABEL_RE.match(name):
            raise UsageError(f"invalid device name {name!r} in {option} {text}",
                             fix="use a DNS-1123 label: a-z, 0-9 and '-', at most 63, alphanumeric at both ends")
        return resource, name
    return resource, None


def check_requested(requested: Sequence[str], permitted: Sequence[str]) -> List[str]:
    """Compare the resource names a VMI asks for with those a host permits (as 'kubevirt
    permitted' names them). A name that differs from a permitted one only in case, or by a typo,
    is a UsageError naming that one: kubelet compares names exactly, and the pod would stay
    Pending ("Insufficient nvidia.com/TU104GL_Tesla_T4", docs/troubleshooting.md). Returns notes
    for names with no close permitted name (they may come from another node or device plugin);
    nothing when ``permitted`` is empty (this host cannot tell)."""
    import difflib

    notes: List[str] = []
    if not permitted:
        return notes
    for name in requested:
        if name in permitted:
            continue
        close = [p for p in permitted if p.lower() == name.lower()] or \
            difflib.get_close_matches(name, permitted, n=1, cutoff=0.8)
        if close:
            raise UsageError(f"this host does not permit {name}; it permits {close[0]} (resource names are "
                             "compared exactly)", fix=f"use {close[0]}, or --no-check for a VM that runs on another "
                                                  "node")
        notes.append(f"this host does not permit {name} (it permits {', '.join(sorted(permitted))}): the VM can "
                     "only run on a node whose KubeVirt CR permits it")
    return notes


def vmi_devices(gpus: Sequence[Tuple[str, Optional[str]]], hostdevs: Sequence[Tuple[str, Optional[str]]]) -> dict:
    """``spec.domain.devices`` with gpus and hostDevices; names unique DNS-1123 labels (given,
    or derived from the resource's name). Raises UsageError on a repeated given name."""
    used: set = set()
    given = [n for _, n in list(gpus) + list(hostdevs) if n]
    for n in given:
        if given.count(n) > 1:
            raise UsageError(f"device name {n!r} is given twice", fix="each gpu and hostDevice needs its own name")
    used.update(given)

    def named(resource: str, name: Optional[str]) -> dict:
        if not name:
            stem = dns_label(resource.split("/", 1)[1])
            name, i = stem, 1
            while name in used:
                i += 1
                suffix = f"-{i}"
                name = stem[:63 - len(suffix)].rstrip("-") + suffix
            used.add(name)
        return {"name": name, "deviceName": resource}

    out: Dict[str, Any] = {}
    if gpus:
        out["gpus"] = [named(r, n) for r, n in gpus]
    if hostdevs:
        out["hostDevices"] = [named(r, n) for r, n in hostdevs]
    return out


def vmi_document(devices: dict, fmt: str, name: str = "vm", memory: str = "4Gi") -> Document:
    """The devices block (snippet), a minimal VirtualMachineInstance (vmi) or VirtualMachine (vm)."""
    if fmt not in VMI_FORMATS:
        raise UsageError(f"unknown format {fmt!r}", fix=f"use one of {', '.join(VMI_FORMATS)}")
    if len(name) > 63 or not _DNS_LABEL_RE.match(name):
        raise UsageError(f"invalid VM name {name!r}", fix="use a DNS-1123 label: a-z, 0-9 and '-', at most 63")
    check_memory(memory)
    notes = [feature_gate_note()]
    if devices.get("hostDevices") or len(devices.get("gpus", [])) > 1:
        notes.append("a VMI with hostDevices or more than one GPU cannot live-migrate")
    notes.append("each deviceName must equal a permittedHostDevices resourceName exactly, else the VMI fails with "
                 "'... is not permitted in permittedHostDevices configuration'")
    domain = {"devices": devices, "resources": {"requests": {"memory": memory}}}
    if fmt == "snippet":
        return Document(devices, notes)
    if fmt == "vmi":
        return Document({"apiVersion": API_VERSION, "kind": "VirtualMachineInstance", "metadata": {"name": name},
                         "spec": {"domain": domain}}, notes)
    notes.append("the VirtualMachine is created stopped (runStrategy: Halted): add disks, then virtctl start")
    return Document({"apiVersion": API_VERSION, "kind": "VirtualMachine", "metadata": {"name": name},
                     "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": domain}}}}, notes)
