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
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match:
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


@pytest.fixture
def fleet(tmp_path):
    hosts = {}
    for name, build in (("gpu-a", scenarios.intel_host_t4), ("gpu-b", scenarios.intel_host_t4),
                        ("vgpu-c", scenarios.amd_host)):
        info = build(str(tmp_path / name))
        os.makedirs(os.path.join(info.root, "usr/share/misc"), exist_ok=True)
        shutil.copy(PCI_IDS, os.path.join(info.root, "usr/share/misc/pci.ids"))
        hosts[name] = info
    # a fresh copy of examples/ansible, run from its own directory as docs/ansible.md says: the
    # playbook must make its out/ itself
    playbook = tmp_path / "ansible"
    shutil.copytree(EXAMPLE, playbook)
    assert not (playbook / "out").exists()
    sim = f"{sys.executable} {REPO / 'tests' / 'ansible_sim.py'}"
    lines = ["[passthrough_hosts]"]
    for name, info in hosts.items():
        profile = "profile-vgpu.yaml" if name.startswith("vgpu") else "profile.yaml"
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

    def run(*extra):
        proc = subprocess.run([ansible_playbook(), "-i", inventory.name, "site.yml", *extra],
                              capture_output=True, text=True, env=env, cwd=str(playbook), timeout=600)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc.stdout

    return hosts, run, playbook / "out"


def test_playbook_prepares_every_host_builds_one_cr_and_is_idempotent(fleet):
    hosts, run, out = fleet
    # check mode first: hostdev --dry-run says what would change, and nothing does
    checked_output = run("--check")
    checked = recap(checked_output)
    # the check task runs in check mode too (it only reads): its verdict is there to gate on
    check_task = checked_output.split("TASK [Check the host", 1)[1].split("TASK [", 1)[0]
    assert all(f"ok: [{h}]" in check_task for h in ("gpu-a", "gpu-b", "vgpu-c")), check_task
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

    second = recap(run())
    assert all(second[h]["changed"] == 0 and second[h]["failed"] == 0 for h in second), second
