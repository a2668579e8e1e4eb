"""The Ansible playbook of examples/ansible with real ansible-core, against three "hosts" that
are local connections, each with its own fake root and the simulated kernel (tests/ansible_sim.py):
two T4 passthrough hosts and a T4 vGPU host. It must build ONE KubeVirt CR for the cluster, and a
second run must change nothing. Reboots are skipped (hostdev_reboot=false): a fake root cannot."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakesys import scenarios

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ansible"
PCI_IDS = REPO / "tests" / "golden" / "kubevirt" / "pci.ids"


def ansible_playbook() -> str:
    path = Path(sys.executable).parent / "ansible-playbook"
    if not path.exists():
        pytest.fail("ansible-playbook is not installed (pip install -e '.[test]' installs ansible-core)")
    return str(path)


def recap(output: str) -> dict:
    """PLAY RECAP → {host: {"ok": n, "changed": n, "failed": n, ...}}."""
    found = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(ok=.*)$", line.strip())
        if match:
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


def make_fleet(tmp_path, hosts_spec, profiles=None):
    """Hosts (name → scenario builder) as local connections with their own fake roots, and a fresh
    copy of examples/ansible run from its own directory as docs/ansible.md says (the playbook must
    make its out/ itself). ``profiles``: extra profile files (name → text) written next to it.
    Returns (hosts, run(*args, ok=True) → output, out dir)."""
    hosts = {}
    for name, build in hosts_spec.items():
        info = build(str(tmp_path / name))
        os.makedirs(os.path.join(info.root, "usr/share/misc"), exist_ok=True)
        shutil.copy(PCI_IDS, os.path.join(info.root, "usr/share/misc/pci.ids"))
        hosts[name] = info
    playbook = tmp_path / "ansible"
    shutil.copytree(EXAMPLE, playbook)
    assert not (playbook / "out").exists()
    for name, text in (profiles or {}).items():
        (playbook / name).write_text(text)
    sim = f"{sys.executable} {REPO / 'tests' / 'ansible_sim.py'}"
    lines = ["[passthrough_hosts]"]
    for name, info in hosts.items():
        profile = {"vgpu": "profile-vgpu.yaml", "bad": "bad-profile.yaml"}.get(name.split("-")[0], "profile.yaml")
        role = "vm-vgpu" if name.startswith("vgpu") else "vm-passthrough"
        lines.append(f"{name} hostdev_cmd='{sim} --root {info.root}' hostdev_profile={playbook / profile} "
                     f"hostdev_labels='[\"nvidia.com/gpu.workload.config={role}\"]'")
    lines += ["", "[all:vars]", "ansible_connection=local", f"ansible_python_interpreter={sys.executable}",
              "hostdev_become=false", "hostdev_reboot=false",
              "", "[local]", f"localhost hostdev_cmd='{sys.executable} -m hostdev'"]
    inventory = playbook / "test-inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
           "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"),
           "PYTHONPATH": str(REPO)}

    def run(*extra, ok=True):
        proc = subprocess.run([ansible_playbook(), "-i", inventory.name, "site.yml", *extra],
                              capture_output=True, text=True, env=env, cwd=str(playbook), timeout=600)
        if ok:
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        else:
            assert proc.returncode != 0, proc.stdout[-4000:]
        return proc.stdout + proc.stderr

    return hosts, run, playbook / "out"


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, {"gpu-a": scenarios.intel_host_t4, "gpu-b": scenarios.intel_host_t4,
                                 "vgpu-c": scenarios.amd_host})


def task_output(output: str, name: str) -> str:
    """The lines Ansible printed for the task whose name starts with ``name``."""
    return output.split(f"TASK [{name}", 1)[1].split("TASK [", 1)[0].split("PLAY RECAP", 1)[0]


def test_playbook_prepares_every_host_builds_one_cr_and_is_idempotent(fleet):
    hosts, run, out = fleet
    # check mode first: hostdev --dry-run says what would change, and nothing does
    checked_output = run("--check", "--diff")
    checked = recap(checked_output)
    # the check task runs in check mode too (it only reads): its verdict is there to gate on
    check_task = task_output(checked_output, "Check the host")
    assert all(f"ok: [{h}]" in check_task for h in ("gpu-a", "gpu-b", "vgpu-c")), check_task
    # --diff shows what would change: the GRUB line with iommu=pt added (intel_host_t4's
    # /etc/default/grub has GRUB_CMDLINE_LINUX="intel_iommu=on"), and the profile's steps
    iommu_task = task_output(checked_output, "IOMMU kernel arguments")
    assert '+GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"' in iommu_task, iommu_task
    assert "changed: [gpu-a]" in iommu_task
    # hostdev's notes reach the user, as Ansible warnings (hostdev prints them on stderr otherwise)
    assert "[WARNING]: iommu=pt: the host's own devices skip DMA translation" in checked_output
    apply_task = task_output(checked_output, "Apply the host profile")
    assert "0000:65:00.0" in apply_task and "vfio-pci" in apply_task, apply_task
    assert all(checked[h]["changed"] > 0 and checked[h]["failed"] == 0 for h in ("gpu-a", "gpu-b", "vgpu-c"))
    assert os.path.basename(os.readlink(f"{hosts['gpu-a'].root}/sys/bus/pci/devices/0000:65:00.0/driver")) == "nvidia"
    assert "iommu=pt" not in Path(f"{hosts['gpu-a'].root}/etc/default/grub").read_text()
    assert not (out / "kubevirt-cr.yaml").exists()

    first = recap(run())
    assert set(first) == {"gpu-a", "gpu-b", "vgpu-c", "localhost"}
    assert all(first[h]["changed"] > 0 and first[h]["failed"] == 0 for h in ("gpu-a", "gpu-b", "vgpu-c"))

    # each host is as its profile says
    for name in ("gpu-a", "gpu-b"):
        root = hosts[name].root
        assert os.path.basename(os.readlink(f"{root}/sys/bus/pci/devices/0000:65:00.0/driver")) == "vfio-pci"
        assert "iommu=pt" in Path(f"{root}/etc/default/grub").read_text()
    vgpu = hosts["vgpu-c"].root
    assert len(os.listdir(f"{vgpu}/sys/bus/mdev/devices")) == 4

    # ONE CR for the cluster (KubeVirt's own device plugin advertises: no externalResourceProvider)
    cr = yaml.safe_load((out / "kubevirt-cr.yaml").read_text())
    assert cr["kind"] == "KubeVirt" and cr["apiVersion"] == "kubevirt.io/v1"
    permitted = cr["spec"]["configuration"]["permittedHostDevices"]
    assert permitted["pciHostDevices"] == [
        {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_TESLA_T4"}]
    assert permitted["mediatedDevices"] == [
        {"mdevNameSelector": "GRID T4-1B", "resourceName": "nvidia.com/GRID_T4-1B"}]
    for name in hosts:
        inventory = yaml.safe_load((out / f"{name}.json").read_text())
        assert inventory["hostname"] == name
        role = "vm-vgpu" if name.startswith("vgpu") else "vm-passthrough"
        assert inventory["labels"] == {"nvidia.com/gpu.workload.config": role}

    second = recap(run())
    assert all(second[h]["changed"] == 0 and second[h]["failed"] == 0 for h in second), second


def test_the_check_gates_the_host_and_a_failed_command_is_failed_not_changed(tmp_path):
    """A cloud VM without VT-x or a virtual IOMMU stops at the gate after check (the playbook
    cannot fix firmware or the hypervisor): nothing is changed on it. A host whose profile hostdev
    refuses (exit 2) fails that task with hostdev's one-line error, never "changed", and the
    hosts that were fine are untouched by the others' failures."""
    hosts, run, _ = make_fleet(tmp_path, {"blocked-vm": scenarios.vm_guest_no_iommu,
                                          "bad-t4": scenarios.intel_host_t4},
                               profiles={"bad-profile.yaml": "iommu:\n  passthru: true\n"})
    grub_before = Path(f"{hosts['blocked-vm'].root}/etc/default/grub").read_text()
    output = run(ok=False)
    result = recap(output)
    # vm_guest_no_iommu: no vmx/svm and no /dev/kvm, and no virtual IOMMU (scenarios.py): both are
    # named with their fix, and the host stops there
    assert ("hostdev check: cpu-virtualization: no hardware virtualization (vmx/svm) and no /dev/kvm "
            "(fix: enable nested virtualization for this VM on its hypervisor)") in output, output
    assert "hostdev check: iommu: this is a virtual machine without a virtual IOMMU" in output
    assert "[blocked-vm]" not in task_output(output, "IOMMU kernel arguments")
    assert result["blocked-vm"]["failed"] == 1 and result["blocked-vm"]["changed"] == 0, result
    assert Path(f"{hosts['blocked-vm'].root}/etc/default/grub").read_text() == grub_before
    # bad-t4 passed the gate (a T4 host is fine) and failed where hostdev refused its profile
    assert "[bad-t4]" not in task_output(output, "Stop where this playbook").replace("skipping: [bad-t4]", "")
    applied = task_output(output, "Apply the host profile")
    assert "fatal: [bad-t4]" in applied and "changed: [bad-t4]" not in applied, applied
    # hostdev's own error, one line: the profile key it does not know
    assert "hostdev apply - -o json: profile: iommu.passthru: unknown key" in output, output
    assert "The conditional check" not in output and "error while evaluating" not in output
    assert result["bad-t4"]["failed"] == 1, result
