"""hostdev modules status / load on the Intel host scenario (kernel 6.1: vfio_virqfd still exists)
and a 6.8 cloud VM (it does not). The real modprobe runs in tests/behaviour/test_boot_real.py."""
import json

from hostdev import modules
from hostdev.host import CommandResult

HEADER = "# Written by hostdev (hostdev modules load --persist/--early); hostdev rewrites this file.\n"


def test_vfio_virqfd_only_before_6_2():
    assert modules.vfio_modules("6.1.0-56-amd64") == ["vfio", "vfio_virqfd", "vfio_iommu_type1", "vfio_pci"]
    assert modules.vfio_modules("6.2.0") == ["vfio", "vfio_iommu_type1", "vfio_pci"]
    assert modules.vfio_modules("6.8.0-1015-aws") == ["vfio", "vfio_iommu_type1", "vfio_pci"]
    assert modules.vfio_modules("5.15.0-105-generic")[1] == "vfio_virqfd"


def test_status_then_load_then_nothing_to_do(sim):
    rc, out, _ = sim.invoke("modules", "status", "-o", "json")
    assert rc == 0
    assert [(m["name"], m["state"]) for m in json.loads(out)["modules"]] == [
        ("vfio", "available"), ("vfio_virqfd", "available"), ("vfio_iommu_type1", "available"),
        ("vfio_pci", "available")]
    rc, out, err = sim.invoke("modules", "load", "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["load"] == ["vfio", "vfio_virqfd", "vfio_iommu_type1", "vfio_pci"]
    assert ("modprobe", "-a", "vfio", "vfio_virqfd", "vfio_iommu_type1", "vfio_pci") in sim.kernel.commands
    assert sim.host.exists("/sys/module/vfio_pci/initstate")
    rc, out, _ = sim.invoke("modules", "load", "-o", "json")
    assert json.loads(out)["changed"] is False


def test_persist_writes_modules_load_d_once(sim):
    rc, out, err = sim.invoke("modules", "load", "--persist", "-o", "json")
    assert rc == 0, err
    assert sim.host.read_text("/etc/modules-load.d/hostdev-vfio.conf") == (
        HEADER + "vfio\nvfio_virqfd\nvfio_iommu_type1\nvfio_pci\n")
    rc, out, _ = sim.invoke("modules", "load", "--persist", "-o", "json")
    assert json.loads(out)["changed"] is False
    rc, out, _ = sim.invoke("modules", "status", "-o", "json")
    assert all(m["persistent"] for m in json.loads(out)["modules"])


def test_early_softdep_for_the_devices_driver_and_initramfs_only_when_asked(sim):
    rc, out, err = sim.invoke("modules", "load", "--early", sim.t4, "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert sim.host.read_text("/etc/modprobe.d/hostdev-vfio.conf") == HEADER + "softdep nvidia pre: vfio-pci\n"
    assert data["initramfs_command"] == ["update-initramfs", "-u", "-k", "6.1.0-56-amd64"]
    assert not [c for c in sim.kernel.commands if c[0] == "update-initramfs"]
    assert any("update-initramfs -u -k 6.1.0-56-amd64" in n for n in data["notes"])
    rc, out, err = sim.invoke("modules", "load", "--early", sim.a10_audio, "--initramfs", "-o", "json")
    assert rc == 0, err
    assert sim.host.read_text("/etc/modprobe.d/hostdev-vfio.conf") == (
        HEADER + "softdep nvidia pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n")
    assert ("update-initramfs", "-u", "-k", "6.1.0-56-amd64") in sim.kernel.commands


def test_dry_run_changes_nothing(sim):
    rc, out, _ = sim.invoke("modules", "load", "--persist", "--dry-run", "-o", "json")
    data = json.loads(out)
    assert rc == 0 and data["dry_run"] is True and data["changed"] is True
    assert sim.kernel.commands == [] and sim.host.read_text("/etc/modules-load.d/hostdev-vfio.conf") is None


def test_builtin_vfio_pci_gets_no_softdep_and_says_what_works(sim):
    # Ubuntu builds vfio-pci into the kernel: modprobe.d is never read for it
    release = "6.1.0-56-amd64"
    path = f"/lib/modules/{release}/modules.builtin"
    text = sim.host.read_text(path) or ""
    with open(sim.host.path(path), "a") as handle:
        handle.write("kernel/drivers/vfio/pci/vfio-pci.ko\n")
    assert "vfio-pci.ko" not in text
    rc, out, err = sim.invoke("modules", "load", "--early", sim.t4, "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert sim.host.read_text("/etc/modprobe.d/hostdev-vfio.conf") is None
    assert any("built into this kernel" in n and "vfio-pci.ids=" in n for n in data["notes"])


def test_initramfs_generator_is_detected(tmp_path):
    from hostdev.host import Host
    from tests.fakesys.builder import FakeRoot

    fr = FakeRoot(str(tmp_path / "root"))
    host = Host(fr.root)
    assert modules.initramfs_command(host, "6.8.0") is None
    fr.add_tools("mkinitcpio")
    assert modules.initramfs_command(host, "6.8.0") == ["mkinitcpio", "-P"]
    fr.add_tools("dracut")
    assert modules.initramfs_command(host, "5.14.0-362.el9.x86_64") == ["dracut", "-f", "--kver",
                                                                         "5.14.0-362.el9.x86_64"]
    fr.add_tools("update-initramfs")
    assert modules.initramfs_command(host, "6.1.0-56-amd64") == ["update-initramfs", "-u", "-k", "6.1.0-56-amd64"]


# ---- modules unpersist: takes back what load --persist/--early wrote
LOAD_D = "/etc/modules-load.d/hostdev-vfio.conf"
SOFTDEP = "/etc/modprobe.d/hostdev-vfio.conf"
UPDATE_INITRAMFS = ("update-initramfs", "-u", "-k", "6.1.0-56-amd64")  # the scenario's kernel, Debian's tool


def _files(sim):
    return {path: sim.host.read_config(path) for path in (LOAD_D, SOFTDEP)}


def test_unpersist_removes_the_modules_load_file_and_leaves_the_modules_loaded(sim):
    assert sim.invoke("modules", "load", "--persist")[0] == 0
    assert sim.host.read_config(LOAD_D) == HEADER + "vfio\nvfio_virqfd\nvfio_iommu_type1\nvfio_pci\n"
    before = list(sim.kernel.commands)
    rc, out, err = sim.invoke("modules", "unpersist", "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["dry_run"] is False and data["reboot_required"] is False
    assert data["files"] == [LOAD_D]
    assert data["files_changed"] == [{"path": LOAD_D, "change": "remove"}]
    assert not sim.host.exists(LOAD_D)
    # Debian's initramfs-tools never copies modules-load.d: nothing to regenerate, nothing run
    assert sim.kernel.commands == before
    assert sim.host.exists("/sys/module/vfio_pci/initstate")
    rc, out, _ = sim.invoke("modules", "status", "-o", "json")
    assert not any(m["persistent"] for m in json.loads(out)["modules"])
    # a second run: nothing to do
    rc, out, err = sim.invoke("modules", "unpersist", "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["changed"] is False and data["files"] == [] and data["files_changed"] == [] and data["actions"] == []
    rc, out, err = sim.invoke("modules", "unpersist")
    assert rc == 0 and "nothing to undo" in err


def test_unpersist_removes_the_softdep_then_regenerates_the_initramfs(sim):
    assert sim.invoke("modules", "load", "--persist", "--early", sim.t4, "--initramfs")[0] == 0
    assert sim.host.read_config(SOFTDEP) == HEADER + "softdep nvidia pre: vfio-pci\n"
    seen = []

    def update_initramfs(argv):  # what the generator finds when it runs
        seen.append((argv, _files(sim)))
        return CommandResult(argv, 0, "", "")

    sim.kernel.command_handlers["update-initramfs"] = update_initramfs
    rc, out, err = sim.invoke("modules", "unpersist", "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["changed"] is True and data["files"] == [LOAD_D, SOFTDEP]
    assert data["files_changed"] == [{"path": LOAD_D, "change": "remove"}, {"path": SOFTDEP, "change": "remove"}]
    assert data["initramfs_command"] == list(UPDATE_INITRAMFS)
    assert seen == [(UPDATE_INITRAMFS, {LOAD_D: None, SOFTDEP: None})]   # once, after both files went
    assert _files(sim) == {LOAD_D: None, SOFTDEP: None}


def test_unpersist_dry_run_changes_nothing(sim):
    assert sim.invoke("modules", "load", "--persist", "--early", sim.t4)[0] == 0
    files, commands = _files(sim), list(sim.kernel.commands)
    rc, out, err = sim.invoke("modules", "unpersist", "--dry-run", "-o", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["dry_run"] is True and data["changed"] is True
    assert [a["action"] for a in data["actions"]] == [
        f"remove {LOAD_D}", f"remove {SOFTDEP}", "regenerate the initramfs (update-initramfs -u -k 6.1.0-56-amd64)"]
    assert _files(sim) == files and sim.kernel.commands == commands
    rc, out, err = sim.invoke("modules", "unpersist", "--dry-run")
    assert rc == 0 and f"would: remove {SOFTDEP}" in err and _files(sim) == files


def test_unpersist_leaves_files_it_did_not_write(sim):
    # the administrator's own modules-load.d and modprobe.d files, beside hostdev's
    own = {"/etc/modules-load.d/vfio.conf": "vfio-pci\n",
           "/etc/modprobe.d/vfio.conf": "options vfio-pci ids=10de:1eb8\nsoftdep nvidia pre: vfio-pci\n"}
    for path, text in own.items():
        sim.host.write_file(path, text, backup=False)
    assert sim.invoke("modules", "load", "--persist", "--early", sim.t4)[0] == 0
    rc, out, err = sim.invoke("modules", "unpersist", "-o", "json")
    assert rc == 0, err
    assert _files(sim) == {LOAD_D: None, SOFTDEP: None}
    assert {path: sim.host.read_config(path) for path in own} == own


def test_unpersist_refuses_a_file_edited_since_hostdev_wrote_it(sim):
    assert sim.invoke("modules", "load", "--persist", "--early", sim.t4)[0] == 0
    edited = HEADER + "vfio\nvfio_virqfd\nvfio_iommu_type1\nvfio_pci\nkvmgt\n"   # an administrator's line
    sim.host.write_file(LOAD_D, edited, backup=False)
    files, commands = _files(sim), list(sim.kernel.commands)
    rc, out, err = sim.invoke("modules", "unpersist")
    assert rc == 3
    assert err.count("\n") == 1 and LOAD_D in err and "not the text hostdev wrote" in err
    assert _files(sim) == files and sim.kernel.commands == commands  # the softdep, hostdev's own, stays too


def test_unpersist_rolls_back_when_the_initramfs_cannot_be_regenerated(sim):
    assert sim.invoke("modules", "load", "--persist", "--early", sim.t4)[0] == 0
    files = _files(sim)
    sim.kernel.command_handlers["update-initramfs"] = lambda argv: CommandResult(argv, 1, "", "E: no space left")
    rc, out, err = sim.invoke("modules", "unpersist")
    assert rc == 5, err
    assert "rolled back 2 step(s)" in err
    assert _files(sim) == files      # byte for byte, as load wrote them


def test_written_by_hostdev_is_byte_exact():
    ours = modules.written_by_hostdev
    assert ours(LOAD_D, HEADER + "vfio\nvfio_iommu_type1\nvfio_pci\n")          # 6.2+ (no vfio_virqfd)
    assert ours(LOAD_D, HEADER + "vfio\nvfio_virqfd\nvfio_iommu_type1\nvfio_pci\n")
    assert ours(LOAD_D, HEADER + "vfio\nvfio_iommu_type1\n")                     # vfio_pci built in
    assert not ours(LOAD_D, HEADER + "vfio\nvfio_pci\nkvm\n")                    # another module
    assert not ours(LOAD_D, HEADER + "vfio\nvfio_pci  # needed\n")               # a comment
    assert not ours(LOAD_D, HEADER + "vfio\nvfio\n")                             # twice
    assert not ours(LOAD_D, HEADER + "vfio\nvfio_pci")                           # no final newline
    assert not ours(LOAD_D, "vfio\nvfio_pci\n")                                  # no header
    assert ours(SOFTDEP, HEADER + "softdep nvidia pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n")
    assert not ours(SOFTDEP, HEADER + "softdep snd_hda_intel pre: vfio-pci\nsoftdep nvidia pre: vfio-pci\n")
    assert not ours(SOFTDEP, HEADER + "softdep nvidia pre: vfio-pci\noptions vfio-pci ids=10de:1eb8\n")
    assert not ours(SOFTDEP, HEADER + "softdep nvidia pre: vfio-pci vfio_iommu_type1\n")


def test_unpersist_on_dracut_regenerates_for_modules_load_d_too(tmp_path):
    # dracut's systemd-modules-load module copies /etc/modules-load.d/*.conf into the initramfs
    # (initramfs-tools does not): removing hostdev's file there means regenerating it
    from hostdev.host import Host
    from tests.fakesys.builder import FakeRoot

    fr = FakeRoot(str(tmp_path / "root"))
    host = Host(fr.root)
    host.write_file(LOAD_D, HEADER + "vfio\nvfio_iommu_type1\nvfio_pci\n", backup=False)
    assert [a["action"] for a in modules.plan_unpersist(host).plan.describe()] == [f"remove {LOAD_D}"]
    fr.add_tools("dracut")
    assert [a["action"] for a in modules.plan_unpersist(host).plan.describe()] == [
        f"remove {LOAD_D}", "regenerate the initramfs (dracut -f --kver 6.1.0-56-amd64)"]
