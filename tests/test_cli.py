"""The command line against fake hosts: JSON contracts, filters, exit codes, stdout/stderr."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hostdev.cli import context
from hostdev.cli.app import app
from hostdev.host import Host
from tests.fakesys import scenarios

from .test_pciids import SAMPLE

DEVICE_KEYS = ["address", "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id", "class_id",
               "class_name", "vendor_name", "device_name", "driver", "driver_override", "iommu_group",
               "numa_node", "sriov", "mdev_parent", "boot_vga"]


def run(root, *args):
    """hostdev in a child process, as users run it."""
    return subprocess.run([sys.executable, "-m", "hostdev", "--root", str(root), *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def intel(tmp_path_factory):
    return scenarios.intel_host_t4(str(tmp_path_factory.mktemp("intel") / "root"))


@pytest.fixture(scope="module")
def amd(tmp_path_factory):
    return scenarios.amd_host(str(tmp_path_factory.mktemp("amd") / "root"))


def devices(root, *args):
    result = run(root, "devices", "-o", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["devices"]


def test_devices_json_contract(intel, tmp_path):
    ids = tmp_path / "pci.ids"
    ids.write_bytes(SAMPLE)
    found = {d["address"]: d for d in devices(intel.root, "--pci-ids", str(ids))}
    for dev in found.values():
        assert list(dev) == DEVICE_KEYS
    t4 = found[intel.t4]
    assert t4 == {"address": "0000:65:00.0", "vendor_id": "10de", "device_id": "1eb8",
                  "subsystem_vendor_id": "10de", "subsystem_device_id": "12a2", "class_id": "030200",
                  "class_name": "3D controller", "vendor_name": "NVIDIA Corporation",
                  "device_name": "TU104GL [Tesla T4]", "driver": "nvidia", "driver_override": None,
                  "iommu_group": intel.groups["t4"], "numa_node": 1, "sriov": None, "mdev_parent": False,
                  "boot_vga": None}
    assert found[intel.nic_pf]["sriov"] == {"role": "pf", "total_vfs": 8, "num_vfs": 2}
    assert found[intel.nic_vf0]["sriov"] == {"role": "vf", "physfn": intel.nic_pf}
    assert found[intel.nic_vf0]["driver"] == "iavf"
    assert found[intel.boot_vga]["boot_vga"] is True and found[intel.a10]["boot_vga"] is False
    assert found[intel.host_bridge]["numa_node"] == 0
    assert list(found) == sorted(found)          # 0000:03 before 0000:17 before 0000:65


def test_devices_table_goes_to_stdout_plain_when_piped(intel):
    result = run(intel.root, "devices", "--class", "gpu")
    # stderr: only the note that the fake root has no pci.ids (tests/test_cli_output.py)
    assert result.returncode == 0 and result.stderr.startswith("note: no pci.ids under")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ADDRESS", "ID", "CLASS", "NAME", "DRIVER", "GROUP", "SR-IOV"]
    assert [ln.split()[0] for ln in lines[1:]] == [intel.boot_vga, intel.a10, intel.t4]
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["--vendor", "10DE"], {"a10", "a10_audio", "t4"}),
    (["--device", "0x10de:0x1EB8"], {"t4"}),
    (["--class", "gpu"], {"boot_vga", "a10", "t4"}),
    (["--class", "accel"], {"qat"}),
    (["--class", "0403"], {"a10_audio"}),
    (["--driver", "iavf"], {"nic_vf0", "nic_vf1"}),
    (["--vendor", "10de", "--driver", "snd_hda_intel"], {"a10_audio"}),
])
def test_devices_filters(intel, args, expected):
    names = {v: k for k, v in intel.addresses.items()}
    assert {names.get(d["address"], d["address"]) for d in devices(intel.root, *args)} == expected


def test_iommu_group_filter_and_unbound_driver_filter(intel):
    group = intel.groups["a10"]
    assert [d["address"] for d in devices(intel.root, "--iommu-group", str(group))] == [intel.a10, intel.a10_audio]
    assert all(d["driver"] is None for d in devices(intel.root, "--driver", "none"))


@pytest.mark.parametrize("args, word", [
    (["devices", "--device", "10de"], "VENDOR:DEVICE"),
    (["devices", "--vendor", "nvidia"], "4 hex digits"),
    (["devices", "--class", "graphics"], "gpu, net"),
    (["devices", "show", "0000.65:00.0"], "0000:65:00.0"),
    (["devices", "show", "0000:99:00.0"], "hostdev devices"),
])
def test_bad_input_is_one_line_on_stderr_with_exit_2(intel, args, word):
    result = run(intel.root, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and word in result.stderr
    assert result.stderr.startswith("hostdev: error: ")
    assert "Traceback" not in result.stderr


def test_json_error_object_on_stdout(intel):
    result = run(intel.root, "devices", "show", "bogus", "-o", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {"error": "InvalidAddressError", "message": "invalid PCI address 'bogus'",
                                         "fix": json.loads(result.stdout)["fix"], "exit_code": 2}


def test_unknown_option_is_a_usage_error(intel):
    result = run(intel.root, "devices", "--colour")
    assert result.returncode == 2 and "--colour" in result.stderr


def test_show_lists_group_siblings_and_extras(intel):
    result = run(intel.root, "devices", "show", "17:00.0", "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["device"]["address"] == intel.a10
    members = {m["address"]: m["driver"] for m in data["iommu_group"]["devices"]}
    assert members == {intel.a10: "nvidia", intel.a10_audio: "snd_hda_intel"}
    assert data["modalias"].startswith("pci:v000010DEd00002236")


def test_show_yaml_is_the_same_structure(intel):
    import yaml
    js = json.loads(run(intel.root, "devices", "show", intel.t4, "-o", "json").stdout)
    assert yaml.safe_load(run(intel.root, "devices", "show", intel.t4, "-o", "yaml").stdout) == js


def test_mdev_parent_is_flagged(amd):
    found = {d["address"]: d for d in devices(amd.root)}
    assert [a for a, d in found.items() if d["mdev_parent"]] == [amd.addresses["t4"]]


def test_iommu_groups_contract(intel):
    result = run(intel.root, "iommu", "groups", "-o", "json")
    assert result.returncode == 0
    groups = json.loads(result.stdout)["groups"]
    assert [g["id"] for g in groups] == sorted(g["id"] for g in groups)
    by_id = {g["id"]: g["devices"] for g in groups}
    assert by_id[intel.groups["a10"]] == [intel.a10, intel.a10_audio]
    assert all(set(g) == {"id", "devices"} for g in groups)


def check(root):
    result = run(root, "check", "-o", "json")
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ready"] else 1), result.stderr
    for c in report["checks"]:
        assert set(c) == {"id", "status", "summary", "detail", "fix"}
        assert c["status"] in ("pass", "warn", "fail", "skip")
    return report, {c["id"]: c for c in report["checks"]}


def test_check_ready_intel_host(intel):
    report, by_id = check(intel.root)
    assert report["ready"] is True
    assert by_id["cpu-virtualization"]["status"] == "pass"
    assert by_id["iommu"]["status"] == "pass"
    assert by_id["kernel-args"]["status"] == "pass"
    assert by_id["vfio"]["status"] == "warn" and by_id["vfio"]["fix"].startswith("modprobe vfio-pci")
    assert by_id["vfio-devices"]["status"] == "skip"


def test_check_vm_without_viommu_names_the_hypervisor(tmp_path):
    info = scenarios.vm_guest_no_iommu(str(tmp_path / "root"))
    report, by_id = check(info.root)
    assert report["ready"] is False
    assert by_id["iommu"]["status"] == "fail"
    assert "virtual machine without a virtual IOMMU" in by_id["iommu"]["summary"]
    assert "intel-iommu" in by_id["iommu"]["fix"] and "grub cannot fix this" in by_id["iommu"]["fix"]


def _no_groups(info, cmdline):
    shutil.rmtree(os.path.join(info.root, "sys/kernel/iommu_groups"))
    os.makedirs(os.path.join(info.root, "sys/kernel/iommu_groups"))
    with open(os.path.join(info.root, "proc/cmdline"), "w") as f:
        f.write(cmdline + "\n")


def test_check_vtd_off_and_reboot_pending(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    _no_groups(info, "BOOT_IMAGE=/boot/vmlinuz ro quiet")
    _, by_id = check(info.root)
    assert by_id["iommu"]["status"] == "fail"
    assert "waits for a reboot" in by_id["iommu"]["summary"]       # grub already has intel_iommu=on
    assert by_id["kernel-args"]["status"] == "warn"
    assert by_id["kernel-args"]["summary"] == "reboot pending: the next boot adds intel_iommu=on"
    with open(os.path.join(info.root, "etc/default/grub"), "w") as f:
        f.write('GRUB_CMDLINE_LINUX=""\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n')
    _, by_id = check(info.root)
    assert "needs intel_iommu=on" in by_id["iommu"]["summary"]
    assert "hostdev iommu enable" in by_id["iommu"]["fix"]


def test_check_switched_off_and_amd_iommu_on(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "i"))
    _no_groups(info, "ro intel_iommu=off")
    _, by_id = check(info.root)
    assert by_id["iommu"]["status"] == "fail" and "intel_iommu=off" in by_id["iommu"]["summary"]
    amd = scenarios.amd_host(str(tmp_path / "a"))
    with open(os.path.join(amd.root, "proc/cmdline"), "a") as f:
        f.write(" amd_iommu=on iommu=pt\n")
    with open(os.path.join(amd.root, "etc/default/grub"), "w") as f:
        f.write('GRUB_CMDLINE_LINUX="amd_iommu=on iommu=pt"\n')
    report, by_id = check(amd.root)
    assert by_id["iommu"]["status"] == "pass"          # AMD-Vi is on by default
    assert by_id["kernel-args"]["status"] == "warn"
    assert "not a valid value" in by_id["kernel-args"]["summary"]
    assert "iommu=pt" in by_id["kernel-args"]["detail"] and "isolation" in by_id["kernel-args"]["detail"]


# ---------------------------------------------------------------- mutating commands, simulated kernel
def test_bind_json_idempotent_and_restore(sim):
    code, out, err = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["dry_run"] is False
    assert data["devices"] == [{"address": sim.t4, "from_driver": "nvidia", "to_driver": "vfio-pci",
                                "action": "bind", "group": sim.groups["t4"], "changed": True, "note": None}]
    assert data["reboot_required"] is False
    assert Host(sim.root).link_name(f"/sys/bus/pci/devices/{sim.t4}/driver") == "vfio-pci"
    code, out, _ = sim.invoke("bind", sim.t4, "-o", "json")
    assert code == 0 and json.loads(out)["changed"] is False and json.loads(out)["actions"] == []
    code, out, _ = sim.invoke("bindings", "-o", "json")
    assert json.loads(out)["bindings"][0]["original_driver"] == "nvidia"
    code, out, _ = sim.invoke("restore", "--all", "-o", "json")
    assert code == 0 and json.loads(out)["changed"] is True
    assert Host(sim.root).link_name(f"/sys/bus/pci/devices/{sim.t4}/driver") == "nvidia"


def test_dry_run_changes_nothing(sim):
    writes_before = list(sim.kernel.writes)
    code, out, _ = sim.invoke("bind", "--device", "10de:1eb8", "--dry-run", "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["changed"] is True and data["dry_run"] is True
    assert any("driver_override" in a["action"] for a in data["actions"])
    assert sim.kernel.writes == writes_before and sim.kernel.commands == []


def test_bind_takes_the_audio_function_along(sim):
    code, out, _ = sim.invoke("bind", sim.a10, "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["address"] for d in data["devices"]] == [sim.a10, sim.a10_audio]
    assert any("same card" in n for n in data["notes"])
    report, by_id = check(sim.root)
    assert by_id["group-viability"]["status"] == "pass"


@pytest.mark.parametrize("name, word", [("nvme_root", "mounted at /"), ("boot_vga", "boot VGA"),
                                        ("nic_pf", "carries a route")])
def test_interlocks_refuse_with_exit_3(sim, name, word):
    code, out, err = sim.invoke("bind", sim.addresses[name])
    assert code == 3 and word in err, err
    assert sim.kernel.writes == []


def test_live_host_is_never_changed_by_the_test_suite(monkeypatch):
    """A device this machine really has (read only) and that is no bridge (bridges are refused as
    a usage error first), so the live-host refusal itself answers: never a skip."""
    import os

    base = "/sys/bus/pci/devices"
    present = sorted(os.listdir(base)) if os.path.isdir(base) else []
    endpoints = [a for a in present if not open(f"{base}/{a}/class").read().startswith("0x06")]
    assert endpoints, f"this machine shows no PCI endpoint in {base}: nothing to aim the refusal at"
    monkeypatch.setattr(context, "host_factory", lambda root: Host("/"))
    result = CliRunner().invoke(app, ["bind", endpoints[0]])
    assert result.exit_code == 4 and "refusing to change the live host" in result.stderr, result.stderr


def test_unbind_json_and_restore_gives_the_driver_back(sim):
    code, out, err = sim.invoke("unbind", sim.qat, "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["devices"] == [{"address": sim.qat, "from_driver": "4xxx", "to_driver": None, "action": "unbind",
                                "group": sim.groups["qat"], "changed": True, "note": None}]
    assert Host(sim.root).link_name(f"/sys/bus/pci/devices/{sim.qat}/driver") is None
    code, out, _ = sim.invoke("restore", sim.qat, "-o", "json")
    assert code == 0 and json.loads(out)["devices"][0]["to_driver"] == "4xxx"
    assert json.loads(out)["devices"][0]["action"] == "restore"
    assert Host(sim.root).link_name(f"/sys/bus/pci/devices/{sim.qat}/driver") == "4xxx"
    code, out, _ = sim.invoke("restore", sim.qat, "-o", "json")
    assert json.loads(out)["changed"] is False


def test_restore_needs_a_device_or_all(sim):
    code, _, err = sim.invoke("restore")
    assert code == 2 and "--all" in err


def test_bind_selects_by_vendor_and_class(sim):
    code, out, err = sim.invoke("bind", "--vendor", "10de", "--class", "gpu", "--dry-run", "-o", "json")
    assert code == 0, err
    # the A10 (VGA) and the T4 (3D); the A10's audio function comes along with a note
    assert [d["address"] for d in json.loads(out)["devices"]] == [sim.a10, sim.a10_audio, sim.t4]
    code, _, err = sim.invoke("bind", "--vendor", "abcd", "--dry-run")
    assert code == 2 and "no device matches vendor abcd" in err


def test_a_bar_held_by_the_firmware_framebuffer_is_refused(sim):
    base = f"{sim.root}/sys/bus/pci/devices/{sim.t4}"
    with open(f"{base}/resource", "w") as f:
        f.write("0x00000000d0000000 0x00000000d0ffffff 0x0000000000040200\n"
                "0x0000000000000000 0x0000000000000000 0x0000000000000000\n")
    with open(f"{sim.root}/proc/iomem", "w") as f:
        f.write("c0000000-dfffffff : PCI Bus 0000:64\n  d0000000-d0ffffff : 0000:65:00.0\n"
                "    d0000000-d02fffff : efifb\n")
    code, _, err = sim.invoke("bind", sim.t4)
    assert code == 3 and "framebuffer efifb" in err and "video=efifb:off" in err
    with open(f"{sim.root}/proc/iomem", "w") as f:     # as a non-root reader sees it: all zeros
        f.write("00000000-00000000 : PCI Bus 0000:64\n    00000000-00000000 : efifb\n")
    assert sim.invoke("bind", sim.t4)[0] == 0


def test_bind_persist_bindings_and_persisted_through_the_cli(sim):
    code, out, err = sim.invoke("bind", sim.t4, "--persist", "-o", "json")
    assert code == 0, err
    assert any(a["action"].startswith("persist: write /etc/hostdev/bindings.d/pci-0000:65:00.0")
               for a in json.loads(out)["actions"])
    code, out, _ = sim.invoke("bindings", "-o", "json")
    assert json.loads(out)["bindings"][0]["persistent_driver"] == "vfio-pci"
    code, out, _ = sim.invoke("bind", "--persisted", "-o", "json")
    assert code == 0 and json.loads(out)["changed"] is False          # already applied
    code, _, err = sim.invoke("bind", "--persisted", sim.t4)
    assert code == 2 and "--persisted takes no devices" in err
    code, out, _ = sim.invoke("restore", "--all", "-o", "json")
    assert code == 0
    code, out, _ = sim.invoke("bindings", "-o", "json")
    assert json.loads(out)["bindings"] == []


def test_a_process_holding_the_gpus_dev_node_is_named(sim):
    os.makedirs(f"{sim.root}/sys/bus/pci/devices/{sim.a10}/drm/card1")
    os.makedirs(f"{sim.root}/proc/777/fd")
    with open(f"{sim.root}/proc/777/comm", "w") as f:
        f.write("nvidia-persiste\n")
    os.symlink("/dev/dri/card1", f"{sim.root}/proc/777/fd/5")
    code, _, err = sim.invoke("bind", sim.a10)
    assert code == 3 and "nvidia-persiste (pid 777) has /dev/dri/card1 open" in err
    assert sim.kernel.writes == []
