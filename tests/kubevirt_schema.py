"""A check of KubeVirt documents against the field names and types of KubeVirt v1.9.0's API
(kubevirt.io/api core/v1 types.go; /work/shared/KUBEVIRT.md), written from the rules and not
from hostdev's code. The CRD schema has no ``additionalProperties: false``, so the API server
would accept a misspelt key and drop it: here every unknown key is a failure.

``problems(doc)`` returns a list of "path: what is wrong" strings, empty when the document is
valid. It knows: a KubeVirt CR, a merge patch ({spec: {configuration: …}}), a snippet (the
configuration level: permittedHostDevices / mediatedDevicesConfiguration), a JSON patch (a
list of operations), and the VMI/VM device blocks.
"""

import re

_SELECTOR = re.compile(r"[0-9A-F]{4}:[0-9A-F]{4}\Z")       # hostdev writes upper-case
_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def _resource(value, path, out):
    if not isinstance(value, str) or value.count("/") != 1:
        out.append(f"{path}: resourceName {value!r} is not DOMAIN/NAME")
        return
    domain, name = value.split("/")
    if not _DOMAIN.match(domain) or "kubernetes.io" in domain or len(name) > 63 or not _NAME_PART.match(name):
        out.append(f"{path}: resourceName {value!r} is not a valid extended resource name")


def _fields(obj, spec, path, out):
    """spec: {key: (type, required)}; unknown keys and wrong types are problems."""
    if not isinstance(obj, dict):
        out.append(f"{path}: must be a mapping")
        return False
    for key in obj:
        if key not in spec:
            out.append(f"{path}.{key}: unknown key")
    for key, (kind, required) in spec.items():
        if key not in obj:
            if required:
                out.append(f"{path}.{key}: required")
        elif not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            out.append(f"{path}.{key}: must be {kind.__name__}")
    return True


def _pci_entry(e, path, out):
    if _fields(e, {"pciVendorSelector": (str, True), "resourceName": (str, True),
                   "externalResourceProvider": (bool, False)}, path, out):
        if isinstance(e.get("pciVendorSelector"), str) and not _SELECTOR.match(e["pciVendorSelector"]):
            out.append(f"{path}.pciVendorSelector: {e['pciVendorSelector']!r} is not upper-case VVVV:DDDD")
        _resource(e.get("resourceName"), path, out)


def _mdev_entry(e, path, out):
    if _fields(e, {"mdevNameSelector": (str, True), "resourceName": (str, True),
                   "externalResourceProvider": (bool, False)}, path, out):
        sel = e.get("mdevNameSelector")
        if isinstance(sel, str) and (sel != sel.strip() or not sel):
            out.append(f"{path}.mdevNameSelector: {sel!r} has surrounding whitespace")
        _resource(e.get("resourceName"), path, out)


def _usb_entry(e, path, out):
    if _fields(e, {"resourceName": (str, True), "selectors": (list, True),
                   "externalResourceProvider": (bool, False)}, path, out):
        for i, s in enumerate(e.get("selectors") or []):
            _fields(s, {"vendor": (str, True), "product": (str, True)}, f"{path}.selectors[{i}]", out)


def permitted_problems(p, path, out):
    if _fields(p, {"pciHostDevices": (list, False), "mediatedDevices": (list, False), "usb": (list, False)},
               path, out):
        for i, e in enumerate(p.get("pciHostDevices") or []):
            _pci_entry(e, f"{path}.pciHostDevices[{i}]", out)
        for i, e in enumerate(p.get("mediatedDevices") or []):
            _mdev_entry(e, f"{path}.mediatedDevices[{i}]", out)
        for i, e in enumerate(p.get("usb") or []):
            _usb_entry(e, f"{path}.usb[{i}]", out)


def _types(value, path, out):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        out.append(f"{path}: must be a list of strings")
        return
    for v in value:
        if " " in v:
            out.append(f"{path}: {v!r} has a space and never matches")


def mdev_config_problems(c, path, out):
    # the deprecated spelling mediatedDevicesTypes is valid but hostdev must not write it
    if _fields(c, {"mediatedDeviceTypes": (list, False), "nodeMediatedDeviceTypes": (list, False),
                   "enabled": (bool, False)}, path, out):
        if "mediatedDeviceTypes" in c:
            _types(c["mediatedDeviceTypes"], f"{path}.mediatedDeviceTypes", out)
        for i, n in enumerate(c.get("nodeMediatedDeviceTypes") or []):
            at = f"{path}.nodeMediatedDeviceTypes[{i}]"
            if _fields(n, {"nodeSelector": (dict, True), "mediatedDeviceTypes": (list, True)}, at, out):
                sel = n.get("nodeSelector")
                if isinstance(sel, dict) and not all(isinstance(k, str) and isinstance(v, str) for k, v in sel.items()):
                    out.append(f"{at}.nodeSelector: must map strings to strings")
                _types(n.get("mediatedDeviceTypes"), f"{at}.mediatedDeviceTypes", out)


def configuration_problems(c, path, out, others_allowed=False):
    """The configuration level. hostdev's snippets hold only its two keys; a CR it merged into
    may hold the user's other configuration (not checked here)."""
    if not isinstance(c, dict):
        out.append(f"{path}: must be a mapping")
        return
    for key in c:
        if key in ("pciHostDevices", "mediatedDevices", "usb", "nodeMediatedDeviceTypes", "mediatedDeviceTypes"):
            out.append(f"{path}.{key}: misplaced")
        elif key not in ("permittedHostDevices", "mediatedDevicesConfiguration") and not others_allowed:
            out.append(f"{path}.{key}: unknown key")
    if "permittedHostDevices" in c:
        permitted_problems(c["permittedHostDevices"], f"{path}.permittedHostDevices", out)
    if "mediatedDevicesConfiguration" in c:
        mdev_config_problems(c["mediatedDevicesConfiguration"], f"{path}.mediatedDevicesConfiguration", out)


def cr_problems(doc, others_allowed=False):
    out = []
    if _fields(doc, {"apiVersion": (str, True), "kind": (str, True), "metadata": (dict, True), "spec": (dict, True)},
               "", out):
        if doc.get("apiVersion") != "kubevirt.io/v1" or doc.get("kind") != "KubeVirt":
            out.append("apiVersion/kind: not kubevirt.io/v1 KubeVirt")
        _fields(doc.get("metadata"), {"name": (str, True), "namespace": (str, True), "labels": (dict, False),
                                      "annotations": (dict, False)}, ".metadata", out)
        spec = doc.get("spec") or {}
        if not others_allowed:
            _fields(spec, {"configuration": (dict, True)}, ".spec", out)
        configuration_problems(spec.get("configuration"), ".spec.configuration", out, others_allowed)
    return out


def patch_problems(doc):
    out = []
    if _fields(doc, {"spec": (dict, True)}, "", out) and _fields(doc["spec"], {"configuration": (dict, True)},
                                                                 ".spec", out):
        configuration_problems(doc["spec"]["configuration"], ".spec.configuration", out)
    return out


def json_patch_problems(ops):
    out = []
    if not isinstance(ops, list):
        return ["json-patch: must be a list"]
    base = "/spec/configuration"
    for i, op in enumerate(ops):
        at = f"[{i}]"
        if isinstance(op, dict) and op.get("op") == "remove":
            # only the deprecated spelling, which the same patch migrates
            _fields(op, {"op": (str, True), "path": (str, True)}, at, out)
            if op.get("path") != f"{base}/mediatedDevicesConfiguration/mediatedDevicesTypes":
                out.append(f"{at}.path: hostdev removes only the deprecated mediatedDevicesTypes")
            continue
        if not _fields(op, {"op": (str, True), "path": (str, True), "value": (object, True)}, at, out):
            continue
        if op["op"] != "add":
            out.append(f"{at}.op: hostdev only adds (and removes the deprecated spelling)")
        path, value = op["path"], op["value"]
        if path.endswith("/-"):
            lst = path[:-2]
            if lst.endswith("/pciHostDevices"):
                _pci_entry(value, at, out)
            elif lst.endswith("/mediatedDevices"):
                _mdev_entry(value, at, out)
            elif lst.endswith("/mediatedDeviceTypes"):
                _types([value], at, out)
            elif lst.endswith("/nodeMediatedDeviceTypes"):
                mdev_config_problems({"nodeMediatedDeviceTypes": [value]}, at, out)
            else:
                out.append(f"{at}.path: {path} is not a list hostdev appends to")
        elif path == "/spec":
            _fields(value, {"configuration": (dict, True)}, at, out)
            configuration_problems(value.get("configuration"), at, out)
        elif path == base:
            configuration_problems(value, at, out)
        elif path == f"{base}/permittedHostDevices":
            permitted_problems(value, at, out)
        elif path == f"{base}/mediatedDevicesConfiguration":
            mdev_config_problems(value, at, out)
        elif path.startswith(f"{base}/permittedHostDevices/"):
            permitted_problems({path.rsplit("/", 1)[1]: value}, at, out)
        elif path.startswith(f"{base}/mediatedDevicesConfiguration/"):
            mdev_config_problems({path.rsplit("/", 1)[1]: value}, at, out)
        else:
            out.append(f"{at}.path: unexpected {path}")
    return out


def devices_problems(d, path, out):
    if _fields(d, {"gpus": (list, False), "hostDevices": (list, False)}, path, out):
        names = []
        for key in ("gpus", "hostDevices"):
            for i, e in enumerate(d.get(key) or []):
                spec = {"name": (str, True), "deviceName": (str, False), "tag": (str, False)}
                if key == "gpus":
                    spec["virtualGPUOptions"] = (dict, False)
                if _fields(e, spec, f"{path}.{key}[{i}]", out):
                    names.append(e.get("name"))
                    if not isinstance(e.get("name"), str) or len(e["name"]) > 63 or not _LABEL.match(e["name"]):
                        out.append(f"{path}.{key}[{i}].name: {e.get('name')!r} is not a DNS-1123 label")
                    _resource(e.get("deviceName"), f"{path}.{key}[{i}]", out)
        if len(names) != len(set(names)):
            out.append(f"{path}: device names repeat")


def vm_problems(doc, kind):
    out = []
    if not _fields(doc, {"apiVersion": (str, True), "kind": (str, True), "metadata": (dict, True),
                         "spec": (dict, True)}, "", out):
        return out
    if doc["kind"] != kind or doc["apiVersion"] != "kubevirt.io/v1":
        out.append("kind/apiVersion")
    _fields(doc["metadata"], {"name": (str, True)}, ".metadata", out)
    spec = doc["spec"]
    if kind == "VirtualMachine":
        _fields(spec, {"runStrategy": (str, False), "running": (bool, False), "template": (dict, True)}, ".spec", out)
        spec = (spec.get("template") or {}).get("spec") or {}
    domain = spec.get("domain") or {}
    _fields(domain, {"devices": (dict, True), "resources": (dict, False)}, ".domain", out)
    devices_problems(domain.get("devices"), ".domain.devices", out)
    return out
