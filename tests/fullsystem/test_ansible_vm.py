"""examples/ansible with real ansible-core over SSH to the full-system VM, ansible.builtin.reboot
included, run from a fresh copy of the example directory exactly as docs/ansible.md says (its
inventory.ini edited to name the VM, as a user edits it): check mode first changes nothing, the
real run converges, a second run reports changed=0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.realkernel import speed
from tests.test_ansible import EXAMPLE, ansible_playbook, recap

from .machine import E1000E
from .test_reboot_scenario import MDEV_UUID, driver_of, state

pytestmark = [pytest.mark.fullsystem, pytest.mark.realkernel]

# the VM's profile: vfio modules at boot, the NIC without a route on vfio-pci (again at boot), one mtty mdev
PROFILE = f"""modules:
  persist: true
devices:
  - address: "{E1000E}"
    persist: true
mdevs:
  - parent: mtty
    type: mtty-1
    uuids: ["{MDEV_UUID}"]
    persist: true
"""
# one playbook run: hostdev's steps, a reboot (firmware, GRUB, kernel, systemd) and the SSH
# round trips, about 6 minutes idle, in host units (speed.py)
PLAYBOOK_HOST_UNITS = 12000.0


def test_the_playbook_prepares_the_vm_over_ssh_reboots_it_and_converges(fullsystem_vm, tmp_path):
    vm = fullsystem_vm
    playbook = tmp_path / "ansible"
    shutil.copytree(EXAMPLE, playbook)
    assert not (playbook / "out").exists()
    (playbook / "vm-profile.yaml").write_text(PROFILE)
    ssh_args = (f"-o UserKnownHostsFile={vm.known_hosts} -o StrictHostKeyChecking=accept-new "
                "-o IdentitiesOnly=yes -o ServerAliveInterval=15")
    (playbook / "inventory.ini").write_text("\n".join([
        "[passthrough_hosts]",
        f"hostdev-vm ansible_host=127.0.0.1 ansible_port={vm.port} hostdev_profile=vm-profile.yaml "
        "hostdev_labels='[\"example.org/role=vm-passthrough\"]'",
        "",
        "[passthrough_hosts:vars]",
        "ansible_user=root",
        f"ansible_ssh_private_key_file={vm.key}",
        f"ansible_ssh_common_args='{ssh_args}'",
        "ansible_python_interpreter=/usr/bin/python3",
        "",
        "[local]",
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable} "
        f"hostdev_cmd='{sys.executable} -m hostdev'",
    ]) + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"), "ANSIBLE_SSH_RETRIES": "3"}

    def run(*extra):
        timeout = speed.allowance(PLAYBOOK_HOST_UNITS)
        proc = subprocess.run([ansible_playbook(), "-i", "inventory.ini", "site.yml", *extra],
                              capture_output=True, text=True, env=env, cwd=str(playbook), timeout=timeout)
        (vm.run_dir / f"ansible{'-check' if extra else ''}.log").open("a").write(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
        return proc.stdout

    before = state(vm)
    boot_before = vm.boot_id()

    # check mode: hostdev --dry-run says what would change; nothing does, nothing reboots
    checked = recap(run("--check"))
    assert checked["hostdev-vm"]["failed"] == 0 and checked["hostdev-vm"]["changed"] > 0, checked
    assert state(vm) == before
    assert vm.boot_id() == boot_before

    # the real run: iommu enable, ansible.builtin.reboot, the profile applied, the inventory kept
    first = recap(run())
    assert first["hostdev-vm"]["failed"] == 0 and first["hostdev-vm"]["changed"] > 0, first
    assert vm.boot_id() != boot_before, "the playbook did not reboot the VM"
    now = state(vm)
    assert "iommu=pt" in now["cmdline"], now["cmdline"]   # the example's default: --passthrough
    assert now["iommu_groups"] > 0
    assert driver_of(vm, E1000E) == "vfio-pci"
    assert MDEV_UUID in now["mdevs"]
    assert now["grub_sha256"] == before["grub_sha256"]
    inventory = json.loads((playbook / "out" / "hostdev-vm.json").read_text())
    assert inventory["hostname"] == "hostdev-vm"
    assert (playbook / "out" / "kubevirt-cr.yaml").is_file()

    # converged: a second run changes nothing
    second = recap(run())
    assert all(second[h]["changed"] == 0 and second[h]["failed"] == 0 for h in second), second
