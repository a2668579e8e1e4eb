"""hostdev modules status / load on the Intel host scenario (kernel 6.1: vfio_virqfd still exists)
and a 6.8 cloud VM (it does not). The real modprobe runs in tests/behaviour/test_boot_real.py."""
import json

from hostdev import modules

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
