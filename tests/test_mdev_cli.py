"""hostdev mdev …: types (mdev bus, GVT-g without names, NVIDIA SR-IOV VFs), list, create,
remove, mdevctl persistence, and check's warning about Debian's mdevctl udev rule."""
import json
import os

import pytest
from typer.testing import CliRunner

from hostdev.cli import context
from hostdev.cli.app import app
from hostdev.host import Host
from tests.fakesys import scenarios
from tests.fakesys.builder import FakeRoot
from tests.fakesys.simkernel import SimKernel

from .test_cli import check, run

UUID1 = "0b1c2d3e-4f50-4617-8899-aabbccddeeff"


@pytest.fixture
def amd(tmp_path):
    return scenarios.amd_host(str(tmp_path / "root"))


def types(root, *args):
    result = run(root, "mdev", "types", "-o", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["parents"]


def test_types_json_contract_and_name_matching(amd):
    parents = types(amd.root)
    assert [p["address"] for p in parents] == [amd.t4]
    assert parents[0]["interface"] == "mdev"
    first = parents[0]["types"][0]
    assert list(first) == ["id", "name", "available_instances", "device_api", "description"]
    assert first["id"] == "nvidia-222" and first["name"] == "GRID T4-1B"
    # exact name, KubeVirt's form, and surrounding spaces all find nvidia-226
    for wanted in ("GRID T4-2A", "GRID_T4-2A", "  GRID T4-2A "):
        found = types(amd.root, "--name", wanted)
        assert [t["id"] for p in found for t in p["types"]] == ["nvidia-226"], wanted
    result = run(amd.root, "mdev", "types", "--name", "grid t4-2a")        # case-sensitive, as KubeVirt
    assert result.returncode == 2 and "no mdev type is named" in result.stderr


def test_gvtg_types_without_name_and_nvidia_vf_types(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    fr = FakeRoot.attach(info.root)
    igpu = "0000:00:02.0"
    fr.add_pci(igpu, 0x8086, 0x3E92, 0x030000, iommu_group=40, driver="i915", boot_vga=False)
    fr.add_mdev_parent(fr.device_path(igpu), [{"id": "i915-GVTg_V5_4", "name": None, "available": 2},
                                              {"id": "i915-GVTg_V5_8", "name": None, "available": 1}],
                       class_name="i915")
    fr.add_nvidia_vgpu_vf(info.nic_vf0, [(557, "NVIDIA L4-1Q"), (558, "NVIDIA L4-2Q")])
    parents = {p["address"]: p for p in types(info.root)}
    gvt = parents[igpu]
    assert gvt["interface"] == "mdev" and [t["name"] for t in gvt["types"]] == [None, None]
    vf = parents[info.nic_vf0]
    assert vf["interface"] == "nvidia-vf"
    assert [(t["id"], t["name"]) for t in vf["types"]] == [("557", "NVIDIA L4-1Q"), ("558", "NVIDIA L4-2Q")]
    # a GVT-g type is known by its id, as KubeVirt falls back to the mdev_type basename
    assert [t["id"] for p in types(info.root, "--name", "i915-GVTg_V5_4") for t in p["types"]] == ["i915-GVTg_V5_4"]
    assert [t["id"] for p in types(info.root, "--name", "NVIDIA L4-2Q") for t in p["types"]] == ["558"]


@pytest.fixture
def guest(tmp_path, monkeypatch):
    info = scenarios.qemu_test_guest(str(tmp_path / "root"))
    kernel = SimKernel(info.root)
    assert kernel.run(["modprobe", "-a", "mdev", "vfio_iommu_type1"]).rc == 0
    assert kernel.run(["insmod", info.extra["mtty_ko"]]).rc == 0
    monkeypatch.setattr(context, "host_factory", lambda root: Host(info.root, kernel=kernel))

    def invoke(*args):
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    info.invoke = invoke
    return info


def test_create_persist_list_and_remove(guest):
    code, out, err = guest.invoke("mdev", "create", "--parent", "mtty", "--name", "Dual port serial",
                                  "--uuid", UUID1, "--persist", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["uuids"] == [UUID1]
    # the envelope every plan result has (Plan.result), in its order
    assert list(data) == ["changed", "dry_run", "reboot_required", "uuids", "actions", "files_changed", "notes"]
    definition = json.loads(open(f"{guest.root}/etc/mdevctl.d/mtty/{UUID1}").read())
    assert definition == {"mdev_type": "mtty-2", "start": "auto", "attrs": []}
    code, out, _ = guest.invoke("mdev", "list", "-o", "json")
    mdevs = json.loads(out)["mdevs"]
    assert [(m["uuid"], m["parent"], m["type_id"], m["type_name"], m["active"], m["persistent"], m["autostart"])
            for m in mdevs] == [(UUID1, "mtty", "mtty-2", "Dual port serial", True, True, True)]
    assert isinstance(mdevs[0]["iommu_group"], int)
    code, out, err = guest.invoke("mdev", "remove", UUID1, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["uuids"] == [UUID1]
    code, out, _ = guest.invoke("mdev", "list", "-o", "json")
    assert json.loads(out)["mdevs"] == []
    assert not Host(guest.root).exists(f"/etc/mdevctl.d/mtty/{UUID1}")


def test_count_dry_run_and_remove_by_parent(guest):
    code, out, _ = guest.invoke("mdev", "create", "--parent", "mtty", "--type", "mtty-1", "--count", "3",
                                "--dry-run", "-o", "json")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] is True and len(data["uuids"]) == 3 and len(data["actions"]) == 3
    code, out, _ = guest.invoke("mdev", "list", "-o", "json")
    assert json.loads(out)["mdevs"] == []
    code, out, _ = guest.invoke("mdev", "create", "--parent", "mtty", "--type", "mtty-1", "--count", "3")
    assert code == 0 and len(out.split()) == 3
    code, out, _ = guest.invoke("mdev", "remove", "--parent", "mtty", "-o", "json")
    assert code == 0 and len(json.loads(out)["uuids"]) == 3


@pytest.mark.parametrize("args, code, word", [
    (["--parent", "nosuch", "--type", "mtty-1"], 2, "not an mdev parent"),
    (["--parent", "mtty", "--type", "mtty-9"], 2, "no mdev type mtty-9"),
    (["--parent", "mtty", "--type", "mtty-1", "--name", "Single port serial"], 2, "exactly one of"),
    (["--parent", "mtty", "--type", "mtty-1", "--uuid", "xyz"], 2, "invalid UUID"),
    (["--parent", "mtty", "--type", "mtty-2", "--count", "13"], 3, "instance(s) left"),
])
def test_create_refusals(guest, args, code, word):
    got, out, err = guest.invoke("mdev", "create", *args)
    assert got == code and word in err, err
    assert len(err.strip().splitlines()) == 1


def test_remove_of_an_unknown_or_busy_mdev(guest):
    code, _, err = guest.invoke("mdev", "remove", UUID1)
    assert code == 2 and "no mdev" in err
    assert guest.invoke("mdev", "create", "--parent", "mtty", "--type", "mtty-1", "--uuid", UUID1)[0] == 0
    kernel = context.host_factory(None).kernel
    kernel.hold(UUID1)
    code, _, err = guest.invoke("mdev", "remove", UUID1)
    assert code == 3 and "is held by qemu-system-x86" in err
    kernel.release(UUID1)
    assert guest.invoke("mdev", "remove", UUID1)[0] == 0


def test_check_warns_about_debians_mdevctl_udev_rule(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    fr = FakeRoot.attach(info.root)
    fr.write("/lib/udev/rules.d/60-mdevctl.rules",
             "# comment /usr/sbin/mdevctl\nACTION==\"add\", RUN+=\"/bin/sh -c '{ /usr/sbin/mdevctl start-parent-mdevs "
             "%k 2>&3 | logger -t mdevctl; } 3>&1 1>&2 | logger -t mdevctl -p 2'\"\n")
    fr.write("/usr/bin/mdevctl", "", 0o755)
    _, by_id = check(info.root)
    assert by_id["mdevctl-autostart"]["status"] == "warn"
    assert by_id["mdevctl-autostart"]["fix"] == "ln -s /usr/bin/mdevctl /usr/sbin/mdevctl"
    fr.write("/usr/sbin/mdevctl", "", 0o755)
    _, by_id = check(info.root)
    assert by_id["mdevctl-autostart"]["status"] == "pass"


# Debian 12's mdevctl 1.2.0-3 /lib/udev/rules.d/60-mdevctl.rules (dpkg -L mdevctl on Debian 12;
# /lib is /usr/lib there), comments left out: it runs /usr/sbin/mdevctl, the package has /usr/bin/mdevctl
DEBIAN_MDEVCTL_RULE = (
    "ACTION==\"change\", ENV{MDEV_STATE}==\"registered\", TEST==\"/etc/mdevctl.d/$kernel\", "
    "RUN+=\"/bin/sh -c '{ /usr/sbin/mdevctl start-parent-mdevs %k 2>&3 | logger -t mdevctl; } 3>&1 1>&2 | "
    "logger -t mdevctl -p 2'\"\n"
    "ACTION==\"add\", TEST==\"/etc/mdevctl.d/$kernel\", RUN+=\"/bin/sh -c '{ /usr/sbin/mdevctl "
    "start-parent-mdevs %k 2>&3 | logger -t mdevctl; } 3>&1 1>&2 | logger -t mdevctl -p 2'\"\n")


def test_persist_on_debians_broken_mdevctl_rule_overrides_it_and_the_last_remove_takes_it_back(guest):
    fr = FakeRoot.attach(guest.root)
    fr.write("/usr/lib/udev/rules.d/60-mdevctl.rules", DEBIAN_MDEVCTL_RULE)
    fr.write("/usr/bin/mdevctl", "", 0o755)
    override = f"{guest.root}/etc/udev/rules.d/60-mdevctl.rules"
    # without --persist nothing is written: the rule only matters for definitions
    assert guest.invoke("mdev", "create", "--parent", "mtty", "--type", "mtty-1", "--uuid", UUID1)[0] == 0
    assert not os.path.exists(override)
    assert guest.invoke("mdev", "remove", UUID1)[0] == 0
    code, out, err = guest.invoke("mdev", "create", "--parent", "mtty", "--type", "mtty-1", "--count", "2",
                                  "--persist", "-o", "json")
    assert code == 0, err
    uuids = json.loads(out)["uuids"]
    text = open(override).read()
    # the package's two rules, each now running the mdevctl that exists; nothing else changed
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == DEBIAN_MDEVCTL_RULE.replace("/usr/sbin/mdevctl", "/usr/bin/mdevctl").splitlines()
    assert text.startswith("# Written by hostdev")
    code, out, _ = guest.invoke("check", "-o", "json")
    row = [c for c in json.loads(out)["checks"] if c["id"] == "mdevctl-autostart"][0]
    assert row["status"] == "pass" and "/etc/udev/rules.d/60-mdevctl.rules" in row["detail"]
    # removing one definition keeps the rule (the other still needs it); the last one takes it back
    assert guest.invoke("mdev", "remove", uuids[0])[0] == 0
    assert open(override).read() == text
    assert guest.invoke("mdev", "remove", uuids[1])[0] == 0
    assert not os.path.exists(override)
    assert open(f"{guest.root}/usr/lib/udev/rules.d/60-mdevctl.rules").read() == DEBIAN_MDEVCTL_RULE


def test_an_administrators_own_mdevctl_rule_in_etc_is_never_replaced(guest):
    fr = FakeRoot.attach(guest.root)
    fr.write("/usr/lib/udev/rules.d/60-mdevctl.rules", DEBIAN_MDEVCTL_RULE)
    fr.write("/usr/bin/mdevctl", "", 0o755)
    own = "# mine\n" + DEBIAN_MDEVCTL_RULE
    fr.write("/etc/udev/rules.d/60-mdevctl.rules", own)
    code, _, err = guest.invoke("mdev", "create", "--parent", "mtty", "--type", "mtty-1", "--uuid", UUID1, "--persist")
    assert code == 0, err
    assert open(f"{guest.root}/etc/udev/rules.d/60-mdevctl.rules").read() == own
    assert guest.invoke("mdev", "remove", UUID1)[0] == 0
    assert open(f"{guest.root}/etc/udev/rules.d/60-mdevctl.rules").read() == own


def test_ebusy_from_the_kernel_names_the_holder(amd):
    """NVIDIA's vGPU driver answers EBUSY to removing an open mdev (mtty would block instead)."""
    from hostdev import mdev
    from hostdev.errors import RefusedError

    kernel = SimKernel(amd.root)
    host = Host(amd.root, kernel=kernel)
    vgpu = scenarios.EXISTING_VGPU_UUID
    group = next(m.iommu_group for m in mdev.list_mdevs(host) if m.uuid == vgpu)
    kernel.hold(vgpu)
    with pytest.raises(RefusedError, match=r"in use by qemu-system-x86 \(pid \d+\)"):
        mdev._remove_step(vgpu, group)(host)
    kernel.release(vgpu)
