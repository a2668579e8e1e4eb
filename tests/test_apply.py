"""hostdev apply PROFILE.yaml: one idempotent plan for IOMMU arguments, modules, bindings and
mdevs, on the Intel (T4, A10) and AMD (T4 with vGPU) scenarios with the simulated kernel."""
import json

import pytest

from hostdev.host import CommandResult

PROFILE = """\
iommu:
  passthrough: true
modules:
  persist: true
devices:
  - address: "{t4}"
    persist: true
"""


def write(tmp_path, text, name="profile.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_first_apply_changes_everything_second_changes_nothing(sim, tmp_path):
    profile = write(tmp_path, PROFILE.format(t4=sim.t4))
    rc, out, err = sim.invoke("apply", profile, "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["reboot_required"] is True
    sections = {s["section"]: s for s in data["sections"]}
    assert sections["iommu"]["added"] == ["iommu=pt"] and sections["iommu"]["present"] == ["intel_iommu=on"]
    assert sections["modules"]["files"] == ["/etc/modules-load.d/hostdev-vfio.conf"]
    assert [(d["address"], d["to_driver"]) for d in sections["devices[0]"]["devices"]] == [(sim.t4, "vfio-pci")]
    # the host is as the profile says
    assert sim.host.link_name(f"/sys/bus/pci/devices/{sim.t4}/driver") == "vfio-pci"
    assert 'GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"' in sim.host.read_text("/etc/default/grub")
    assert sim.host.read_text(f"/etc/hostdev/bindings.d/pci-{sim.t4}") == "vfio-pci\n"
    assert "vfio_pci" in sim.host.read_text("/etc/modules-load.d/hostdev-vfio.conf")

    commands = len(sim.kernel.commands)
    rc, out, err = sim.invoke("apply", profile, "-o", "json")
    assert rc == 0, err
    again = json.loads(out)
    assert again["changed"] is False and again["actions"] == []
    assert again["reboot_required"] is True  # iommu=pt is configured, not yet running
    assert not any(s["changed"] for s in again["sections"])
    assert len(sim.kernel.commands) == commands


def test_dry_run_is_check_mode(sim, tmp_path):
    profile = write(tmp_path, PROFILE.format(t4=sim.t4))
    before = sim.host.read_text("/etc/default/grub")
    rc, out, _ = sim.invoke("apply", profile, "--dry-run", "-o", "json")
    data = json.loads(out)
    assert rc == 0 and data["dry_run"] is True and data["changed"] is True and data["actions"]
    assert sim.host.read_text("/etc/default/grub") == before
    assert sim.host.link_name(f"/sys/bus/pci/devices/{sim.t4}/driver") == "nvidia"
    assert sim.kernel.commands == []


def test_a_failure_late_in_the_plan_rolls_back_every_section(sim, tmp_path):
    profile = write(tmp_path, PROFILE.format(t4=sim.t4))
    grub_before = sim.host.read_text("/etc/default/grub")
    regenerations = []

    def update_grub(argv):
        regenerations.append(sim.host.read_text("/etc/default/grub"))
        return sim.kernel._cmd_grub_mkconfig(argv)

    sim.kernel.command_handlers["update-grub"] = update_grub
    # the last section fails: the T4's bind cannot load its driver
    sim.kernel.command_handlers["modprobe"] = lambda argv: CommandResult(tuple(argv), 1, "", "modprobe: FATAL\n")
    rc, _, err = sim.invoke("apply", profile)
    assert rc in (4, 5) and "rolled back" in err
    assert sim.host.read_text("/etc/default/grub") == grub_before
    assert sim.host.read_text("/var/lib/hostdev/boot-args.json") is None
    # grub.cfg was regenerated with the edit, then again from the restored file
    assert len(regenerations) == 2 and "iommu=pt" in regenerations[0] and regenerations[1] == grub_before
    assert "iommu=pt" not in sim.host.read_text("/boot/grub/grub.cfg")
    assert sim.host.link_name(f"/sys/bus/pci/devices/{sim.t4}/driver") == "nvidia"


@pytest.mark.parametrize("text, message", [
    ("iommu:\n  passthru: true\n", "profile: iommu.passthru: unknown key"),
    ("bind:\n  - address: x\n", "profile: bind: unknown section"),
    ("devices:\n  address: 0000:65:00.0\n", "profile: devices: expected a list"),
    ("devices:\n  - persist: true\n", "profile: devices[0]: give address, id, or vendor/class"),
    ("mdevs:\n  - parent: x\n    count: two\n    type: t\n", "profile: mdevs[0].count: expected int"),
    ("iommu: [\n", "is not valid YAML (line 2)"),
])
def test_bad_profiles_are_one_line_errors_naming_the_key(sim, tmp_path, text, message):
    rc, out, err = sim.invoke("apply", write(tmp_path, text))
    assert rc == 2 and message in err and err.count("\n") == 1
    assert sim.kernel.commands == []


def test_mdevs_are_created_up_to_the_count(sim_of, tmp_path):
    amd = sim_of("amd_host")
    host = amd.host
    parent = "0000:41:00.0"
    profile = write(tmp_path, f'mdevs:\n  - parent: "{parent}"\n    name: GRID T4-1B\n    count: 3\n')

    def mdevs():
        return sorted(n for n in host.listdir("/sys/bus/mdev/devices"))

    assert len(mdevs()) == 1  # the scenario has one T4-1B already
    code, out, err = amd.invoke("apply", profile, "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    section = data["sections"][0]
    assert section["type"] == "nvidia-222" and len(section["created"]) == 2 and len(section["existing"]) == 1
    assert len(mdevs()) == 3
    again = json.loads(amd.invoke("apply", profile, "-o", "json")[1])
    assert again["changed"] is False and len(mdevs()) == 3
