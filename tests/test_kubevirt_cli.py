"""hostdev kubevirt permitted / merge / vmi and hostdev inventory on simulated hosts, against
golden YAML files in tests/golden/kubevirt (regenerate with HOSTDEV_REGENERATE_GOLDEN=1, then
read the diff: the expected names were written by hand from KUBEVIRT.md and must not change by
accident). Every document is also checked by tests/kubevirt_schema.py.

Devices are named from tests/golden/kubevirt/pci.ids (a dated excerpt), which lacks 10de:2342
(GH200) on purpose.
"""
import json
import pathlib

import pytest
import yaml

from tests import golden as goldens
from tests.fakesys import scenarios
from tests.fakesys.builder import FakeRoot

from . import kubevirt_schema as schema

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "kubevirt"
PCI_IDS = str(GOLDEN / "pci.ids")


def golden(name: str, text: str) -> None:
    goldens.check("kubevirt", name, text)


@pytest.fixture
def cli(sim_of):
    """``cli(scenario)`` → an object whose ``invoke(*argv)`` runs hostdev on that simulated host."""

    class Cli:
        def __init__(self, scenario: str) -> None:
            self.info = sim_of(scenario)
            self.fake = FakeRoot.attach(self.info.root)
            self.host = self.info.host

        def invoke(self, *args):
            return self.info.invoke(*args)

        def permitted(self, *args):
            code, out, err = self.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS, *args)
            assert code == 0, err
            return out, err

    return Cli


def test_t4_passthrough_default_is_what_kubevirt_sees(cli):
    host = cli("intel_host_t4")
    code, _, err = host.invoke("bind", host.info.t4)
    assert code == 0, err
    out, err = host.permitted()
    golden("t4-passthrough.yaml", out)
    doc = yaml.safe_load(out)
    assert schema.cr_problems(doc) == []
    assert doc["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"] == [
        {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4"}]
    assert "HostDevices feature gate" in err and "not vfio-pci" not in err


def test_t4_passthrough_for_the_nvidia_plugin(cli):
    host = cli("intel_host_t4")
    out, err = host.permitted(host.info.t4, "--external", "--format", "snippet")
    golden("t4-external-snippet.yaml", out)
    assert schema.configuration_problems(yaml.safe_load(out), "", problems := []) is None and problems == []
    assert "PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4" in err
    assert "0000:65:00.0) is on nvidia, not vfio-pci" in err          # not bound yet: said, not hidden
    legacy, _ = host.permitted(host.info.t4, "--external", "--naming", "nvidia-legacy", "-f", "snippet")
    assert "resourceName: nvidia.com/TU104GL_Tesla_T4\n" in legacy


def test_t4_vgpu_with_mdev_configuration(cli):
    host = cli("amd_host")
    out, err = host.permitted("--mdev", "GRID T4-1B", "--mdev-config", "--external")
    golden("t4-vgpu.yaml", out)
    doc = yaml.safe_load(out)
    assert schema.cr_problems(doc) == []
    config = doc["spec"]["configuration"]
    assert config["permittedHostDevices"] == {"mediatedDevices": [
        {"mdevNameSelector": "GRID T4-1B", "resourceName": "nvidia.com/GRID_T4-1B", "externalResourceProvider": True}]}
    assert config["mediatedDevicesConfiguration"] == {"mediatedDeviceTypes": ["GRID_T4-1B"]}
    assert "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1B" in err and "deletes every mdev" in err
    # asking for another type: the existing T4-1B vGPU would be deleted, and hostdev says so
    out, err = host.permitted("--mdev", "GRID_T4-2A", "--mdev-config", "--node-selector", "gpu=t4-2a", "-f", "snippet")
    assert yaml.safe_load(out)["mediatedDevicesConfiguration"] == {"nodeMediatedDeviceTypes": [
        {"nodeSelector": {"gpu": "t4-2a"}, "mediatedDeviceTypes": ["GRID_T4-2A"]}]}
    assert f"will delete mdev {scenarios.EXISTING_VGPU_UUID} (GRID T4-1B)" in err


BARE_CR = "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt, namespace: kubevirt}\nspec: {}\n"


def test_a10_qat_and_nvme(cli, tmp_path):
    host = cli("intel_host_t4")
    (tmp_path / "kv.yaml").write_text(BARE_CR)
    out, err = host.permitted(host.info.a10, host.info.qat, host.info.nvme_spare, "-f", "patch",
                              "--merge-with", str(tmp_path / "kv.yaml"))
    golden("a10-qat-nvme-patch.yaml", out)
    doc = yaml.safe_load(out)
    assert schema.patch_problems(doc) == []
    assert doc["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"] == [
        {"pciVendorSelector": "10DE:2236", "resourceName": "nvidia.com/GA102GL_A10"},
        {"pciVendorSelector": "8086:4940", "resourceName": "intel.com/4xxx_series_qat"},
        {"pciVendorSelector": "144D:A80A", "resourceName": "samsung.com/nvme_ssd_controller_pm9a1_pm9a3_980pro"}]
    # the A10's audio function shares its group and is on snd_hda_intel (kubevirt#6718)
    assert "IOMMU group" in err and "0000:17:00.1 on snd_hda_intel" in err
    # without the cluster's CR a merge patch would drop its entries: refused, with the way out
    code, out, err = host.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS, host.info.a10, "-f", "patch")
    assert code == 2 and out == ""
    assert "--format patch needs --merge-with the cluster's current CR" in err and "--merge-with kv.yaml" in err


def test_qat_as_external_is_warned_about(cli):
    host = cli("intel_host_t4")
    _, err = host.permitted(host.info.qat, "--external", "--resource-name", "8086:4940=qat.intel.com/generic")
    assert "8086:4940 is marked externalResourceProvider" in err
    assert "PCI_RESOURCE_QAT_INTEL_COM_GENERIC" in err and "QAT plugin" in err


@pytest.fixture
def odd_names(cli):
    """The Intel host plus a GH100 (brackets without a space), an A2/A16 ('/'), a 2080 Ti Rev. A
    ('.'), a GH200 missing from the pci.ids, and a board whose name would end in '_'."""
    host = cli("intel_host_t4")
    for i, device in enumerate((0x2330, 0x25B6, 0x1E07, 0x2342)):
        host.fake.add_pci(f"0000:8{i}:00.0", 0x10DE, device, 0x030200, iommu_group=60 + i, driver="vfio-pci")
    host.fake.add_pci("0000:90:00.0", 0x10DE, 0x2BAD, 0x030200, iommu_group=70, driver="nvidia")
    return host


def test_names_with_slash_dot_brackets_and_a_device_missing_from_pci_ids(odd_names):
    out, err = odd_names.permitted("--external", "-f", "snippet")
    golden("odd-names-nvidia.yaml", out)
    names = [e["resourceName"] for e in yaml.safe_load(out)["permittedHostDevices"]["pciHostDevices"]]
    assert names == ["nvidia.com/GH100H100_SXM5_80GB", "nvidia.com/GA107GL_A2___A16",
                     "nvidia.com/TU102_GEFORCE_RTX_2080_TI_REV__A", "nvidia.com/2342"]
    # the missing device: the file, its version date, the plugin's fallback, and the way out
    assert (f"warning: 10DE:2342 is not in {PCI_IDS} (version 2024.01.05, 2024-01-05 03:15:01): using the NVIDIA "
            "plugin's own fallback nvidia.com/2342") in err
    assert "--resource-name 10DE:2342=NAME" in err
    legacy, _ = odd_names.permitted("--external", "--naming", "nvidia-legacy", "-f", "snippet")
    golden("odd-names-legacy.yaml", legacy)
    assert "nvidia.com/TU102_GeForce_RTX_2080_Ti_Rev_A" in legacy and "nvidia.com/GA107GL_A2__A16\n" in legacy


def test_an_invalid_generated_name_is_an_error_naming_the_rule(odd_names):
    code, out, err = odd_names.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS, "0000:90:00.0", "--external")
    assert code == 2 and out == ""
    assert err.startswith("hostdev: error: invalid resource name 'nvidia.com/GX999_PROTOTYPE_BOARD_REV_': the part "
                          "after '/' ('GX999_PROTOTYPE_BOARD_REV_') must start and end with a letter or digit")
    golden("invalid-name.stderr", err)
    code, out, _ = odd_names.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS, "0000:90:00.0", "-o", "json",
                                    "--external")
    assert code == 2 and json.loads(out)["error"] == "InvalidResourceNameError"
    # KubeVirt's own plugin may use any valid name: the default is trimmed; an override wins
    out, _ = odd_names.permitted("0000:90:00.0", "-f", "snippet")
    assert "resourceName: nvidia.com/GX999_PROTOTYPE_BOARD_REV\n" in out
    code, _, err = odd_names.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS, "0000:90:00.0",
                                    "--resource-name", "10de:2bad=nvidia.com/Bad_")
    assert code == 2 and "invalid resource name 'nvidia.com/Bad_'" in err


def test_json_output_carries_notes_and_the_document(cli, tmp_path):
    host = cli("intel_host_t4")
    (tmp_path / "kv.yaml").write_text(BARE_CR.replace("spec: {}", "spec:\n  configuration:\n    permittedHostDevices:"
                                                      "\n      pciHostDevices: []"))
    code, out, err = host.invoke("kubevirt", "permitted", "--pci-ids", PCI_IDS, host.info.t4, "-o", "json",
                                 "-f", "json-patch", "--merge-with", str(tmp_path / "kv.yaml"))
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["format", "document", "notes"] and data["format"] == "json-patch"
    assert data["document"] == [{"op": "add", "path": "/spec/configuration/permittedHostDevices/pciHostDevices/-",
                                 "value": {"pciVendorSelector": "10DE:1EB8",
                                           "resourceName": "nvidia.com/TU104GL_TESLA_T4"}}]
    assert any("HostDevices feature gate" in n for n in data["notes"])


def test_merge_with_an_existing_cr(cli, tmp_path):
    host = cli("intel_host_t4")
    existing = tmp_path / "kv.yaml"
    existing.write_text("""apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt, resourceVersion: "42"}
spec:
  configuration:
    developerConfiguration: {featureGates: [HostDevices]}
    pciHostDevices:
    - {pciVendorSelector: "10DE:1EB8", resourceName: nvidia.com/TU104GL_Tesla_T4}
    permittedHostDevices:
      mediatedDevices:
      - {mdevNameSelector: GRID T4-1B, resourceName: nvidia.com/GRID_T4-1B, externalResourceProvier: true}
status: {phase: Deployed}
""")
    out, err = host.permitted(host.info.t4, host.info.qat, "--merge-with", str(existing))
    golden("merged-cr.yaml", out)
    doc = yaml.safe_load(out)
    assert schema.cr_problems(doc, others_allowed=True) == []
    assert "spec.configuration.pciHostDevices is misplaced" in err and "externalResourceProvier" in err
    assert "hostdev would name it nvidia.com/TU104GL_TESLA_T4" in err
    code, _, err = host.invoke("kubevirt", "permitted", host.info.t4, "--merge-with", str(tmp_path / "none.yaml"))
    assert code == 2 and "cannot read --merge-with" in err


def test_inventory_and_fleet_merge(cli, tmp_path):
    a = cli("intel_host_t4")
    assert a.invoke("bind", a.info.t4)[0] == 0
    code, out, err = a.invoke("inventory", "--pci-ids", PCI_IDS, "--hostname", "gpu-a", "--label", "pool=t4")
    assert code == 0, err
    inv_a = json.loads(out)
    assert list(inv_a) == ["inventory_version", "hostname", "labels", "pci_ids", "devices", "iommu_groups",
                           "mdev_types", "mdevs"]
    assert inv_a["hostname"] == "gpu-a" and inv_a["labels"] == {"pool": "t4"}
    assert inv_a["pci_ids"] == {"path": PCI_IDS, "version": "2024.01.05", "date": "2024-01-05 03:15:01"}
    t4 = next(d for d in inv_a["devices"] if d["address"] == "0000:65:00.0")
    assert t4["device_name"] == "TU104GL [Tesla T4]" and t4["driver"] == "vfio-pci"
    b = cli("amd_host")
    b.fake.write("/etc/hostname", "vgpu-b\n")
    code, out, err = b.invoke("inventory", "--pci-ids", PCI_IDS, "--label", "pool=vgpu")
    assert code == 0, err
    inv_b = json.loads(out)
    assert inv_b["hostname"] == "vgpu-b"
    assert inv_b["mdevs"][0]["type_name"] == "GRID T4-1B"
    (tmp_path / "a.json").write_text(json.dumps(inv_a))
    (tmp_path / "b.json").write_text(json.dumps(inv_b))
    code, out, err = a.invoke("kubevirt", "merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                              "--mdev-config", "--external")
    assert code == 0, err
    golden("fleet.yaml", out)
    doc = yaml.safe_load(out)
    assert schema.cr_problems(doc) == []
    assert doc["spec"]["configuration"]["mediatedDevicesConfiguration"] == {"nodeMediatedDeviceTypes": [
        {"nodeSelector": {"pool": "vgpu"}, "mediatedDeviceTypes": ["GRID_T4-1B"]}]}
    # the same with --inventory on permitted
    code, out2, _ = a.invoke("kubevirt", "permitted", "--inventory", str(tmp_path / "a.json"),
                             "--inventory", str(tmp_path / "b.json"), "--mdev-config", "--external")
    assert code == 0 and out2 == out


def test_fleet_conflict_and_bad_inventories(cli, tmp_path):
    host = cli("intel_host_t4")
    base = {"inventory_version": 1, "labels": {}, "iommu_groups": [], "mdev_types": [], "mdevs": []}
    gh = {"address": "0000:01:00.0", "vendor_id": "10de", "device_id": "2330", "class_id": "030200",
          "driver": "vfio-pci", "iommu_group": 1}
    old = dict(base, hostname="old", pci_ids={"path": "/usr/share/misc/pci.ids"}, devices=[dict(gh, device_name=None)])
    new = dict(base, hostname="new", pci_ids={"path": "/usr/share/hwdata/pci.ids"},
               devices=[dict(gh, device_name="GH100[H100 SXM5 80GB]")])
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    files = [str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    code, _, err = host.invoke("kubevirt", "merge", *files, "--external")
    assert code == 2
    assert "10DE:2330 is named two ways: nvidia.com/2330 on old; nvidia.com/GH100H100_SXM5_80GB on new" in err
    # one pci.ids for every host makes the names consistent
    code, out, err = host.invoke("kubevirt", "merge", *files, "--external", "--pci-ids", PCI_IDS, "-f", "snippet")
    assert code == 0, err
    assert "resourceName: nvidia.com/GH100H100_SXM5_80GB" in out
    (tmp_path / "bad.json").write_text(json.dumps(dict(base, hostname="bad", devices=[dict(gh, vendor_id="10DE")])))
    code, _, err = host.invoke("kubevirt", "merge", str(tmp_path / "bad.json"))
    assert code == 2 and "bad.json: devices[0].vendor_id: must be 4 lower-case hex digits" in err
    (tmp_path / "old-version.json").write_text(json.dumps({"hostname": "x"}))
    code, _, err = host.invoke("kubevirt", "merge", str(tmp_path / "old-version.json"))
    assert code == 2 and "inventory_version: is None" in err


def test_vmi_snippet_and_vm(cli):
    host = cli("intel_host_t4")
    code, out, err = host.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_TESLA_T4",
                                 "--gpu", "nvidia.com/TU104GL_TESLA_T4", "--hostdev", "intel.com/4xxx_series_qat:qat")
    assert code == 0, err
    golden("vmi-snippet.yaml", out)
    assert "cannot live-migrate" in err
    code, out, err = host.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/GRID_T4-1B", "-f", "vm", "--vm-name", "vgpu")
    assert code == 0, err
    golden("vm.yaml", out)
    assert schema.vm_problems(yaml.safe_load(out), "VirtualMachine") == []
    code, _, err = host.invoke("kubevirt", "vmi", "--gpu", "TU104GL_TESLA_T4")
    assert code == 2 and "needs a domain" in err


def test_usage_errors(cli):
    host = cli("intel_host_t4")
    code, _, err = host.invoke("kubevirt", "permitted")
    assert code == 2 and "nothing to permit: no device is on vfio-pci" in err
    code, _, err = host.invoke("kubevirt", "permitted", host.info.t4, "--format", "crd")
    assert code == 2 and "unknown --format 'crd'" in err
    code, _, err = host.invoke("kubevirt", "permitted", host.info.t4, "--naming", "nv")
    assert code == 2 and "unknown --naming 'nv'" in err
    code, _, err = host.invoke("kubevirt", "permitted", "--mdev", "GRID T4-9Q")
    assert code == 2 and "no mdev type is named 'GRID T4-9Q'" in err
    code, _, err = host.invoke("kubevirt", "permitted", host.info.t4, "-o", "table")
    assert code == 2 and "-o table is not available" in err
    code, _, err = host.invoke("inventory")
    assert code == 2 and "--hostname" in err


def test_vmi_checks_names_against_what_the_host_permits(cli):
    host = cli("intel_host_t4")
    with open(PCI_IDS, "rb") as ids:
        host.fake.write("/usr/share/misc/pci.ids", ids.read())
    code, _, err = host.invoke("bind", host.info.t4)       # the T4 on vfio-pci: this host permits it
    assert code == 0, err
    assert host.permitted("-f", "snippet")[0].count("resourceName: nvidia.com/TU104GL_TESLA_T4") == 1
    # the first pitfall of docs/troubleshooting.md: the case differs
    code, out, err = host.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_Tesla_T4")
    assert code == 2 and out == ""
    assert err == ("hostdev: error: this host does not permit nvidia.com/TU104GL_Tesla_T4; it permits "
                   "nvidia.com/TU104GL_TESLA_T4 (resource names are compared exactly) (use "
                   "nvidia.com/TU104GL_TESLA_T4, or --no-check for a VM that runs on another node)\n")
    # a typo
    code, _, err = host.invoke("kubevirt", "vmi", "--hostdev", "nvidia.com/TU104GL_TESLA_T")
    assert code == 2 and "it permits nvidia.com/TU104GL_TESLA_T4" in err
    # --no-check: another node's VM
    code, out, _ = host.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_Tesla_T4", "--no-check")
    assert code == 0 and "deviceName: nvidia.com/TU104GL_Tesla_T4" in out
    # the right name; and a name from another device plugin: a note, not an error
    code, out, err = host.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/TU104GL_TESLA_T4")
    assert code == 0 and "deviceName: nvidia.com/TU104GL_TESLA_T4" in out and "does not permit" not in err
    code, out, err = host.invoke("kubevirt", "vmi", "--hostdev", "example.com/fpga")
    assert code == 0 and "deviceName: example.com/fpga" in out
    assert ("this host does not permit example.com/fpga (it permits nvidia.com/TU104GL_TESLA_T4): the VM can only "
            "run on a node whose KubeVirt CR permits it") in err


@pytest.mark.parametrize("text, resource", [
    ("0000:65:00.0", "nvidia.com/TU104GL_TESLA_T4"),      # on vfio-pci
    ("17:00.0", "nvidia.com/GA102GL_A10"),                # on nvidia: named all the same (explicit address)
])
def test_vmi_with_an_address_names_the_resource(cli, text, resource):
    host = cli("intel_host_t4")
    with open(PCI_IDS, "rb") as ids:
        host.fake.write("/usr/share/misc/pci.ids", ids.read())
    code, out, err = host.invoke("kubevirt", "vmi", "--gpu", text)
    assert code == 2 and out == ""
    assert err.startswith(f"hostdev: error: --gpu {text} is a PCI address, not a resource name: 'kubevirt "
                          f"permitted' names that device {resource} (use --gpu {resource} ")
    assert "invalid resource name" not in err


def test_vmi_with_an_address_of_no_device(cli):
    host = cli("intel_host_t4")
    code, _, err = host.invoke("kubevirt", "vmi", "--gpu", "0000:99:00.0")
    assert code == 2 and "--gpu 0000:99:00.0 is a PCI address, not a resource name (use the resourceName " in err
