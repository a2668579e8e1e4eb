"""Every --format applied to existing CRs with real implementations: jsonpatch (RFC 6902) and
json-merge-patch (RFC 7386) from PyPI. Applying `patch` or `json-patch` to the CR in the
cluster must give what `--format cr --merge-with` writes, in permittedHostDevices and
mediatedDevicesConfiguration, for CRs with and without entries, with the deprecated
`mediatedDevicesTypes` spelling and with node-specific types. The CRs are as the API server
returns them (no unknown keys: it prunes those)."""
import copy

import json_merge_patch
import jsonpatch
import pytest
import yaml

from hostdev import kubevirt as kv
from hostdev.errors import UsageError

from . import kubevirt_schema as schema

HEAD = "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt, namespace: kubevirt}\n"
CRS = {
    "no-spec-config": HEAD + "spec: {}\n",
    "empty-config": HEAD + "spec:\n  configuration: {}\n",
    "other-config-only": HEAD + "spec:\n  configuration:\n    developerConfiguration: {featureGates: [HostDevices]}\n",
    "entries": HEAD + """spec:
  configuration:
    permittedHostDevices:
      pciHostDevices:
      - {pciVendorSelector: "15B3:101E", resourceName: mellanox.com/cx7_vf}
      mediatedDevices:
      - {mdevNameSelector: GRID T4-1B, resourceName: nvidia.com/GRID_T4-1B}
    mediatedDevicesConfiguration:
      mediatedDeviceTypes: [GRID_T4-1B]
""",
    "t4-named-otherwise": HEAD + """spec:
  configuration:
    permittedHostDevices:
      pciHostDevices:
      - {pciVendorSelector: "10DE:1EB8", resourceName: nvidia.com/TU104GL_Tesla_T4, externalResourceProvider: true}
""",
    "lower-case-selector": HEAD + """spec:
  configuration:
    permittedHostDevices:
      pciHostDevices:
      - {pciVendorSelector: "15b3:101e", resourceName: mellanox.com/cx7_vf}
""",
    "deprecated-spelling": HEAD + """spec:
  configuration:
    mediatedDevicesConfiguration:
      mediatedDevicesTypes: [nvidia-222, GRID_T4-2B]
""",
    "node-types": HEAD + """spec:
  configuration:
    mediatedDevicesConfiguration:
      mediatedDeviceTypes: [GRID_T4-1B]
      nodeMediatedDeviceTypes:
      - nodeSelector: {pool: other}
        mediatedDeviceTypes: [GRID_T4-8Q]
      - nodeSelector: {pool: t4}
        mediatedDevicesTypes: [GRID_T4-2B]
""",
}

T4_TYPES = {"address": "0000:65:00.0", "interface": "mdev",
            "types": [{"id": "nvidia-223", "name": "GRID T4-2Q", "available_instances": 8}]}


def _result(node_selector=None):
    """The T4 for passthrough (external, NVIDIA plugin names) and its GRID T4-2Q vGPU type."""
    inventory = {"inventory_version": 1, "hostname": "n1", "labels": {}, "pci_ids": {"path": None},
                 "devices": [{"address": "0000:65:00.0", "vendor_id": "10de", "device_id": "1eb8",
                              "class_id": "030200", "driver": "vfio-pci", "device_name": "TU104GL [Tesla T4]",
                              "iommu_group": None}],
                 "iommu_groups": [], "mdev_types": [T4_TYPES], "mdevs": []}
    sel = kv.Selection(addresses=("0000:65:00.0",), mdev_names=("GRID T4-2Q",))
    return kv.build([inventory], sel, kv.Options(external=True, mdev_config=True, node_selector=node_selector))


def _sections(cr):
    config = (cr.get("spec") or {}).get("configuration") or {}
    return {k: config.get(k) for k in ("permittedHostDevices", "mediatedDevicesConfiguration")}


@pytest.mark.parametrize("node_selector", [None, {"pool": "t4"}])
@pytest.mark.parametrize("name", list(CRS))
def test_every_patch_applied_gives_the_merged_cr(name, node_selector):
    cluster = yaml.safe_load(CRS[name])
    existing = kv.read_existing(CRS[name], "kv.yaml")
    result = _result(node_selector)
    merged = kv.render(result, "cr", existing=existing).data
    assert schema.cr_problems(merged, others_allowed=True) == []

    ops = kv.render(result, "json-patch", existing=existing).data
    assert schema.json_patch_problems(ops) == []
    patched = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(cluster))
    assert _sections(patched) == _sections(merged)

    merge = kv.render(result, "patch", existing=existing).data
    patched = json_merge_patch.merge(copy.deepcopy(cluster), merge)
    assert _sections(patched) == _sections(merged)
    # nothing else in the CR changes
    for doc in (patched, jsonpatch.JsonPatch(ops).apply(copy.deepcopy(cluster))):
        rest = {k: v for k, v in (doc["spec"].get("configuration") or {}).items()
                if k not in ("permittedHostDevices", "mediatedDevicesConfiguration")}
        assert rest == {k: v for k, v in ((cluster.get("spec") or {}).get("configuration") or {}).items()
                        if k not in ("permittedHostDevices", "mediatedDevicesConfiguration")}


def test_deprecated_spelling_is_migrated_not_lost():
    existing = kv.read_existing(CRS["deprecated-spelling"], "kv.yaml")
    ops = kv.render(_result(), "json-patch", existing=existing).data
    cfg = "/spec/configuration/mediatedDevicesConfiguration"
    # by hand: the old types first, then the new one; the deprecated key removed
    assert {"op": "add", "path": f"{cfg}/mediatedDeviceTypes",
            "value": ["nvidia-222", "GRID_T4-2B", "GRID_T4-2Q"]} in ops
    assert {"op": "remove", "path": f"{cfg}/mediatedDevicesTypes"} in ops
    merge = kv.render(_result(), "patch", existing=existing).data
    assert merge["spec"]["configuration"]["mediatedDevicesConfiguration"] == {
        "mediatedDeviceTypes": ["nvidia-222", "GRID_T4-2B", "GRID_T4-2Q"], "mediatedDevicesTypes": None}


def test_the_node_entry_for_the_selector_gets_the_new_type():
    existing = kv.read_existing(CRS["node-types"], "kv.yaml")
    cluster = yaml.safe_load(CRS["node-types"])
    ops = kv.render(_result({"pool": "t4"}), "json-patch", existing=existing).data
    nodes = jsonpatch.apply_patch(cluster, ops)["spec"]["configuration"]["mediatedDevicesConfiguration"][
        "nodeMediatedDeviceTypes"]
    assert nodes == [{"nodeSelector": {"pool": "other"}, "mediatedDeviceTypes": ["GRID_T4-8Q"]},
                     {"nodeSelector": {"pool": "t4"}, "mediatedDeviceTypes": ["GRID_T4-2B", "GRID_T4-2Q"]}]


def test_a_list_that_only_grows_is_appended_to():
    existing = kv.read_existing(CRS["entries"], "kv.yaml")
    ops = kv.render(_result(), "json-patch", existing=existing).data
    base = "/spec/configuration"
    assert ops == [
        {"op": "add", "path": f"{base}/permittedHostDevices/pciHostDevices/-",
         "value": {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4",
                   "externalResourceProvider": True}},
        {"op": "add", "path": f"{base}/permittedHostDevices/mediatedDevices/-",
         "value": {"mdevNameSelector": "GRID T4-2Q", "resourceName": "nvidia.com/GRID_T4-2Q",
                   "externalResourceProvider": True}},
        {"op": "add", "path": f"{base}/mediatedDevicesConfiguration/mediatedDeviceTypes/-", "value": "GRID_T4-2Q"}]


def test_a_selector_named_otherwise_is_not_added_twice():
    existing = kv.read_existing(CRS["t4-named-otherwise"], "kv.yaml")
    doc = kv.render(_result(), "json-patch", existing=existing)
    assert not any(op["path"].endswith("pciHostDevices/-") for op in doc.data)
    assert any("names 10DE:1EB8 nvidia.com/TU104GL_Tesla_T4 (external); hostdev would name it "
               "nvidia.com/TU104GL_TESLA_T4" in n for n in doc.notes)


@pytest.mark.parametrize("fmt", ["patch", "json-patch"])
def test_patches_need_the_current_cr(fmt):
    with pytest.raises(UsageError, match=f"--format {fmt} needs --merge-with the cluster's current CR"):
        kv.render(_result(), fmt)
    snippet = kv.read_existing("permittedHostDevices: {}\n", "s.yaml")
    if fmt == "json-patch":
        with pytest.raises(UsageError, match="needs the whole KubeVirt CR"):
            kv.render(_result(), fmt, existing=snippet)
    else:
        assert kv.render(_result(), fmt, existing=snippet).data["spec"]["configuration"]["permittedHostDevices"]


def test_no_feature_gate_reminder_when_the_cr_enables_host_devices():
    gate = kv.feature_gate_note()
    assert gate in kv.render(_result(), "cr").notes
    for name in ("empty-config", "entries"):
        assert gate in kv.render(_result(), "json-patch", existing=kv.read_existing(CRS[name], "kv.yaml")).notes
    enabled = kv.read_existing(CRS["other-config-only"], "kv.yaml")
    for fmt in ("cr", "patch", "json-patch", "snippet"):
        assert gate not in kv.render(_result(), fmt, existing=enabled).notes
