"""``machine``: the same behaviour test against two kernels.

* ``sim``  — a fake root mirroring the QEMU test guest, with the simulated kernel (every run);
* ``real`` — the real Linux kernel inside the QEMU guest (mark ``realkernel``; the plugin in
  tests/realkernel runs these inside the guest and reports them here).

After each real test the guest's devices are put back as they were booted, whatever the test
did, so tests do not depend on each other's order.
"""
import contextlib
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest

from hostdev.host import Host
from tests.fakesys import scenarios
from tests.fakesys.simkernel import SimKernel

# The guest's devices and the driver each has after boot (coldplug): the baseline we restore.
BASELINE = {"0000:00:10.0": None, "0000:00:11.0": "e1000e", "0000:00:12.0": None,
            "0000:01:01.0": None, "0000:01:03.0": "e1000"}


@dataclass
class Machine:
    host: Host
    real: bool
    unload_vfio_pci: Callable[[], None]
    load_mdev_samples: Callable[[], None]
    hold_vfio_group: Callable[[int], "contextlib.AbstractContextManager"]
    kernel: Optional[SimKernel] = None
    extra: dict = field(default_factory=dict)


def _sim_machine(tmp_path) -> Machine:
    info = scenarios.qemu_test_guest(str(tmp_path / "root"))
    kernel = SimKernel(info.root)
    host = Host(info.root, kernel=kernel)

    def unload():
        kernel.run(["modprobe", "-r", "vfio_pci"])

    def load_mdev():
        if not host.exists("/sys/class/mdev_bus/mtty"):
            # as the real fixture: the mdev core first, or insmod fails with "Unknown symbol"
            assert kernel.run(["modprobe", "-a", "mdev", "vfio_iommu_type1"]).rc == 0
            result = kernel.run(["insmod", info.extra["mtty_ko"]])
            assert result.rc == 0, result.stderr

    @contextlib.contextmanager
    def hold(group: int):
        member = host.listdir(f"/sys/kernel/iommu_groups/{group}/devices")[0]
        kernel.hold(member)
        try:
            yield
        finally:
            kernel.release(member)

    return Machine(host, False, unload, load_mdev, hold, kernel)


def _real_machine(request) -> Machine:
    from tests.realkernel import guest

    guest.require_guest("the real machine fixture")
    host = Host("/")

    def unload():
        guest.run(["modprobe", "-r", "vfio_pci"])

    def load_mdev():
        request.getfixturevalue("mdev_samples")

    @contextlib.contextmanager
    def hold(group: int):
        fd = os.open(f"/dev/vfio/{group}", os.O_RDWR)
        try:
            yield
        finally:
            os.close(fd)

    return Machine(host, True, unload, load_mdev, hold)


def _reset_real_guest(host: Host) -> None:
    """Put the guest back as booted: remove mdevs, rebind the baseline drivers, drop the journal."""
    for uuid in host.listdir("/sys/bus/mdev/devices"):
        host.write_attr(f"/sys/bus/mdev/devices/{uuid}/remove", "1")
    for address, wanted in BASELINE.items():
        base = f"/sys/bus/pci/devices/{address}"
        current = host.link_name(f"{base}/driver")
        override = host.read_attr(f"{base}/driver_override")
        if current == wanted and override in (None, "(null)"):
            continue
        if current:
            host.write_attr(f"/sys/bus/pci/drivers/{current}/unbind", address)
        host.write_attr(f"{base}/driver_override", "\n")
        if wanted:
            host.write_attr(f"/sys/bus/pci/drivers/{wanted}/bind", address)
    for path in ["/var/lib/hostdev/bindings.json", "/etc/udev/rules.d/60-hostdev.rules",
                 "/etc/systemd/system/hostdev-bindings.service",
                 "/etc/systemd/system/multi-user.target.wants/hostdev-bindings.service"] + \
            [f"/etc/hostdev/bindings.d/{n}" for n in host.listdir("/etc/hostdev/bindings.d")]:
        if host.exists(path) or host.readlink(path):
            host.remove_file(path)


@pytest.fixture(params=["sim", pytest.param("real", marks=pytest.mark.realkernel)])
def machine(request, tmp_path):
    if request.param == "sim":
        yield _sim_machine(tmp_path)
        return
    real = _real_machine(request)
    _reset_real_guest(real.host)
    try:
        yield real
    finally:
        _reset_real_guest(real.host)
