"""hostdev/kubevirt.py without a host: resource names (expected values written by hand from
KUBEVIRT.md's algorithms), name validation, fleet merging of inventories, reading existing CRs,
the documents and the VMI block; every document is checked by tests/kubevirt_schema.py."""
import pytest

from hostdev import kubevirt as kv
from hostdev.errors import DeviceNotFoundError, UsageError

from . import kubevirt_schema as schema

# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("device_id, pci_name, expected", [
    ("1eb8", "TU104GL [Tesla T4]", "nvidia.com/TU104GL_TESLA_T4"),
    ("25b6", "GA107GL [A2 / A16]", "nvidia.com/GA107GL_A2___A16"),
    ("2330", "GH100[H100 SXM5 80GB]", "nvidia.com/GH100H100_SXM5_80GB"),
    ("2236", "GA102GL [A10]", "nvidia.com/GA102GL_A10"),
    ("1e07", "TU102 [GeForce RTX 2080 Ti Rev. A]", "nvidia.com/TU102_GEFORCE_RTX_2080_TI_REV__A"),
    ("20b5", "  GA100 [A100 PCIe 80GB]  ", "nvidia.com/GA100_A100_PCIE_80GB"),
    ("2342", None, "nvidia.com/2342"),                       # not in pci.ids: the plugin's fallback
    ("2bad", "[]", "nvidia.com/2bad"),                       # nothing left: the id
    # Go upper-cases rune by rune (ß stays ß, then dropped); Python's "ß".upper() is "SS"
    ("1234", "X [Straße]", "nvidia.com/X_STRAE"),
    ("1235", "A\tB\u00a0C", "nvidia.com/A_BC"),              # Go's \s is ASCII: NBSP is dropped, not "_"
])
def test_nvidia_plugin_names(device_id, pci_name, expected):
    assert kv.nvidia_pci_name(device_id, pci_name) == expected


@pytest.mark.parametrize("pci_name, expected", [
    ("TU104GL [Tesla T4]", "nvidia.com/TU104GL_Tesla_T4"),   # the seed's and the user guide's name
    # "/" is dropped like "[" (v1.0.x replaced nothing before its [^a-zA-Z0-9_] filter)
    ("GA107GL [A2 / A16]", "nvidia.com/GA107GL_A2__A16"),
    ("TU102 [GeForce RTX 2080 Ti Rev. A]", "nvidia.com/TU102_GeForce_RTX_2080_Ti_Rev_A"),
])
def test_nvidia_legacy_names(pci_name, expected):
    assert kv.nvidia_legacy_pci_name("0000", pci_name) == expected


def test_vgpu_names_and_env_vars():
    assert kv.nvidia_mdev_name("GRID T4-1Q") == "nvidia.com/GRID_T4-1Q"
    assert kv.nvidia_mdev_name("NVIDIA A10-24Q\n") == "nvidia.com/NVIDIA_A10-24Q"
    assert kv.env_var("nvidia.com/TU104GL_TESLA_T4", mdev=False) == "PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4"
    assert kv.env_var("nvidia.com/GRID_T4-1Q", mdev=True) == "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q"
    assert kv.env_var("example.org/a.b", mdev=False) == "PCI_RESOURCE_EXAMPLE_ORG_A_B"


def test_kubevirt_default_names():
    assert kv.kubevirt_pci_name("8086", "4940", "4xxx Series QAT") == "intel.com/4xxx_series_qat"
    assert kv.kubevirt_pci_name("144d", "a80a", "NVMe SSD Controller PM9A1/PM9A3/980PRO") == \
        "samsung.com/nvme_ssd_controller_pm9a1_pm9a3_980pro"
    assert kv.kubevirt_pci_name("8086", "4940", None) == "pci.hostdev.io/8086_4940"
    assert kv.kubevirt_pci_name("abcd", "0001", "Some Card") == "pci.hostdev.io/ABCD_0001"
    assert kv.kubevirt_pci_name("10de", "1eb8", "TU104GL [Tesla T4]") == "nvidia.com/TU104GL_TESLA_T4"
    # the NVIDIA algorithm would end in "_": KubeVirt's own plugin takes a trimmed, valid name
    assert kv.kubevirt_pci_name("10de", "2bad", "GX999 [Prototype Board Rev.]") == \
        "nvidia.com/GX999_PROTOTYPE_BOARD_REV"
    assert kv.kubevirt_mdev_name("i915-GVTg_V5_4", "8086") == "intel.com/i915-GVTg_V5_4"
    assert kv.kubevirt_mdev_name("Dual port serial", None) == "mdev.hostdev.io/Dual_port_serial"


@pytest.mark.parametrize("name", ["nvidia.com/TU104GL_TESLA_T4", "intel.com/qat", "a.b-c/x", "nvidia.com/" + "A" * 63,
                                  "nvidia.com/GA107GL_A2___A16", "devices.kubevirt.io/nvme"])
def test_valid_resource_names(name):
    assert kv.resource_name_problem(name) is None


@pytest.mark.parametrize("name, words", [
    ("TU104GL_TESLA_T4", "needs a domain"),
    ("kubernetes.io/gpu", "reserved for Kubernetes"),
    ("node.kubernetes.io/gpu", "reserved for Kubernetes"),
    ("requests.example.com/gpu", "'requests.'"),
    ("Nvidia.com/T4", "lower-case DNS subdomain"),
    ("nvidia.com/" + "A" * 64, "64 characters; at most 63"),
    ("nvidia.com/GX999_PROTOTYPE_BOARD_REV_", "start and end with a letter or digit"),
    ("nvidia.com/a b", "start and end with a letter or digit"),
    ("a/b/c", "more than one '/'"),
    ("/x", "domain before '/' is empty"),
    ("x.com/", "name after '/' is empty"),
    ("a" * 250 + ".com/x", "253"),
])
def test_invalid_resource_names_name_the_rule(name, words):
    problem = kv.resource_name_problem(name)
    assert problem is not None and words in problem
    with pytest.raises(kv.InvalidResourceNameError, match="invalid resource name"):
        kv.check_resource_name(name)


def test_overrides_and_selectors():
    found = kv.parse_overrides(["10de:1eb8=nvidia.com/T4", "0x8086:0x4940=intel.com/qat", " GRID T4-1Q =x.io/q"])
    assert found == {("pci", "10DE:1EB8"): "nvidia.com/T4", ("pci", "8086:4940"): "intel.com/qat",
                     ("mdev", "GRID_T4-1Q"): "x.io/q"}
    with pytest.raises(UsageError, match="invalid --resource-name"):
        kv.parse_overrides(["nvidia.com/T4"])
    with pytest.raises(kv.InvalidResourceNameError):
        kv.parse_overrides(["10de:1eb8=T4"])


# ----------------------------------------------------------------------------- building

def dev(address, vendor, device, driver="vfio-pci", name=None, class_id="030200", group=None):
    return {"address": address, "vendor_id": vendor, "device_id": device, "class_id": class_id, "driver": driver,
            "device_name": name, "iommu_group": group}


def inv(hostname, devices, labels=None, mdevs=(), types=(), pci_ids=None):
    return {"inventory_version": 1, "hostname": hostname, "labels": labels or {},
            "pci_ids": pci_ids or {"path": "/usr/share/misc/pci.ids", "version": "2023.04.10",
                                   "date": "2023-04-10 20:08:02"},
            "devices": devices, "iommu_groups": [], "mdev_types": list(types), "mdevs": list(mdevs)}


T4 = ("0000:65:00.0", "10de", "1eb8")


def test_default_selection_is_vfio_devices_and_existing_mdevs():
    host = inv("n1", [dev(*T4, name="TU104GL [Tesla T4]"), dev("0000:01:00.0", "144d", "a80a", driver="nvme"),
                      dev("0000:41:00.0", "10de", "1eb8", driver="nvidia")],
               mdevs=[{"uuid": "u1", "parent": "0000:41:00.0", "type_id": "nvidia-222", "type_name": "GRID T4-1B"}])
    result = kv.build([host], kv.Selection(), kv.Options())
    assert result.permitted == {
        "pciHostDevices": [{"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4"}],
        "mediatedDevices": [{"mdevNameSelector": "GRID T4-1B", "resourceName": "nvidia.com/GRID_T4-1B"}]}


def test_nothing_to_permit_is_a_usage_error():
    with pytest.raises(UsageError, match="nothing to permit"):
        kv.build([inv("n1", [dev(*T4, driver="nvidia")])], kv.Selection(), kv.Options())
    with pytest.raises(DeviceNotFoundError):
        kv.build([inv("n1", [dev(*T4)])], kv.Selection(addresses=("0000:99:00.0",)), kv.Options())
    with pytest.raises(UsageError, match="no device matches 10de:2330"):
        kv.build([inv("n1", [dev(*T4)])], kv.Selection(device_ids=("10de:2330",)), kv.Options())
    with pytest.raises(UsageError, match="no selected device"):
        kv.build([inv("n1", [dev(*T4)])], kv.Selection(), kv.Options(overrides={("pci", "10DE:2330"): "a.b/c"}))


def test_fleet_union_and_one_name_per_selector():
    a = inv("a", [dev(*T4, name="TU104GL [Tesla T4]")])
    b = inv("b", [dev(*T4, name="TU104GL [Tesla T4]"), dev("0000:17:00.0", "10de", "2236", name="GA102GL [A10]")])
    result = kv.build([a, b], kv.Selection(), kv.Options(external=True))
    assert result.permitted == {"pciHostDevices": [
        {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4",
         "externalResourceProvider": True},
        {"pciVendorSelector": "10DE:2236", "resourceName": "nvidia.com/GA102GL_A10", "externalResourceProvider": True}]}
    assert any("PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4" in n for n in result.notes)
    assert any("HostDevices feature gate" in n for n in result.notes)


def test_fleet_conflict_when_pci_ids_differ_and_override_resolves_it():
    old = inv("old", [dev("0000:01:00.0", "10de", "2330", name=None)])
    new = inv("new", [dev("0000:01:00.0", "10de", "2330", name="GH100[H100 SXM5 80GB]")])
    with pytest.raises(kv.ResourceNameConflictError) as err:
        kv.build([old, new], kv.Selection(), kv.Options(external=True))
    assert "10DE:2330 is named two ways: nvidia.com/2330 on old; nvidia.com/GH100H100_SXM5_80GB on new" in \
        str(err.value)
    fixed = kv.build([old, new], kv.Selection(), kv.Options(
        external=True, overrides={("pci", "10DE:2330"): "nvidia.com/GH100H100_SXM5_80GB"}))
    assert fixed.permitted["pciHostDevices"][0]["resourceName"] == "nvidia.com/GH100H100_SXM5_80GB"


def test_missing_from_pci_ids_warns_with_file_and_date():
    host = inv("n1", [dev("0000:01:00.0", "10de", "2342", name=None)])
    result = kv.build([host], kv.Selection(), kv.Options(external=True))
    assert result.permitted["pciHostDevices"][0]["resourceName"] == "nvidia.com/2342"
    warning = next(n for n in result.notes if "is not in" in n)
    assert warning.startswith("warning: 10DE:2342 is not in /usr/share/misc/pci.ids (version 2023.04.10, "
                              "2023-04-10 20:08:02)")
    assert "bundled pci.ids" in warning and "--pci-ids" in warning and "--resource-name 10DE:2342=NAME" in warning


def test_generated_invalid_name_is_refused_with_the_rule():
    host = inv("n1", [dev("0000:01:00.0", "10de", "2bad", name="GX999 [Prototype Board Rev.]")])
    with pytest.raises(kv.InvalidResourceNameError) as err:
        kv.build([host], kv.Selection(), kv.Options(external=True))
    assert "nvidia.com/GX999_PROTOTYPE_BOARD_REV_" in str(err.value)
    assert "start and end with a letter or digit" in str(err.value)
    assert err.value.exit_code == 2


def test_node_mdev_types_per_label_and_global_when_equal():
    t4_types = [{"address": "0000:41:00.0", "interface": "mdev",
                 "types": [{"id": "nvidia-222", "name": "GRID T4-1B"}, {"id": "nvidia-226", "name": "GRID T4-2A"}]}]
    parent = dev("0000:41:00.0", "10de", "1eb8", driver="nvidia")

    def host(name, type_id, type_name, labels):
        return inv(name, [parent], labels=labels, types=t4_types,
                   mdevs=[{"uuid": f"u-{name}", "parent": "0000:41:00.0", "type_id": type_id, "type_name": type_name}])

    same = kv.build([host("a", "nvidia-222", "GRID T4-1B", {}), host("b", "nvidia-222", "GRID T4-1B", {})],
                    kv.Selection(), kv.Options(mdev_config=True))
    assert same.mdev_config == {"mediatedDeviceTypes": ["GRID_T4-1B"]}
    mixed = kv.build([host("a", "nvidia-222", "GRID T4-1B", {"vgpu": "1b"}),
                      host("b", "nvidia-226", "GRID T4-2A", {"vgpu": "2a"}),
                      host("c", "nvidia-226", "GRID T4-2A", {})],
                     kv.Selection(), kv.Options(mdev_config=True))
    assert mixed.mdev_config == {"nodeMediatedDeviceTypes": [
        {"nodeSelector": {"vgpu": "1b"}, "mediatedDeviceTypes": ["GRID_T4-1B"]},
        {"nodeSelector": {"vgpu": "2a"}, "mediatedDeviceTypes": ["GRID_T4-2A"]},
        {"nodeSelector": {"kubernetes.io/hostname": "c"}, "mediatedDeviceTypes": ["GRID_T4-2A"]}]}
    assert [e["mdevNameSelector"] for e in mixed.permitted["mediatedDevices"]] == ["GRID T4-1B", "GRID T4-2A"]
    assert any("deletes every mdev" in n for n in mixed.notes)
    # one host asked for 2A where a 1B exists: virt-handler would delete it
    doomed = kv.build([host("a", "nvidia-222", "GRID T4-1B", {})], kv.Selection(mdev_names=("GRID T4-2A",)),
                      kv.Options(mdev_config=True, node_selector={"gpu": "t4"}))
    assert doomed.mdev_config == {"nodeMediatedDeviceTypes": [{"nodeSelector": {"gpu": "t4"},
                                                               "mediatedDeviceTypes": ["GRID_T4-2A"]}]}
    assert any("will delete mdev u-a (GRID T4-1B)" in n for n in doomed.notes)


# ----------------------------------------------------------------------------- existing CRs and formats

STALE_CR = """
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt, resourceVersion: "9"}
spec:
  configuration:
    developerConfiguration: {featureGates: [HostDevices]}
    pciHostDevices:
    - {pciVendorSelector: "10de:1eb8", resourceName: nvidia.com/TU104GL_Tesla_T4}
    permittedHostDevices:
      pciHostDevice:
      - {pciVendorSelector: "10DE:2236", resourceName: nvidia.com/GA102GL_A10}
      nodeMediatedDeviceTypes: []
      mediatedDevices:
      - {mdevNameSelector: GRID T4-1B, resourceName: nvidia.com/GRID_T4-1B, externalResourceProvier: true}
    mediatedDevicesConfiguration:
      mediatedDevicesTypes: [GRID T4-1B]
status: {phase: Deployed}
"""


def test_read_existing_reports_unknown_misplaced_and_stale_spellings():
    existing = kv.read_existing(STALE_CR, "kv.yaml")
    text = "\n".join(existing.problems)
    # a misspelt list is read under the key it surely means, not dropped
    assert "permittedHostDevices.pciHostDevice is not a KubeVirt field (the API server drops it silently): read " \
           "as pciHostDevices, its 1 entries kept there" in text
    assert "permittedHostDevices.nodeMediatedDeviceTypes is misplaced" in text
    assert "externalResourceProvier is not a KubeVirt field (did you mean externalResourceProvider?)" in text
    assert "spec.configuration.pciHostDevices is misplaced" in text and "moved" in text
    assert "'10de:1eb8' is not upper-case" in text
    assert "deprecated spelling" in text
    assert "'GRID T4-1B': a type spelt with spaces never matches: written 'GRID_T4-1B'" in text
    assert existing.mdev_config == {"mediatedDeviceTypes": ["GRID_T4-1B"]}
    assert existing.permitted["pciHostDevices"] == [
        {"pciVendorSelector": "10DE:2236", "resourceName": "nvidia.com/GA102GL_A10"},
        {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_Tesla_T4"}]
    assert existing.permitted["mediatedDevices"] == [{"mdevNameSelector": "GRID T4-1B",
                                                      "resourceName": "nvidia.com/GRID_T4-1B"}]


@pytest.mark.parametrize("text, words", [
    ("- a\n- b\n", "a mapping"),
    ("kind: VirtualMachine\n", "not KubeVirt"),
    ("permittedHostDevices: {pciHostDevices: {a: 1}}\n", "is not a list"),
    ("a: [\n", r"is not valid YAML \(line 2\)"),
])
def test_read_existing_refuses_unusable_documents(text, words):
    from hostdev.documents import DocumentError  # BadDocumentError's base: not YAML at all

    with pytest.raises(DocumentError, match=words):
        kv.read_existing(text, "x.yaml")


def _result(external=False):
    host = inv("n1", [dev(*T4, name="TU104GL [Tesla T4]"), dev("0000:6b:00.0", "8086", "4940", name="4xxx Series QAT",
                                                              class_id="0b4000")])
    return kv.build([host], kv.Selection(), kv.Options(external=external))


BARE_CR = "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt}\nspec: {}\n"


def test_every_format_passes_the_schema_check():
    result = _result()
    bare = kv.read_existing(BARE_CR, "kv.yaml")
    assert schema.cr_problems(kv.render(result, "cr").data) == []
    assert schema.patch_problems(kv.render(result, "patch", existing=bare).data) == []
    assert schema.configuration_problems(kv.render(result, "snippet").data, "", out := []) is None and out == []
    assert schema.json_patch_problems(kv.render(result, "json-patch", existing=bare).data) == []
    existing = kv.read_existing(STALE_CR, "kv.yaml")
    merged = kv.render(result, "cr", existing=existing).data
    assert schema.cr_problems(merged, others_allowed=True) == []
    assert merged["spec"]["configuration"]["developerConfiguration"] == {"featureGates": ["HostDevices"]}
    assert merged["metadata"] == {"name": "kubevirt", "namespace": "kubevirt"}     # no stale resourceVersion
    assert "status" not in merged


def test_merge_keeps_existing_entries_and_adds_new_without_duplicates():
    existing = kv.read_existing(STALE_CR, "kv.yaml")
    doc = kv.render(_result(), "patch", existing=existing)
    assert doc.data["spec"]["configuration"]["permittedHostDevices"] == {
        "pciHostDevices": [{"pciVendorSelector": "10DE:2236", "resourceName": "nvidia.com/GA102GL_A10"},
                           {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_Tesla_T4"},
                           {"pciVendorSelector": "8086:4940", "resourceName": "intel.com/4xxx_series_qat"}],
        "mediatedDevices": [{"mdevNameSelector": "GRID T4-1B", "resourceName": "nvidia.com/GRID_T4-1B"}]}
    # the deprecated spelling is migrated: null deletes it from the cluster's CR
    assert doc.data["spec"]["configuration"]["mediatedDevicesConfiguration"] == {"mediatedDeviceTypes": ["GRID_T4-1B"],
                                                                                "mediatedDevicesTypes": None}
    assert any("names 10DE:1EB8 nvidia.com/TU104GL_Tesla_T4; hostdev would name it nvidia.com/TU104GL_TESLA_T4" in n
               for n in doc.notes)


def test_json_patch_appends_or_adds_the_missing_level():
    with pytest.raises(UsageError, match="needs --merge-with"):
        kv.render(_result(), "json-patch")
    bare = kv.read_existing(BARE_CR, "k")
    ops = kv.render(_result(), "json-patch", existing=bare).data
    assert ops == [{"op": "add", "path": "/spec/configuration", "value": {"permittedHostDevices": {"pciHostDevices": [
        {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4"},
        {"pciVendorSelector": "8086:4940", "resourceName": "intel.com/4xxx_series_qat"}]}}}]
    with_t4 = kv.read_existing(BARE_CR.replace("spec: {}", "spec:\n  configuration:\n    permittedHostDevices:\n"
                                               "      pciHostDevices:\n      - {pciVendorSelector: 10DE:1EB8, "
                                               "resourceName: nvidia.com/TU104GL_TESLA_T4}"), "s")
    ops = kv.render(_result(), "json-patch", existing=with_t4).data
    assert ops == [{"op": "add", "path": "/spec/configuration/permittedHostDevices/pciHostDevices/-",
                    "value": {"pciVendorSelector": "8086:4940", "resourceName": "intel.com/4xxx_series_qat"}}]
    assert schema.json_patch_problems(ops) == []


# ----------------------------------------------------------------------------- VMI


def test_vmi_names_are_unique_dns_labels():
    devices = kv.vmi_devices([kv.parse_device_spec("nvidia.com/TU104GL_TESLA_T4", "--gpu"),
                              kv.parse_device_spec("nvidia.com/TU104GL_TESLA_T4", "--gpu")],
                             [kv.parse_device_spec("intel.com/4xxx_series_qat:qat0", "--hostdev")])
    assert devices == {
        "gpus": [{"name": "tu104gl-tesla-t4", "deviceName": "nvidia.com/TU104GL_TESLA_T4"},
                 {"name": "tu104gl-tesla-t4-2", "deviceName": "nvidia.com/TU104GL_TESLA_T4"}],
        "hostDevices": [{"name": "qat0", "deviceName": "intel.com/4xxx_series_qat"}]}
    for fmt, kind in (("vmi", "VirtualMachineInstance"), ("vm", "VirtualMachine")):
        doc = kv.vmi_document(devices, fmt, "gpu-vm")
        assert schema.vm_problems(doc.data, kind) == []
        assert any("cannot live-migrate" in n for n in doc.notes)
    with pytest.raises(UsageError, match="invalid device name 'GPU_0'"):
        kv.parse_device_spec("nvidia.com/T4:GPU_0", "--gpu")
    with pytest.raises(kv.InvalidResourceNameError):
        kv.parse_device_spec("TU104GL_TESLA_T4", "--gpu")
    with pytest.raises(UsageError, match="given twice"):
        kv.vmi_devices([("a.io/x", "n")], [("a.io/y", "n")])


def test_a_vfio_variant_driver_is_warned_about_unless_external():
    """KubeVirt v1.9 pci_device.go serves a PCI device only on exactly vfio-pci."""
    cx7 = dev("0000:17:00.1", "15b3", "101e", driver="mlx5_vfio_pci", name="ConnectX Family mlx5Gen Virtual Function",
              class_id="020000")
    host = inv("n1", [cx7, dev(*T4, name="TU104GL [Tesla T4]")])
    notes = "\n".join(kv.build([host], kv.Selection(), kv.Options()).notes)
    assert ("warning: 15B3:101E (0000:17:00.1) is on mlx5_vfio_pci, a vfio variant driver: KubeVirt's own device "
            "plugin serves only devices on exactly vfio-pci") in notes
    assert "--external" in notes and "hostdev unbind 0000:17:00.1" in notes
    assert "10DE:1EB8" not in notes.split("variant driver")[0]          # the T4 on vfio-pci is fine
    assert "variant driver" not in "\n".join(kv.build([host], kv.Selection(), kv.Options(external=True)).notes)


def test_mdev_names_are_normalised_as_kubevirt_does():
    """KubeVirt v1.9 mediated_device.go: strings.Replace(name, " ", "_", -1), then TrimSpace: a
    surrounding space becomes part of the name (hand-worked)."""
    assert kv.normalize("GRID T4-1Q\n") == "GRID_T4-1Q"
    assert kv.normalize(" GRID T4-1Q\n") == "_GRID_T4-1Q"
    assert kv.normalize("GRID T4-1Q  \n") == "GRID_T4-1Q__"
    assert kv.normalize("\tGRID T4-1Q") == "GRID_T4-1Q"          # a tab is trimmed, not replaced
    assert kv.mdev_selector("GRID T4-1Q", "nvidia-222") == "GRID T4-1Q"
    assert kv.mdev_selector(" GRID T4-1Q", "nvidia-222") == "_GRID_T4-1Q"
    assert kv.mdev_selector(None, "i915-GVTg_V5_4") == "i915-GVTg_V5_4"


def test_a_type_name_with_surrounding_spaces_from_sysfs(tmp_path):
    """The fake root's type name has a leading space; hostdev reads it whole and writes the
    selector and the type in KubeVirt's form, so that virt-handler matches them."""
    from hostdev import inventory, mdev
    from hostdev.host import Host
    from tests.fakesys import scenarios
    from tests.fakesys.builder import FakeRoot

    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    fr = FakeRoot.attach(info.root)
    fr.add_mdev_parent(fr.device_path(info.t4), [{"id": "nvidia-222", "name": " GRID T4-1B", "available": 16}],
                       class_name="nvidia")
    host = Host(info.root)
    assert [t.name for t in mdev.types(host, info.t4)] == [" GRID T4-1B"]
    names, names_info = inventory.load_pci_ids(host)
    doc = inventory.collect(host, names, names_info, name="n1")
    result = kv.build([doc], kv.Selection(mdev_names=("_GRID_T4-1B",)), kv.Options(mdev_config=True))
    # the plugin-style name "nvidia.com/_GRID_T4-1B" would be invalid (a leading "_"): KubeVirt's
    # own plugin takes any valid name, so the default drops it
    assert result.permitted["mediatedDevices"] == [{"mdevNameSelector": "_GRID_T4-1B",
                                                    "resourceName": "nvidia.com/GRID_T4-1B"}]
    assert result.mdev_config == {"mediatedDeviceTypes": ["_GRID_T4-1B"]}
