"""The boot configuration and the vfio modules on real tools and a real kernel.

* ``hostdev iommu enable``/``disable`` run Debian's real update-grub → grub-mkconfig inside the
  QEMU guest (its /etc and /boot are throwaway overlays): the generated grub.cfg's ``linux``
  lines carry the arguments, then no longer do. Only grub-probe is replaced (tests/realkernel/
  guest/grub-probe): the guest's root is a 9p share without a block device.
* ``modules load`` runs the real modprobe: vfio_virqfd exists as a module in Debian's 6.1 kernel.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev import kernel, modules
from hostdev.host import Host

SHIM = Path(__file__).resolve().parents[1] / "realkernel" / "guest" / "grub-probe"
DEBIAN_GRUB = ('GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n'
               'GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n'
               'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0"\n')


def hostdev(*args):
    return subprocess.run([sys.executable, "-m", "hostdev", *args], capture_output=True, text=True,
                          env=dict(os.environ, HOSTDEV_ROOT="/"))


def linux_lines(path="/boot/grub/grub.cfg"):
    return [line.split() for line in Path(path).read_text().splitlines() if line.strip().startswith("linux")]


@pytest.fixture
def real_grub():
    from tests.realkernel import guest

    guest.require_guest("real_grub")
    if not Path("/usr/sbin/grub-mkconfig").exists():
        pytest.fail("grub-mkconfig is not installed (scripts/apt-test-packages.txt has grub2-common)")
    subprocess.run(["mount", "--bind", str(SHIM), "/usr/sbin/grub-probe"], check=True)
    Path("/etc/default/grub").write_text(DEBIAN_GRUB)
    Path("/boot/grub").mkdir(exist_ok=True)  # grub-install made it on a real host
    try:
        yield
    finally:
        subprocess.run(["umount", "/usr/sbin/grub-probe"], check=False)
        for path in ("/etc/default/grub", "/etc/default/grub.d/hostdev.cfg", "/var/lib/hostdev/boot-args.json"):
            if os.path.exists(path):
                os.unlink(path)


@pytest.mark.realkernel
def test_enable_and_disable_with_the_real_grub_mkconfig(real_grub):
    assert not Path("/boot/grub/grub.cfg").exists()
    enabled = hostdev("iommu", "enable", "--passthrough", "--arg", "hostdev.smoke=1", "-o", "json")
    assert enabled.returncode == 0, enabled.stderr
    out = json.loads(enabled.stdout)
    assert out["changed"] is True and out["stack"] == "grub" and out["files"] == ["/etc/default/grub.d/hostdev.cfg"]
    assert "iommu=pt" in out["added"] and "hostdev.smoke=1" in out["added"]
    lines = linux_lines()
    # every kernel entry (normal and recovery) carries what was added, after the administrator's own
    for line in lines:
        for arg in out["added"]:
            assert arg in line, line
        assert line.index("console=ttyS0") < line.index("iommu=pt")
    assert Path("/etc/default/grub").read_text() == DEBIAN_GRUB

    again = json.loads(hostdev("iommu", "enable", "--passthrough", "--arg", "hostdev.smoke=1", "-o", "json").stdout)
    assert again["changed"] is False

    disabled = hostdev("iommu", "disable", "-o", "json")
    assert disabled.returncode == 0, disabled.stderr
    assert not os.path.exists("/etc/default/grub.d/hostdev.cfg")
    assert linux_lines() and not any("iommu=pt" in line or "hostdev.smoke=1" in line for line in linux_lines())


@pytest.mark.realkernel
def test_modules_load_with_the_real_modprobe(guest_vfio):
    from tests.realkernel import guest

    host = Host("/")
    guest.run(["modprobe", "-r", "vfio_pci"])
    assert kernel.module_state(host, "vfio_pci") == kernel.AVAILABLE
    # Debian's 6.1 still has vfio_virqfd as a module of its own (merged into vfio in 6.2)
    assert modules.vfio_modules(kernel.kernel_release(host))[1] == "vfio_virqfd"
    loaded = hostdev("modules", "load", "-o", "json")
    assert loaded.returncode == 0, loaded.stderr
    assert "vfio_pci" in json.loads(loaded.stdout)["load"]
    status = {m["name"]: m["state"] for m in json.loads(hostdev("modules", "status", "-o", "json").stdout)["modules"]}
    assert status == {"vfio": "loaded", "vfio_virqfd": "loaded", "vfio_iommu_type1": "loaded", "vfio_pci": "loaded"}
    assert json.loads(hostdev("modules", "load", "-o", "json").stdout)["changed"] is False
