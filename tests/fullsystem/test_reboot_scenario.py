"""A prepared host survives reboots: the seed's workflow on a whole Debian 12 system (GRUB, systemd,
Debian's kernel with CONFIG_INTEL_IOMMU_DEFAULT_ON unset), every step asserted from inside the VM
over SSH (tests/fullsystem/machine.py).

Debian 12's kernel turns VT-d on without an argument (CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y:
IOMMU groups exist at the first boot), so the argument the reboot must bring is iommu=pt:
iommu enable --passthrough → check says a reboot is pending → reboot → iommu=pt on /proc/cmdline,
the groups' default domain is identity, check's iommu and kernel-args rows pass →
modules load --persist → bind --persist the NIC without a route →
mdev create --persist (mtty) → reboot → the NIC is on vfio-pci and the mdev exists right after
boot, without running hostdev → restore --all, mdev remove, modules unpersist, iommu disable →
reboot → as before, and /etc/default/grub byte-identical to Debian's.
"""

from __future__ import annotations

import json

import pytest

from .machine import E1000E, EDU, FullSystemVM

pytestmark = [pytest.mark.fullsystem, pytest.mark.realkernel]

MDEV_UUID = "9c4a7e62-32e5-4f3a-9d1e-6c0b5f7f4a01"


def hostdev(vm: FullSystemVM, args: str, expect_rc=(0,)) -> dict:
    """``hostdev ARGS -o json`` in the VM; its JSON, after checking the exit code."""
    proc = vm.ssh(f"hostdev {args} -o json", check=False)
    assert proc.returncode in expect_rc, f"hostdev {args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def check_row(report: dict, check_id: str) -> dict:
    rows = [row for row in report["checks"] if row["id"] == check_id]
    assert len(rows) == 1, f"no single {check_id!r} row in {report['checks']}"
    return rows[0]


def driver_of(vm: FullSystemVM, bdf: str) -> str:
    return vm.ssh(f"basename \"$(readlink /sys/bus/pci/devices/{bdf}/driver)\" 2>/dev/null || true",
                  check=False).stdout.strip() or "none"


def state(vm: FullSystemVM) -> dict:
    """What the scenario compares before and after: read in the VM, never through hostdev."""
    script = (
        "cat /proc/cmdline; echo @@; ls /sys/kernel/iommu_groups | wc -l; echo @@; "
        "ls /sys/bus/mdev/devices 2>/dev/null; echo @@; sha256sum /etc/default/grub | cut -d' ' -f1; echo @@; "
        "ls /etc/default/grub.d; echo @@; "
        # every file or link under /etc that hostdev writes, by its name (and the VM's own
        # hostdev-test-authorized-keys unit, there from the start); directories hostdev made and
        # left empty (/etc/hostdev/bindings.d, /etc/mdevctl.d/mtty) do not count
        "find /etc \\( -name '*hostdev*' -o -name 60-mdevctl.rules -o -path '/etc/mdevctl.d/mtty*' "
        "-o -path '/etc/modprobe.d/*' \\) \\( -type f -o -type l \\) | sort")
    cmdline, groups, mdevs, grub, dropins, etc_files = vm.ssh(script).stdout.split("@@\n")
    return {"cmdline": cmdline.split(), "iommu_groups": int(groups), "mdevs": mdevs.split(),
            "grub_sha256": grub.strip(), "grub.d": dropins.split(), "etc": etc_files.split(),
            "e1000e": driver_of(vm, E1000E), "edu": driver_of(vm, EDU)}


def group_type(vm: FullSystemVM, bdf: str) -> str:
    """The default domain type of the device's IOMMU group: DMA/DMA-FQ (translated), identity (iommu=pt)."""
    return vm.ssh(f"cat /sys/bus/pci/devices/{bdf}/iommu_group/type").stdout.strip()


def test_a_prepared_host_survives_reboots_and_is_given_back(fullsystem_vm):
    vm = fullsystem_vm
    # ---- the VM as Debian installed it. /etc/default/grub is what grub-pc's postinst installed
    # (ucf records its md5); Debian 12's kernel has CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y, so
    # VT-d is on without any argument (IOMMU groups exist) and DMA is translated
    ucf_md5 = vm.ssh("awk '$2 == \"/etc/default/grub\" {print $1}' /var/lib/ucf/hashfile").stdout.strip()
    assert ucf_md5 and vm.ssh("md5sum /etc/default/grub").stdout.split()[0] == ucf_md5, \
        "/etc/default/grub is not the file Debian's grub-pc installed"
    before = state(vm)
    assert not any(arg.startswith(("intel_iommu", "iommu=")) for arg in before["cmdline"]), before["cmdline"]
    assert before["iommu_groups"] > 0
    group_type_before = group_type(vm, EDU)
    assert group_type_before in ("DMA", "DMA-FQ")
    assert before["e1000e"] == "e1000e" and before["edu"] == "none" and before["mdevs"] == []
    report = hostdev(vm, "check", expect_rc=(0, 1))
    assert check_row(report, "iommu")["status"] == "pass", report["checks"]

    # ---- iommu enable --passthrough: no intel_iommu=on for this kernel, iommu=pt; reboot pending
    enabled = hostdev(vm, "iommu enable --passthrough")
    assert enabled["changed"] is True and enabled["reboot_required"] is True, enabled
    assert enabled["added"] == ["iommu=pt"], enabled
    assert enabled["files"] == ["/etc/default/grub.d/hostdev.cfg"], enabled
    assert vm.ssh("grep -c iommu=pt /boot/grub/grub.cfg").stdout.strip() != "0"
    report = hostdev(vm, "check", expect_rc=(0, 1))
    assert check_row(report, "kernel-args")["summary"] == "reboot pending: the next boot adds iommu=pt", report

    # ---- reboot (SeaBIOS, GRUB, kernel, systemd): the argument is in force
    vm.reboot()
    after_enable = state(vm)
    assert "iommu=pt" in after_enable["cmdline"], after_enable["cmdline"]
    assert after_enable["iommu_groups"] > 0
    assert group_type(vm, EDU) == "identity"
    assert after_enable["grub_sha256"] == before["grub_sha256"], "iommu enable edited /etc/default/grub itself"
    report = hostdev(vm, "check", expect_rc=(0, 1))
    assert check_row(report, "iommu")["status"] == "pass", report["checks"]
    assert check_row(report, "kernel-args")["status"] == "pass", report["checks"]

    # ---- persistent preparation: vfio modules at boot, the NIC without a route on vfio-pci, an mdev
    loaded = hostdev(vm, "modules load --persist")
    assert "/etc/modules-load.d/hostdev-vfio.conf" in loaded["files"], loaded
    bound = hostdev(vm, f"bind --persist {E1000E}")
    assert bound["changed"] is True, bound
    assert driver_of(vm, E1000E) == "vfio-pci"
    created = hostdev(vm, f"mdev create --parent mtty --type mtty-1 --uuid {MDEV_UUID} --persist")
    assert created["changed"] is True, created
    assert vm.ssh(f"cat /sys/bus/mdev/devices/{MDEV_UUID}/mdev_type/name").stdout.strip() == "Single port serial"
    assert vm.ssh(f"test -f /etc/mdevctl.d/mtty/{MDEV_UUID}", check=False).returncode == 0
    report = hostdev(vm, "check", expect_rc=(0, 1))
    assert check_row(report, "mdevctl-autostart")["status"] == "pass", report["checks"]

    # ---- reboot: the NIC is on vfio-pci and the mdev exists right after boot; nobody ran hostdev
    vm.reboot()
    prepared = state(vm)
    assert prepared["e1000e"] == "vfio-pci", vm.ssh("journalctl -b -u hostdev-bindings.service", check=False).stdout
    assert MDEV_UUID in prepared["mdevs"], vm.ssh("journalctl -b -t mdevctl", check=False).stdout
    assert vm.ssh("test -d /sys/module/vfio_pci", check=False).returncode == 0
    assert "iommu=pt" in prepared["cmdline"]

    # ---- give it all back, reboot: the VM is as before the scenario, /etc/default/grub is Debian's
    restored = hostdev(vm, "restore --all")
    assert restored["changed"] is True, restored
    assert driver_of(vm, E1000E) == "e1000e"
    removed = hostdev(vm, f"mdev remove {MDEV_UUID}")
    assert removed["changed"] is True, removed
    unpersisted = hostdev(vm, "modules unpersist")
    assert unpersisted["changed"] is True, unpersisted
    assert unpersisted["files"] == ["/etc/modules-load.d/hostdev-vfio.conf"], unpersisted
    # Debian's initramfs-tools does not copy modules-load.d: no initramfs to regenerate
    assert not any(a["action"].startswith("regenerate") for a in unpersisted["actions"]), unpersisted
    assert hostdev(vm, "modules unpersist")["changed"] is False
    disabled = hostdev(vm, "iommu disable")
    assert disabled["changed"] is True and disabled["removed"] == ["iommu=pt"], disabled
    vm.reboot()
    after = state(vm)
    assert vm.ssh("md5sum /etc/default/grub").stdout.split()[0] == ucf_md5
    assert group_type(vm, EDU) == group_type_before
    # what hostdev added is gone (modules-load.d included); what it never wrote is untouched
    assert after == before, (before, after)
    # nothing loads vfio-pci at boot any more (no modules-load.d file, no binding, no mdev)
    assert vm.ssh("test -d /sys/module/vfio_pci", check=False).returncode != 0, \
        vm.ssh("journalctl -b -u systemd-modules-load.service", check=False).stdout
    report = hostdev(vm, "check", expect_rc=(0, 1))
    assert check_row(report, "kernel-args")["status"] == "pass", report["checks"]
