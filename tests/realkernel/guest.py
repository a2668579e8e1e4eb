"""Helpers for code that runs INSIDE the throwaway QEMU guest (fixtures and realkernel tests).

Everything that changes the machine (modprobe, insmod, sysfs writes, libvirtd) first calls
``require_guest()``, which refuses unless the kernel command line carries ``hostdev.testguest=1``:
those operations must never run on the developer's or CI's own host.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import pytest

from hostdev.host import in_test_guest

from .vm import CACHE_DIR, GUEST_SETUP, GUEST_TOKEN, MDEV_SAMPLES

PCI_DEVICES = Path("/sys/bus/pci/devices")
PCI_DRIVERS = Path("/sys/bus/pci/drivers")

# Fixed addresses of the emulated devices (tests/realkernel/vm.py DEVICES)
EDU = "0000:00:10.0"          # 1234:11e8, no driver
E1000E = "0000:00:11.0"       # 8086:10d3, e1000e
PCI_TESTDEV = "0000:00:12.0"  # 1b36:0005, no driver
BRIDGE = "0000:00:13.0"       # pcie-pci-bridge; 01:01.0 and 01:03.0 sit behind it, one IOMMU group
BRIDGED_EDU = "0000:01:01.0"
BRIDGED_E1000 = "0000:01:03.0"  # 8086:100e, e1000
VIRTIO_NET = "0000:00:14.0"   # 1af4:1041, virtio-pci (virtio_net is not loaded by coldplug)
# Only with a QEMU that has igb (>= 8.0, vm.SRIOV_DEVICES): the root port and the SR-IOV PF behind it
ROOT_PORT = "0000:00:1c.0"    # 1b36:000c pcie-root-port, pcieport, ACS
IGB_PF = "0000:02:00.0"       # 8086:10c9 82576, igb, sriov_totalvfs 7, VFs 8086:10ca at 02:10.0, 02:10.2, ...

REQUIRE_ENV = "HOSTDEV_REQUIRE_REALKERNEL"
MDEV_DIR_ENV = "HOSTDEV_MDEV_DIR"
MDEV_ERROR_ENV = "HOSTDEV_MDEV_BUILD_ERROR"


def require_guest(what: str = "this") -> None:
    """Fail (never skip) when called outside the guest: a guest-only step must not touch the host."""
    if not in_test_guest():
        pytest.fail(f"{what} runs only inside the QEMU test guest ({GUEST_TOKEN} is not on the kernel "
                    "command line); mark the test @pytest.mark.realkernel and run it through the "
                    "tests.realkernel.plugin proxy", pytrace=False)


def realkernel_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when HOSTDEV_REQUIRE_REALKERNEL=1 (CI: nothing may skip)."""
    if realkernel_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the guest; on failure raise with its output (argv list, no shell)."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with rc {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr).strip()}")
    return proc


def modprobe(*modules: str) -> None:
    require_guest("modprobe")
    run(["modprobe", "-a", *modules])


def module_loaded(name: str) -> bool:
    return Path("/sys/module", name.replace("-", "_")).is_dir()


def insmod(path: Path) -> None:
    require_guest("insmod")
    run(["insmod", str(path)])


# libvirtd's start until its socket exists: about 20 s idle, in units of the guest's measured speed
LIBVIRTD_START_UNITS = 50.0


def guest_setup(step: str) -> None:
    """Run one step of guest_setup.sh (coldplug, libvirtd-start, libvirtd-stop)."""
    require_guest(f"guest_setup.sh {step}")
    args = []
    if step == "libvirtd-start":
        from . import speed
        args.append(f"{speed.allowance(LIBVIRTD_START_UNITS):.0f}")
    run(["/bin/sh", str(GUEST_SETUP), step, *args])


def mdev_module_dir() -> Path:
    """Where the host put the sample mdev modules built for the running kernel."""
    env = os.environ.get(MDEV_DIR_ENV)
    if env:
        return Path(env)
    return CACHE_DIR / f"mdev-{os.uname().release}"


def mdev_modules() -> list:
    return [mdev_module_dir() / f"{name}.ko" for name in MDEV_SAMPLES]


# ---------------------------------------------------------------------------------------- sysfs
def driver_of(bdf: str) -> Optional[str]:
    link = PCI_DEVICES / bdf / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def iommu_group_of(bdf: str) -> str:
    return os.path.basename(os.readlink(PCI_DEVICES / bdf / "iommu_group"))


def group_members(group: str) -> list:
    return sorted(os.listdir(f"/sys/kernel/iommu_groups/{group}/devices"))


def write_sysfs(path: Path, value: str) -> None:
    """One write to a sysfs attribute, inside the guest only."""
    require_guest(f"writing {path}")
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def bind_override(bdf: str, driver: Optional[str]) -> None:
    """Bind ``bdf`` to ``driver`` (None: back to the default match) via driver_override + drivers_probe."""
    current = driver_of(bdf)
    write_sysfs(PCI_DEVICES / bdf / "driver_override", driver if driver else "\n")
    if current is not None and current != driver:
        write_sysfs(PCI_DRIVERS / current / "unbind", bdf)
    if driver_of(bdf) is None:
        write_sysfs(Path("/sys/bus/pci/drivers_probe"), bdf)
