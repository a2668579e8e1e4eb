"""hostdev iommu enable / disable on fake roots of each boot stack, with the simulated kernel's
update-grub, grub(2)-mkconfig and grubby (they write the grub.cfg / BLS entries a real one would).
The real grub-mkconfig runs in the real-kernel guest (tests/behaviour/test_boot_real.py)."""
import hashlib
import json
import os

import pytest
from typer.testing import CliRunner

from hostdev.cli import context
from hostdev.cli.app import app
from hostdev.host import CommandResult, Host
from tests.fakesys.builder import FakeRoot
from tests.fakesys.simkernel import SimKernel

RELEASE = "6.1.0-56-amd64"
DEBIAN_GRUB = ('GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
               'GRUB_CMDLINE_LINUX="console=ttyS0"\n')


class Machine:
    def __init__(self, tmp_path, monkeypatch, *, vendor="intel", cmdline="ro quiet", grub=DEBIAN_GRUB,
                 dropin_dir=True, tools=("update-grub", "grub-mkconfig"), config=""):
        self.fr = FakeRoot(str(tmp_path / "root"), release=RELEASE)
        self.fr.set_cpu(vendor)
        self.fr.set_cmdline(f"BOOT_IMAGE=/boot/vmlinuz-{RELEASE} root=/dev/sda1 {cmdline}")
        self.fr.write(f"/boot/config-{RELEASE}", config or "CONFIG_INTEL_IOMMU=y\n")
        if grub is not None:
            self.fr.write("/etc/default/grub", grub)
        if dropin_dir:
            self.fr.mkdir("/etc/default/grub.d")
        self.fr.add_tools(*tools)
        self.kernel = SimKernel(self.fr.root)
        self.host = Host(self.fr.root, kernel=self.kernel)
        monkeypatch.setattr(context, "host_factory", lambda root: self.host)

    def invoke(self, *args):
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    def json(self, *args, code=0):
        rc, out, err = self.invoke(*args, "-o", "json")
        assert rc == code, err
        return json.loads(out)

    def read(self, path):
        return self.fr.read(path)

    def tree_digest(self):
        digest = hashlib.sha256()
        for base, dirs, files in sorted(os.walk(self.fr.root)):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(base, name)
                digest.update(path.encode())
                if not os.path.islink(path):
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
        return digest.hexdigest()

    def ran(self, prog):
        return [c for c in self.kernel.commands if os.path.basename(c[0]) == prog]


@pytest.fixture
def machine(tmp_path, monkeypatch):
    return lambda **kw: Machine(tmp_path, monkeypatch, **kw)


def test_debian_dropin_enable_is_idempotent_and_disable_removes_it(machine):
    m = machine()
    out = m.json("iommu", "enable", "--passthrough")
    assert out["changed"] is True and out["reboot_required"] is True and out["stack"] == "grub"
    assert out["added"] == ["intel_iommu=on", "iommu=pt"]
    assert m.read("/etc/default/grub.d/hostdev.cfg") == (
        "# Kernel arguments added by hostdev (hostdev iommu enable).\n"
        "# 'hostdev iommu disable' removes this file; edit /etc/default/grub for your own arguments.\n"
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX intel_iommu=on iommu=pt"\n')
    assert m.read("/etc/default/grub") == DEBIAN_GRUB  # the administrator's file is not touched
    assert m.ran("update-grub") == [("update-grub",)]
    linux = [line for line in m.read("/boot/grub/grub.cfg").splitlines() if "\tlinux\t" in line][0]
    assert linux.endswith("ro console=ttyS0 intel_iommu=on iommu=pt quiet")
    assert json.loads(m.read("/var/lib/hostdev/boot-args.json"))["args"] == ["intel_iommu=on", "iommu=pt"]
    # check sees what the next boot gets
    checks = {c["id"]: c for c in m.json("check", code=1)["checks"]}
    assert checks["kernel-args"]["summary"] == "reboot pending: the next boot adds intel_iommu=on iommu=pt"

    digest = m.tree_digest()
    again = m.json("iommu", "enable", "--passthrough")
    assert again["changed"] is False and again["present"] == ["intel_iommu=on", "iommu=pt"]
    assert again["reboot_required"] is True  # still not running with them
    assert m.tree_digest() == digest and len(m.ran("update-grub")) == 1

    off = m.json("iommu", "disable")
    assert off["changed"] is True and off["removed"] == ["intel_iommu=on", "iommu=pt"]
    assert m.read("/etc/default/grub.d/hostdev.cfg") is None
    assert m.read("/var/lib/hostdev/boot-args.json") is None
    assert "intel_iommu" not in m.read("/boot/grub/grub.cfg")
    assert m.read("/etc/default/grub") == DEBIAN_GRUB
    assert m.json("iommu", "disable")["changed"] is False


def test_rhel_bios_edits_grub_cmdline_linux_and_runs_grub2_mkconfig(machine):
    rhel = ('GRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR="$(sed \'s, release .*$,,g\' /etc/system-release)"\n'
            'GRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet"\nGRUB_ENABLE_BLSCFG=true\n')
    m = machine(grub=rhel, dropin_dir=False, tools=("grub2-mkconfig",))
    m.fr.mkdir("/boot/grub2")
    out = m.json("iommu", "enable")
    assert out["commands"] == [["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"]]
    assert m.read("/etc/default/grub") == rhel.replace('rhgb quiet"', 'rhgb quiet intel_iommu=on"')
    assert m.read("/etc/default/grub.hostdev.bak") == rhel
    assert "intel_iommu=on" in m.read("/boot/grub2/grub.cfg")
    m.json("iommu", "disable")
    assert m.read("/etc/default/grub") == rhel


def test_el9_uefi_writes_the_unified_grub_cfg_not_the_esp_stub(machine):
    m = machine(dropin_dir=False, tools=("grub2-mkconfig",))
    m.fr.mkdir("/sys/firmware/efi")
    m.fr.mkdir("/boot/grub2")
    m.fr.write("/boot/efi/EFI/rocky/grub.cfg", "search --no-floppy --fs-uuid --set=dev 1234\n"
                                               "set prefix=($dev)/grub2\nconfigfile $prefix/grub.cfg\n")
    assert m.json("iommu", "enable", "--dry-run")["commands"] == [["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"]]
    m.fr.write("/boot/efi/EFI/rocky/grub.cfg", "menuentry 'Rocky' { linux /vmlinuz }\n")  # EL8: the real one
    assert m.json("iommu", "enable", "--dry-run")["commands"] == [
        ["grub2-mkconfig", "-o", "/boot/efi/EFI/rocky/grub.cfg"]]


def test_dry_run_prints_the_diff_and_commands_and_changes_nothing(machine):
    m = machine(dropin_dir=False)
    digest = m.tree_digest()
    rc, out, err = m.invoke("iommu", "enable", "--dry-run")
    assert rc == 0
    assert out == ("--- a/etc/default/grub\n+++ b/etc/default/grub\n@@ -1,4 +1,4 @@\n"
                   " GRUB_DEFAULT=0\n GRUB_TIMEOUT=5\n GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
                   "-GRUB_CMDLINE_LINUX=\"console=ttyS0\"\n+GRUB_CMDLINE_LINUX=\"console=ttyS0 intel_iommu=on\"\n")
    assert "would run: update-grub" in err and "reboot required" in err
    assert m.tree_digest() == digest and m.kernel.commands == []


def test_a_conflicting_value_is_refused_then_replaced_with_replace(machine):
    grub = 'GRUB_CMDLINE_LINUX="intel_iommu=off quiet"\n'
    m = machine(grub=grub, dropin_dir=False)
    digest = m.tree_digest()
    rc, _, err = m.invoke("iommu", "enable")
    assert rc == 3 and "already has intel_iommu=off (wanted intel_iommu=on)" in err and "--replace" in err
    assert m.tree_digest() == digest
    out = m.json("iommu", "enable", "--replace")
    assert out["removed"] == ["intel_iommu=off"] and out["added"] == ["intel_iommu=on"]
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX="quiet intel_iommu=on"\n'
    assert any("will not put it back" in n for n in out["notes"])


def test_disable_removes_only_what_hostdev_added(machine):
    grub = 'GRUB_CMDLINE_LINUX="intel_iommu=on quiet"\n'  # the administrator's own intel_iommu=on
    m = machine(grub=grub, dropin_dir=False)
    out = m.json("iommu", "enable", "--passthrough")
    assert out["present"] == ["intel_iommu=on"] and out["added"] == ["iommu=pt"]
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX="intel_iommu=on quiet iommu=pt"\n'
    m.json("iommu", "disable")
    assert m.read("/etc/default/grub") == grub


def test_a_failing_regeneration_restores_every_file(machine):
    m = machine(dropin_dir=False)
    m.kernel.command_handlers["update-grub"] = lambda argv: CommandResult(tuple(argv), 1, "",
                                                                          "grub-mkconfig: error: out of space\n")
    rc, _, err = m.invoke("iommu", "enable")
    assert rc == 5 and "out of space" in err and "rolled back 3 step(s)" in err
    assert m.read("/etc/default/grub") == DEBIAN_GRUB
    assert m.read("/var/lib/hostdev/boot-args.json") is None


def test_bls_uses_grubby_and_keeps_etc_default_grub_consistent(machine):
    m = machine(grub='GRUB_CMDLINE_LINUX="rhgb quiet"\nGRUB_ENABLE_BLSCFG=true\n', dropin_dir=False,
                tools=("grubby", "grub2-mkconfig"))
    entry = f"/boot/loader/entries/abc-{RELEASE}.conf"
    m.fr.write(entry, f"title Fedora\nversion {RELEASE}\nlinux /vmlinuz-{RELEASE}\n"
                      "options root=/dev/sda1 ro rhgb quiet\n")
    out = m.json("iommu", "enable", "--arg", "vfio-pci.ids=10de:1eb8")
    assert out["stack"] == "bls"
    assert [c[1:] for c in m.ran("grubby")] == [("--update-kernel=ALL", "--args=intel_iommu=on vfio-pci.ids=10de:1eb8")]
    assert "options root=/dev/sda1 ro rhgb quiet intel_iommu=on vfio-pci.ids=10de:1eb8" in m.read(entry)
    assert m.read("/etc/default/grub") == ('GRUB_CMDLINE_LINUX="rhgb quiet intel_iommu=on vfio-pci.ids=10de:1eb8"\n'
                                          'GRUB_ENABLE_BLSCFG=true\n')
    assert m.json("iommu", "enable", "--arg", "vfio-pci.ids=10de:1eb8")["changed"] is False
    m.json("iommu", "disable")
    assert "options root=/dev/sda1 ro rhgb quiet\n" in m.read(entry)
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX="rhgb quiet"\nGRUB_ENABLE_BLSCFG=true\n'


def test_ostree_and_systemd_boot_get_the_exact_command(machine):
    m = machine(grub=None, dropin_dir=False, tools=())
    m.fr.write("/run/ostree-booted", "")
    rc, _, err = m.invoke("iommu", "enable", "--passthrough")
    assert rc == 4 and "rpm-ostree kargs --append-if-missing=intel_iommu=on --append-if-missing=iommu=pt" in err
    os.unlink(m.fr.p("/run/ostree-booted"))
    m.fr.write("/etc/kernel/cmdline", "root=/dev/sda1 ro\n")
    rc, _, err = m.invoke("iommu", "enable")
    assert rc == 4 and "add 'intel_iommu=on' to /etc/kernel/cmdline" in err and "kernel-install add" in err
    assert m.read("/etc/kernel/cmdline") == "root=/dev/sda1 ro\n"


def test_disable_takes_the_arguments_out_of_every_file_enable_wrote_to(machine):
    """A bug: the record kept one file. A first enable on a host without /etc/default/grub.d
    appends intel_iommu=on to /etc/default/grub; the directory appears (a package ships a drop-in)
    and enable --passthrough writes iommu=pt to hostdev's drop-in and recorded only that; disable
    then left intel_iommu=on in /etc/default/grub and said it was no longer there."""
    m = machine(dropin_dir=False)
    assert m.json("iommu", "enable")["added"] == ["intel_iommu=on"]
    m.fr.mkdir("/etc/default/grub.d")
    assert m.json("iommu", "enable", "--passthrough")["added"] == ["iommu=pt"]
    assert json.loads(m.read("/var/lib/hostdev/boot-args.json"))["files"] == [
        "/etc/default/grub", "/etc/default/grub.d/hostdev.cfg"]
    out = m.json("iommu", "disable")
    assert out["removed"] == ["intel_iommu=on", "iommu=pt"] and out["notes"] == []
    assert m.read("/etc/default/grub") == DEBIAN_GRUB
    assert not os.path.exists(m.fr.p("/etc/default/grub.d/hostdev.cfg"))
    assert not os.path.exists(m.fr.p("/var/lib/hostdev/boot-args.json"))
    assert "intel_iommu" not in m.read("/boot/grub/grub.cfg")


def test_a_record_of_one_file_as_written_before_is_read(machine):
    """boot-args.json as hostdev wrote it before it kept a list: "file", one path."""
    m = machine(dropin_dir=False)
    m.json("iommu", "enable")
    record = json.loads(m.read("/var/lib/hostdev/boot-args.json"))
    record["file"] = record.pop("files")[0]
    m.fr.write("/var/lib/hostdev/boot-args.json", json.dumps(record))
    # enable again changes nothing, the old record included (kills x_plan_enable__mutmut_204: the
    # record rewritten in the new form by a run that changed nothing)
    out = m.json("iommu", "enable")
    assert out["changed"] is False and out["files_changed"] == []
    assert m.read("/var/lib/hostdev/boot-args.json") == json.dumps(record)
    assert m.json("iommu", "disable")["removed"] == ["intel_iommu=on"]
    assert m.read("/etc/default/grub") == DEBIAN_GRUB


def test_disable_on_ostree_and_systemd_boot_names_the_command_that_takes_the_arguments_out(machine):
    # hostdev recorded its arguments on a GRUB host; the host boots another way now: the fix must
    # take them out, never add them again (rpm-ostree's --append-if-missing would)
    m = machine(grub=None, dropin_dir=False, tools=())
    record = json.dumps({"version": 1, "args": ["intel_iommu=on", "iommu=pt"], "replaced": [], "stack": "grub",
                         "file": "/etc/default/grub.d/hostdev.cfg"})
    m.fr.write("/var/lib/hostdev/boot-args.json", record)
    m.fr.write("/run/ostree-booted", "")
    rc, _, err = m.invoke("iommu", "disable")
    assert rc == 4 and "rpm-ostree kargs --delete-if-present=intel_iommu=on --delete-if-present=iommu=pt" in err
    assert "append" not in err
    os.unlink(m.fr.p("/run/ostree-booted"))
    m.fr.write("/etc/kernel/cmdline", "root=/dev/sda1 ro intel_iommu=on iommu=pt\n")
    rc, _, err = m.invoke("iommu", "disable")
    assert rc == 4 and "remove 'intel_iommu=on iommu=pt' from /etc/kernel/cmdline" in err, err
    os.unlink(m.fr.p("/etc/kernel/cmdline"))
    rc, _, err = m.invoke("iommu", "disable")
    assert rc == 4 and "remove 'intel_iommu=on iommu=pt' from your boot loader's kernel command line" in err, err
    assert m.read("/var/lib/hostdev/boot-args.json") == record  # nothing forgotten


def test_amd_needs_no_argument_and_amd_iommu_on_is_refused(machine):
    m = machine(vendor="amd")
    out = m.json("iommu", "enable")
    assert out["changed"] is False and out["added"] == []
    assert any("amd_iommu=on is not a valid value" in n for n in out["notes"])
    rc, _, err = m.invoke("iommu", "enable", "--arg", "amd_iommu=on")
    assert rc == 2 and "not a valid value" in err


def test_a_kernel_with_vt_d_on_by_default_gets_no_intel_iommu_on(machine):
    m = machine(config="CONFIG_INTEL_IOMMU=y\nCONFIG_INTEL_IOMMU_DEFAULT_ON=y\n")
    out = m.json("iommu", "enable", "--passthrough")
    assert out["added"] == ["iommu=pt"]
    assert any("CONFIG_INTEL_IOMMU_DEFAULT_ON=y" in n for n in out["notes"])


def test_debians_kernel_turns_vt_d_on_except_for_integrated_gpus_and_gets_no_intel_iommu_on(machine):
    # the IOMMU options of Debian 12's /boot/config-6.1.0-57-amd64 (this CI machine's, read only):
    # Debian's patch makes the default a choice, and its kernels choose "on, except integrated GPUs"
    # (the full-system VM of tests/fullsystem had IOMMU groups at its first boot, without arguments)
    m = machine(config="CONFIG_INTEL_IOMMU=y\n# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\n"
                       "CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y\n# CONFIG_INTEL_IOMMU_DEFAULT_OFF is not set\n")
    out = m.json("iommu", "enable")
    assert out["changed"] is False and out["added"] == []
    assert any("CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y" in n for n in out["notes"])
    assert m.json("iommu", "enable", "--passthrough")["added"] == ["iommu=pt"]


@pytest.mark.parametrize("bad", ["a b", 'x"y', "$(reboot)", ""])
def test_bad_arguments_are_one_line_errors(machine, bad):
    m = machine()
    rc, _, err = m.invoke("iommu", "enable", "--arg", bad)
    assert rc == 2 and err.count("\n") == 1 and "invalid kernel argument" in err


def test_an_unparseable_grub_file_is_not_edited(machine):
    m = machine(grub='GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet\n', dropin_dir=False)
    rc, _, err = m.invoke("iommu", "enable")
    assert rc == 4 and "/etc/default/grub: unterminated \" quote (line 2)" in err
    assert m.read("/etc/default/grub") == 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet\n'


def test_el93_grub2_mkconfig_without_grubby_updates_the_bls_entries(machine):
    m = machine(dropin_dir=False, tools=())
    m.fr.mkdir("/boot/grub2")
    m.fr.write(f"/boot/loader/entries/abc-{RELEASE}.conf", "title EL\noptions root=/dev/sda1 ro\n")
    # EL 9.3's grub2-mkconfig knows --update-bls-cmdline; older ones do not
    m.fr.write("/usr/sbin/grub2-mkconfig", '#!/bin/sh\ncase "$1" in --update-bls-cmdline) ;; esac\n', 0o755)
    assert m.json("iommu", "enable", "--dry-run")["commands"] == [
        ["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg", "--update-bls-cmdline"]]
    m.fr.write("/usr/sbin/grub2-mkconfig", "#!/bin/sh\n# grub2-mkconfig of EL 9.2\n", 0o755)
    assert m.json("iommu", "enable", "--dry-run")["commands"] == [["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"]]


def test_amd_vm_without_viommu_needs_no_boot_stack_and_says_why(tmp_path, monkeypatch):
    # this development machine's own shape: an AMD guest, no DMAR/IVRS, no boot configuration
    m = Machine(tmp_path, monkeypatch, vendor="amd", grub=None, dropin_dir=False, tools=())
    m.fr.set_cpu("amd", hypervisor=True, virt=False)
    out = m.json("iommu", "enable")
    assert out["changed"] is False and out["added"] == [] and out["stack"] == "none"
    assert any("virtual machine without a virtual IOMMU" in n for n in out["notes"])
    assert m.kernel.commands == []


# /sys/firmware/acpi/tables on the development VM (tests/data/dev-vm-firecracker's machine), listed
# read-only in Nov 2026: tables, but neither DMAR nor IVRS. The recording keeps only DMAR/IVRS
# markers, so the others are added here as the empty files they look like to hostdev.
DEV_VM_ACPI_TABLES = ("APIC", "DSDT", "FACP", "MCFG")


def _vm_without_viommu(m):
    m.fr.set_cpu("intel", hypervisor=True, virt=False)
    for name in DEV_VM_ACPI_TABLES:
        m.fr.write(f"/sys/firmware/acpi/tables/{name}", b"", 0o400)


def test_intel_vm_without_viommu_writes_nothing_and_needs_no_reboot(tmp_path, monkeypatch):
    m = Machine(tmp_path, monkeypatch, vendor="intel")
    _vm_without_viommu(m)
    before = m.tree_digest()
    out = m.json("iommu", "enable", "--passthrough")
    assert out["changed"] is False and out["reboot_required"] is False
    assert out["added"] == [] and out["files"] == [] and out["commands"] == []
    assert any(n.startswith("this is a virtual machine without a virtual IOMMU (hypervisor CPU flag; no DMAR or "
                            "IVRS ACPI table") for n in out["notes"])
    assert ("nothing written: intel_iommu=on, iommu=pt would change nothing until the hypervisor gives this VM an "
            "IOMMU (no reboot needed); --force writes them anyway") in out["notes"]
    assert m.tree_digest() == before and m.kernel.commands == []
    # the text form says the same on stderr, and nothing on stdout
    rc, stdout, stderr = m.invoke("iommu", "enable")
    assert rc == 0 and stdout == "" and "nothing written: intel_iommu=on" in stderr
    assert "reboot required" not in stderr


def test_force_writes_the_arguments_on_a_vm_without_viommu(tmp_path, monkeypatch):
    m = Machine(tmp_path, monkeypatch, vendor="intel")
    _vm_without_viommu(m)
    out = m.json("iommu", "enable", "--force")
    assert out["changed"] is True and out["added"] == ["intel_iommu=on"] and out["reboot_required"] is True
    assert "intel_iommu=on" in m.read("/etc/default/grub.d/hostdev.cfg")


@pytest.mark.parametrize("iommu", ["intel", None])
def test_the_same_files_without_the_hypervisor_flag_still_get_the_argument(tmp_path, monkeypatch, iommu):
    # bare metal with VT-d off in the firmware (no DMAR) or on: the argument is what is missing
    m = Machine(tmp_path, monkeypatch, vendor="intel")
    m.fr.set_iommu(iommu)
    for name in DEV_VM_ACPI_TABLES:
        m.fr.write(f"/sys/firmware/acpi/tables/{name}", b"", 0o400)
    out = m.json("iommu", "enable", "--dry-run")
    assert out["added"] == ["intel_iommu=on"] and out["reboot_required"] is True


def test_recorded_dev_vm_is_recognised(tmp_path):
    # the recording of this development VM (AMD guest, hypervisor flag, no DMAR/IVRS, no groups)
    import shutil

    from hostdev import kernel
    from hostdev.host import Host

    root = tmp_path / "root"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "data", "dev-vm-firecracker"), root, symlinks=True)
    host = Host(str(root))
    assert kernel.vm_without_viommu(kernel.read_cpuinfo(host), kernel.read_iommu_facts(host)) is True


def test_a_vm_on_an_amd_host_given_qemus_intel_iommu_gets_intel_iommu_on_and_check_agrees(machine):
    # QEMU's -device intel-iommu is the usual vIOMMU on AMD hosts too: the guest's CPU says AMD
    # while the firmware's DMAR table (drivers/iommu/intel/dmar.c) is what the kernel drives, and
    # Linux without intel_iommu=on (CONFIG_INTEL_IOMMU_DEFAULT_ON unset) leaves it off: the table
    # is there, no dmar unit is registered, no group exists. `check` and `iommu enable` must name
    # the same argument (kernel.iommu_vendor), or check's fix sends the user to a no-op.
    m = machine(vendor="amd")
    m.fr.set_cpu("amd", hypervisor=True)
    m.fr.write("/sys/firmware/acpi/tables/DMAR", b"DMAR\x50\x00\x00\x00\x01" + bytes(71), 0o400)
    rows = {c["id"]: c for c in m.json("check", code=1)["checks"]}
    assert rows["iommu"]["summary"] == "VT-d is present but off: this kernel needs intel_iommu=on"
    assert "intel_iommu=on" in rows["iommu"]["fix"]
    out = m.json("iommu", "enable")
    assert out["added"] == ["intel_iommu=on"] and out["changed"] is True
    assert not any("AMD-Vi" in n for n in out["notes"])
    rows = {c["id"]: c for c in m.json("check", code=1)["checks"]}
    assert rows["iommu"]["summary"] == "VT-d is present but off: intel_iommu=on is configured and waits for a reboot"


def test_an_amd_host_with_its_ivrs_table_gets_no_argument_whatever_the_cpu_string(machine):
    # the table decides, not the CPU string: IVRS is AMD-Vi, which needs no argument
    m = machine(vendor="intel")
    m.fr.write("/sys/firmware/acpi/tables/IVRS", b"IVRS\x50\x00\x00\x00\x02" + bytes(71), 0o400)
    out = m.json("iommu", "enable")
    assert out["added"] == [] and out["changed"] is False
    assert any(n.startswith("AMD-Vi needs no argument") for n in out["notes"])


# ---------------------------------------------------------------- written for the mutation run's survivors
# (docs/testing.md, "bootloader.py and bootargs.py")
def test_an_empty_etc_default_grub_gets_just_the_assignment(machine):
    m = machine(grub="", dropin_dir=False)
    m.json("iommu", "enable")
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX="intel_iommu=on"\n'


def test_replace_removes_the_value_from_each_variable_and_file_that_writes_it_and_nothing_else(machine):
    m = machine(grub='GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=off"\n'
                     'GRUB_CMDLINE_LINUX="intel_iommu=off console=ttyS0 intel_iommu=off"\n')
    m.fr.write("/etc/default/grub.d/00-empty.cfg", "")  # someone's empty drop-in: left as it is
    out = m.json("iommu", "enable", "--replace")
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0"\n'
    assert m.read("/etc/default/grub.d/00-empty.cfg") == ""
    assert "intel_iommu=on" in m.read("/etc/default/grub.d/hostdev.cfg")
    assert "intel_iommu=off" in out["removed"] and out["added"] == ["intel_iommu=on"]
    linux = [line for line in m.read("/boot/grub/grub.cfg").splitlines() if "\tlinux\t" in line][0]
    assert "intel_iommu=off" not in linux and "intel_iommu=on" in linux


def test_replace_leaves_a_value_glued_to_an_earlier_files_expansion(machine):
    # after /etc/default/grub (and a drop-in between that sets something else), the drop-in's value is
    # "quietintel_iommu=off intel_iommu=off": only its second word is the argument; the first stays
    m = machine(grub='GRUB_CMDLINE_LINUX="quiet"\n')
    m.fr.write("/etc/default/grub.d/10-timeout.cfg", "GRUB_TIMEOUT=1\n")
    m.fr.write("/etc/default/grub.d/50-local.cfg",
               'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX}intel_iommu=off intel_iommu=off"\n')
    m.json("iommu", "enable", "--replace")
    assert m.read("/etc/default/grub.d/50-local.cfg") == 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX}intel_iommu=off"\n'
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX="quiet"\n'


def test_replacing_an_argument_of_hostdevs_own_dropin_reports_it_once(machine):
    m = machine()
    m.json("iommu", "enable", "--passthrough")
    out = m.json("iommu", "enable", "--arg", "iommu=nopt", "--replace")
    assert out["removed"] == ["iommu=pt"] and out["added"] == ["iommu=nopt"]
    assert m.read("/etc/default/grub.d/hostdev.cfg").endswith(
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX intel_iommu=on iommu=nopt"\n')
    record = json.loads(m.read("/var/lib/hostdev/boot-args.json"))
    assert record["args"] == ["intel_iommu=on", "iommu=nopt"] and record["replaced"] == []


def test_disable_removes_only_the_copy_hostdev_appended(machine):
    # the administrator wrote iommu=pt twice more after hostdev's enable: at the front of
    # GRUB_CMDLINE_LINUX and in GRUB_CMDLINE_LINUX_DEFAULT; disable takes back hostdev's (the last) only
    m = machine(grub='GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0"\n', dropin_dir=False)
    m.json("iommu", "enable", "--passthrough")
    assert m.read("/etc/default/grub").endswith('GRUB_CMDLINE_LINUX="console=ttyS0 intel_iommu=on iommu=pt"\n')
    m.fr.write("/etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\n'
                                    'GRUB_CMDLINE_LINUX="iommu=pt console=ttyS0 intel_iommu=on iommu=pt"\n')
    out = m.json("iommu", "disable")
    assert out["removed"] == ["intel_iommu=on", "iommu=pt"]
    assert m.read("/etc/default/grub") == ('GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\n'
                                          'GRUB_CMDLINE_LINUX="iommu=pt console=ttyS0"\n')


def test_disable_refuses_a_grub_file_that_no_longer_parses_naming_it(machine):
    m = machine(dropin_dir=False)
    m.json("iommu", "enable")
    broken = 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="console=ttyS0 intel_iommu=on\n'
    m.fr.write("/etc/default/grub", broken)
    rc, _, err = m.invoke("iommu", "disable")
    assert rc == 4 and "/etc/default/grub: unterminated \" quote (line 2)" in err
    assert m.read("/etc/default/grub") == broken


@pytest.mark.parametrize("vendor_line, vendor", [("vendor_id\t: CentaurHauls\n", "CentaurHauls"), ("", "unknown")])
def test_a_cpu_of_another_or_no_vendor_gets_no_argument_and_the_reason(machine, vendor_line, vendor):
    m = machine()
    m.fr.write("/proc/cpuinfo", f"processor\t: 0\n{vendor_line}flags\t\t: fpu vme\n")
    out = m.json("iommu", "enable")
    assert out["added"] == [] and out["changed"] is False
    assert out["notes"] == [f"CPU vendor {vendor} and no DMAR or IVRS table: no IOMMU argument is known to be needed"]


@pytest.mark.parametrize("vendor, notes", [
    ("intel", ["iommu=pt: the host's own devices skip DMA translation (VMs keep full isolation)"]),
    ("amd", ["AMD-Vi needs no argument: the kernel turns it on when the firmware enables it (amd_iommu=on is not "
             "a valid value and is ignored)",
             "iommu=pt: the host's own devices skip DMA translation (VMs keep full isolation); it is incompatible "
             "with AMD SEV-SNP hosts"]),
])
def test_the_notes_of_passthrough(machine, vendor, notes):
    assert machine(vendor=vendor).json("iommu", "enable", "--passthrough", "--dry-run")["notes"] == notes


def test_the_refusals_of_bad_arguments_name_the_fix(machine):
    m = machine(vendor="amd")
    assert m.invoke("iommu", "enable", "--arg", "a b") == (
        2, "", "hostdev: error: invalid kernel argument 'a b' (one word, KEY or KEY=VALUE, without blanks, quotes, "
               "$ or shell characters)\n")
    assert m.invoke("iommu", "enable", "--arg", "amd_iommu=on") == (
        2, "", "hostdev: error: amd_iommu=on is not a valid value (the kernel ignores it; AMD-Vi is on by default) "
               "(leave it out; valid values are off, force_isolation, fullflush, pgtbl_v1/v2 …)\n")


def test_amd_iommu_with_another_value_and_other_on_arguments_are_accepted(machine):
    m = machine(vendor="amd")
    # only amd_iommu=on is refused: a flag, another value (everything after the first "="), another key's "on"
    out = m.json("iommu", "enable", "--dry-run", "--arg", "amd_iommu", "--arg", "amd_iommu=fullflush",
                 "--arg", "amd_iommu=off=on", "--arg", "intel_iommu=on")
    assert out["added"] == ["amd_iommu", "amd_iommu=fullflush", "amd_iommu=off=on", "intel_iommu=on"]


def test_disable_with_nothing_recorded_changes_nothing_and_says_so(machine):
    m = machine()
    digest = m.tree_digest()
    out = m.json("iommu", "disable")
    assert {k: out[k] for k in ("changed", "reboot_required", "stack", "added", "removed", "present", "commands",
                                "notes")} == {
        "changed": False, "reboot_required": False, "stack": "none", "added": [], "removed": [], "present": [],
        "commands": [],
        "notes": ["hostdev has added no kernel arguments here (nothing recorded in /var/lib/hostdev/boot-args.json)"]}
    assert m.tree_digest() == digest
    # a record of replaced arguments only (none of hostdev's own left): the stack it names is reported
    m.fr.write("/var/lib/hostdev/boot-args.json", json.dumps(
        {"version": 1, "args": [], "replaced": ["intel_iommu=off"], "stack": "grub", "file": "/etc/default/grub"}))
    out = m.json("iommu", "disable")
    assert out["changed"] is False and out["stack"] == "grub"


@pytest.mark.parametrize("old_record", [False, True])
def test_disable_of_a_dropin_leaves_the_same_argument_in_the_administrators_file(machine, old_record):
    """Also with boot-args.json as written before it kept a list ("file": the drop-in): that file
    is read, not taken as no file, which would send disable to /etc/default/grub (kills
    x__load_state__mutmut_64, _68-_70)."""
    m = machine()
    m.json("iommu", "enable")
    if old_record:
        record = json.loads(m.read("/var/lib/hostdev/boot-args.json"))
        assert record.pop("files") == ["/etc/default/grub.d/hostdev.cfg"]
        m.fr.write("/var/lib/hostdev/boot-args.json", json.dumps(dict(record, file="/etc/default/grub.d/hostdev.cfg")))
    # the administrator also writes it in /etc/default/grub afterwards: it is theirs, it stays
    m.fr.write("/etc/default/grub", DEBIAN_GRUB.replace('"console=ttyS0"', '"console=ttyS0 intel_iommu=on"'))
    out = m.json("iommu", "disable")
    assert out["removed"] == ["intel_iommu=on"]
    assert m.read("/etc/default/grub.d/hostdev.cfg") is None
    assert m.read("/etc/default/grub") == DEBIAN_GRUB.replace('"console=ttyS0"', '"console=ttyS0 intel_iommu=on"')


@pytest.mark.parametrize("running, reboot", [("ro quiet intel_iommu=on", True), ("ro quiet", False)])
def test_disable_reports_what_it_removed_and_whether_a_reboot_is_needed(machine, running, reboot):
    # a reboot is needed when an argument it removed is on the running kernel's command line
    m = machine(cmdline=running, dropin_dir=False)
    m.json("iommu", "enable")
    out = m.json("iommu", "disable")
    assert {k: out[k] for k in ("changed", "reboot_required", "stack", "added", "removed", "present", "commands",
                                "notes")} == {
        "changed": True, "reboot_required": reboot, "stack": "grub", "added": [], "removed": ["intel_iommu=on"],
        "present": [], "commands": [["update-grub"]], "notes": []}


def test_disable_names_recorded_arguments_the_administrator_already_removed(machine):
    m = machine(dropin_dir=False)
    m.json("iommu", "enable", "--passthrough")
    m.fr.write("/etc/default/grub", DEBIAN_GRUB)  # taken out by hand
    out = m.json("iommu", "disable")
    assert out["removed"] == [] and out["reboot_required"] is False
    assert out["notes"] == ["intel_iommu=on, iommu=pt recorded as hostdev's but no longer in the boot configuration"]
    assert m.read("/var/lib/hostdev/boot-args.json") is None


def _roll_back(plan, host):
    """What Plan.apply does when a step after these fails (``hostdev apply`` plans more after them)."""
    for action in reversed(plan.actions):
        if action.undo is not None:
            action.undo(host)


def test_a_later_failure_undoes_the_grubby_edits_and_the_files(machine):
    from hostdev import bootargs

    grub = 'GRUB_CMDLINE_LINUX="rhgb quiet intel_iommu=off"\nGRUB_ENABLE_BLSCFG=true\n'
    m = machine(grub=grub, dropin_dir=False, tools=("grubby", "grub2-mkconfig"))
    entry = f"/boot/loader/entries/abc-{RELEASE}.conf"
    m.fr.write(entry, f"title Fedora\nversion {RELEASE}\noptions root=/dev/sda1 ro rhgb quiet intel_iommu=off\n")
    boot = bootargs.plan_enable(m.host, ["intel_iommu=on"], replace=True)
    assert [a.description for a in boot.plan.actions][-2:] == [
        "run /usr/sbin/grubby --update-kernel=ALL --remove-args=intel_iommu=off",
        "run /usr/sbin/grubby --update-kernel=ALL --args=intel_iommu=on"]
    boot.plan.apply(m.host)
    assert "options root=/dev/sda1 ro rhgb quiet intel_iommu=on\n" in m.read(entry)
    _roll_back(boot.plan, m.host)
    assert [c[1:] for c in m.ran("grubby")] == [("--update-kernel=ALL", "--remove-args=intel_iommu=off"),
                                                ("--update-kernel=ALL", "--args=intel_iommu=on"),
                                                ("--update-kernel=ALL", "--remove-args=intel_iommu=on"),
                                                ("--update-kernel=ALL", "--args=intel_iommu=off")]
    assert "options root=/dev/sda1 ro rhgb quiet intel_iommu=off\n" in m.read(entry)
    assert m.read("/etc/default/grub") == grub


def test_a_later_failure_regenerates_grub_cfg_from_the_restored_files(machine):
    from hostdev import bootargs

    m = machine(dropin_dir=False)
    boot = bootargs.plan_enable(m.host, ["intel_iommu=on"])
    assert [a.description for a in boot.plan.actions][0] == "(on rollback: regenerate grub.cfg from the restored files)"
    boot.plan.apply(m.host)
    assert "intel_iommu=on" in m.read("/boot/grub/grub.cfg")
    _roll_back(boot.plan, m.host)
    assert m.ran("update-grub") == [("update-grub",), ("update-grub",)]
    assert "intel_iommu=on" not in m.read("/boot/grub/grub.cfg")
    assert m.read("/etc/default/grub") == DEBIAN_GRUB


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not valid JSON"),
    ("[]", "expected an object"),
    ('{"args": "intel_iommu=on"}', "args: expected a list of kernel arguments (strings)"),
    ('{"args": ["intel_iommu=on"], "replaced": [""]}', "replaced: expected a list of kernel arguments (strings)"),
    ('{"args": ["intel_iommu=on"], "stack": 1}', "stack: expected a string or null"),
    ('{"args": ["intel_iommu=on"], "file": ["/etc/default/grub"]}', "file: expected a string or null"),
    ('{"args": ["intel_iommu=on"], "files": "/etc/default/grub"}', "files: expected a list of absolute paths"),
    ('{"args": ["intel_iommu=on"], "files": ["etc/default/grub"]}', "files: expected a list of absolute paths"),
])
def test_a_broken_record_of_added_arguments_is_refused_naming_it_and_the_way_out(machine, text, problem):
    m = machine()
    m.fr.write("/var/lib/hostdev/boot-args.json", text)
    digest = m.tree_digest()
    for command in (("iommu", "disable"), ("iommu", "enable")):
        rc, out, err = m.invoke(*command)
        assert rc == 2 and out == ""
        assert err.startswith(f"hostdev: error: /var/lib/hostdev/boot-args.json: {problem}")
        assert err.endswith(" (inspect it, or move it aside (/var/lib/hostdev/boot-args.json.broken))\n")
    assert m.tree_digest() == digest


def test_a_record_without_replaced_or_stack_is_read(machine):
    m = machine(dropin_dir=False)
    m.json("iommu", "enable")
    m.fr.write("/var/lib/hostdev/boot-args.json", '{"args": ["intel_iommu=on"]}')
    assert m.json("iommu", "disable")["removed"] == ["intel_iommu=on"]
    assert m.read("/etc/default/grub") == DEBIAN_GRUB


def test_a_record_without_args_means_nothing_added_and_replaced_ones_are_kept_across_enables(machine):
    m = machine(dropin_dir=False)
    m.fr.write("/var/lib/hostdev/boot-args.json", '{"replaced": ["intel_iommu=off"]}')
    assert m.json("iommu", "disable")["notes"] == [
        "hostdev has added no kernel arguments here (nothing recorded in /var/lib/hostdev/boot-args.json)"]
    os.unlink(m.fr.p("/var/lib/hostdev/boot-args.json"))
    m.fr.write("/etc/default/grub", 'GRUB_CMDLINE_LINUX="intel_iommu=off quiet"\n')
    m.json("iommu", "enable", "--replace")
    m.json("iommu", "enable", "--passthrough")
    record = json.loads(m.read("/var/lib/hostdev/boot-args.json"))
    assert record["replaced"] == ["intel_iommu=off"] and record["args"] == ["intel_iommu=on", "iommu=pt"]


def test_the_record_the_steps_and_the_commands_as_written(machine):
    m = machine(dropin_dir=False)
    out = m.json("iommu", "enable")
    assert [a["action"] for a in out["actions"]] == [
        "(on rollback: regenerate grub.cfg from the restored files)",
        "write /etc/default/grub",
        "record the arguments hostdev added in /var/lib/hostdev/boot-args.json",
        "regenerate grub.cfg (update-grub)"]
    assert m.read("/var/lib/hostdev/boot-args.json") == (
        '{\n  "version": 1,\n  "stack": "grub",\n  "files": [\n    "/etc/default/grub"\n  ],\n  "args": [\n'
        '    "intel_iommu=on"\n  ],\n  "replaced": []\n}\n')
    # nothing to do the second time: nothing is run, not even the regeneration
    assert m.json("iommu", "enable")["commands"] == []
    out = m.json("iommu", "disable", "--dry-run")
    assert "forget the recorded arguments (/var/lib/hostdev/boot-args.json)" in [a["action"] for a in out["actions"]]


def test_the_diff_of_a_file_without_a_final_newline(machine):
    m = machine(grub='GRUB_CMDLINE_LINUX="quiet"', dropin_dir=False)
    rc, out, _ = m.invoke("iommu", "enable", "--dry-run")
    assert rc == 0 and out == ('--- a/etc/default/grub\n+++ b/etc/default/grub\n@@ -1 +1 @@\n'
                               '-GRUB_CMDLINE_LINUX="quiet"\n\\ No newline at end of file\n'
                               '+GRUB_CMDLINE_LINUX="quiet intel_iommu=on"\n')


def test_the_regeneration_step_names_the_whole_command(machine):
    m = machine(dropin_dir=False, tools=("grub2-mkconfig",))
    m.fr.mkdir("/boot/grub2")
    out = m.json("iommu", "enable", "--dry-run")
    assert out["actions"][-1]["action"] == "regenerate grub.cfg (grub2-mkconfig -o /boot/grub2/grub.cfg)"


def test_the_stacks_hostdev_does_not_edit_get_the_exact_command_for_every_argument(machine):
    m = machine(grub=None, dropin_dir=False, tools=())
    m.fr.write("/run/ostree-booted", "")
    assert m.invoke("iommu", "enable", "--passthrough") == (
        4, "", "hostdev: error: rpm-ostree/bootc host: kernel arguments are managed by rpm-ostree, not edited in "
               "place (run: rpm-ostree kargs --append-if-missing=intel_iommu=on --append-if-missing=iommu=pt && "
               "systemctl reboot)\n")
    os.unlink(m.fr.p("/run/ostree-booted"))
    m.fr.write("/etc/kernel/cmdline", "root=/dev/sda1 ro\n")
    assert m.invoke("iommu", "enable", "--passthrough") == (
        4, "", "hostdev: error: systemd-boot/UKI host (/etc/kernel/cmdline): hostdev does not edit it (add "
               "'intel_iommu=on iommu=pt' to /etc/kernel/cmdline, then run: kernel-install add \"$(uname -r)\" "
               "\"/usr/lib/modules/$(uname -r)/vmlinuz\" (or your UKI builder), and reboot)\n")
    os.unlink(m.fr.p("/etc/kernel/cmdline"))
    assert m.invoke("iommu", "enable") == (
        4, "", "hostdev: error: no boot configuration found (/etc/default/grub, BLS entries, /etc/kernel/cmdline) "
               "(add 'intel_iommu=on' to your boot loader's kernel command line and reboot)\n")


def test_bls_reads_the_running_kernels_entry_not_etc_default_grub(machine):
    m = machine(grub='GRUB_CMDLINE_LINUX="rhgb quiet"\n', dropin_dir=False, tools=("grubby", "grub2-mkconfig"))
    m.fr.write("/boot/loader/entries/abc-6.0.0-1-amd64.conf", "title old\noptions root=/dev/sda1 ro\n")
    m.fr.write(f"/boot/loader/entries/abc-{RELEASE}.conf", "title now\noptions root=/dev/sda1 ro intel_iommu=on\n")
    out = m.json("iommu", "enable", "--dry-run")
    assert out["stack"] == "bls" and out["present"] == ["intel_iommu=on"] and out["added"] == []


def test_grub_without_its_tools_is_refused_and_grub_mkconfig_alone_is_used(machine):
    m = machine(dropin_dir=False, tools=())
    assert m.invoke("iommu", "enable") == (
        4, "", "hostdev: error: /etc/default/grub exists but neither update-grub, grub2-mkconfig nor grub-mkconfig is "
               "installed (install GRUB's tools (Debian: grub2-common))\n")
    m.fr.add_tools("grub-mkconfig")
    assert m.json("iommu", "enable", "--dry-run")["commands"] == [["grub-mkconfig", "-o", "/boot/grub/grub.cfg"]]


def test_bls_without_etc_default_grub_does_not_create_it(machine):
    m = machine(grub=None, dropin_dir=False, tools=("grubby",))
    m.fr.write(f"/boot/loader/entries/abc-{RELEASE}.conf", "title now\noptions root=/dev/sda1 ro\n")
    out = m.json("iommu", "enable")
    assert out["stack"] == "bls" and out["files"] == [] and out["added"] == ["intel_iommu=on"]
    assert m.read("/etc/default/grub") is None


def test_nothing_to_add_reports_empty_lists_and_two_conflicts_are_named_together(machine):
    out = machine(vendor="amd").json("iommu", "enable")
    assert {k: out[k] for k in ("stack", "added", "removed", "present", "commands", "files")} == {
        "stack": "none", "added": [], "removed": [], "present": [], "commands": [], "files": []}
    m = machine(grub='GRUB_CMDLINE_LINUX="intel_iommu=off iommu=nopt"\n', dropin_dir=False)
    rc, _, err = m.invoke("iommu", "enable", "--passthrough")
    assert rc == 3 and err.startswith("hostdev: error: the boot configuration already has intel_iommu=off (wanted "
                                      "intel_iommu=on), iommu=nopt (wanted iommu=pt) (")
    assert err.endswith(" (pass --replace to replace it, or leave that argument out)\n")


def test_an_argument_already_in_etc_default_grub_gets_no_dropin(machine):
    grub = DEBIAN_GRUB.replace('"console=ttyS0"', '"console=ttyS0 intel_iommu=on"')
    m = machine(grub=grub)
    digest = m.tree_digest()
    out = m.json("iommu", "enable")
    assert out["changed"] is False and out["present"] == ["intel_iommu=on"]
    assert m.read("/etc/default/grub.d/hostdev.cfg") is None and m.tree_digest() == digest


def test_a_conflict_not_written_literally_is_refused_with_the_way_out(machine):
    grub = 'X="intel_iommu=off iommu=nopt"\nGRUB_CMDLINE_LINUX="$X quiet"\n'
    m = machine(grub=grub, dropin_dir=False)
    assert m.invoke("iommu", "enable", "--passthrough", "--replace") == (
        3, "", "hostdev: error: cannot remove intel_iommu=off, iommu=nopt: it is not written literally in a GRUB "
               "file (remove it by hand from the file that sets it, then run again)\n")
    assert m.read("/etc/default/grub") == grub


def test_bls_replace_reports_the_conflicts_in_the_order_the_entry_has_them(machine):
    m = machine(grub=None, dropin_dir=False, tools=("grubby",))
    m.fr.write(f"/boot/loader/entries/abc-{RELEASE}.conf",
               "title now\noptions root=/dev/sda1 iommu=nopt intel_iommu=off\n")
    out = m.json("iommu", "enable", "--passthrough", "--replace")
    assert out["removed"] == ["iommu=nopt", "intel_iommu=off"] and out["added"] == ["intel_iommu=on", "iommu=pt"]


def test_replacing_two_values_already_replaced_in_the_running_kernel_needs_no_reboot(machine):
    """Kills x_plan_enable__mutmut_213 (a reboot asked for when a replaced value is not running),
    _216, _217 (the note naming every value replaced): the administrator's intel_iommu=off and
    iommu=nopt in /etc/default/grub, the running kernel already booted with what hostdev wants."""
    grub = 'GRUB_CMDLINE_LINUX="intel_iommu=off iommu=nopt quiet"\n'
    m = machine(grub=grub, dropin_dir=False, cmdline="ro quiet intel_iommu=on iommu=pt")
    out = m.json("iommu", "enable", "--passthrough", "--replace")
    assert out["removed"] == ["intel_iommu=off", "iommu=nopt"] and out["added"] == ["intel_iommu=on", "iommu=pt"]
    assert out["reboot_required"] is False
    assert "replaced intel_iommu=off, iommu=nopt (the administrator's); 'hostdev iommu disable' will not put " \
           "it back" in out["notes"]
    assert m.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX="quiet intel_iommu=on iommu=pt"\n'


def test_grubby_removes_every_replaced_value_in_one_command(machine):
    """Kills x_plan_enable__mutmut_149 (the values of --remove-args joined otherwise than by a blank)."""
    grub = 'GRUB_CMDLINE_LINUX="rhgb quiet intel_iommu=off iommu=nopt"\nGRUB_ENABLE_BLSCFG=true\n'
    m = machine(grub=grub, dropin_dir=False, tools=("grubby", "grub2-mkconfig"))
    entry = f"/boot/loader/entries/abc-{RELEASE}.conf"
    m.fr.write(entry, f"title Fedora\nversion {RELEASE}\noptions root=/dev/sda1 ro intel_iommu=off iommu=nopt\n")
    m.json("iommu", "enable", "--passthrough", "--replace")
    assert [c[1:] for c in m.ran("grubby")] == [
        ("--update-kernel=ALL", "--remove-args=intel_iommu=off iommu=nopt"),
        ("--update-kernel=ALL", "--args=intel_iommu=on iommu=pt")]
    assert "options root=/dev/sda1 ro intel_iommu=on iommu=pt\n" in m.read(entry)
