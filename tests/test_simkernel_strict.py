"""The simulated kernel is as strict as Linux 6.1 where hostdev's safety depends on it (issue 19):
IOMMU group ownership, viability when a VM opens a group, an open mtty mdev's removal, and no
silent success for programs or attributes it does not model. Each expectation cites the kernel
function it follows; the shapes are the scenarios of tests/fakesys."""

from __future__ import annotations

import errno
import uuid

import pytest

from hostdev.errors import SysfsWriteError
from hostdev.host import CommandResult, Host
from tests.fakesys import scenarios
from tests.fakesys.builder import FakeRoot
from tests.fakesys.simkernel import KernelWouldBlock, SimKernel, UnhandledProgram, UnmodelledWrite


def machine(info):
    kernel = SimKernel(info.root)
    return Host(info.root, kernel=kernel), kernel


def driver(host, addr):
    return host.link_name(f"/sys/bus/pci/devices/{addr}/driver")


def to_vfio(host, addr):
    host.run(["modprobe", "vfio-pci"])
    host.write_attr(f"/sys/bus/pci/devices/{addr}/driver_override", "vfio-pci")
    current = driver(host, addr)
    if current:
        host.write_attr(f"/sys/bus/pci/drivers/{current}/unbind", addr)
    host.write_attr("/sys/bus/pci/drivers_probe", addr)
    assert driver(host, addr) == "vfio-pci"


@pytest.fixture
def guest(tmp_path):
    return scenarios.qemu_test_guest(str(tmp_path / "root"))


BRIDGE, EDU2, E1000 = "0000:00:13.0", "0000:01:01.0", "0000:01:03.0"


def test_a_host_driver_cannot_bind_into_a_group_a_vfio_user_holds(guest):
    """pci_dma_configure → iommu_device_use_default_domain (6.1 drivers/iommu/iommu.c): EBUSY
    while the group has a DMA owner. The guest's bridge group: edu 01:01.0 on vfio-pci and held
    by a VM, e1000 01:03.0 unbound; giving e1000 back to its driver must fail."""
    host, kernel = machine(guest)
    host.write_attr("/sys/bus/pci/drivers/e1000/unbind", E1000)
    to_vfio(host, EDU2)
    kernel.hold(EDU2)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/e1000/bind", E1000)
    assert exc.value.errno == errno.EBUSY
    host.write_attr("/sys/bus/pci/drivers_probe", E1000)  # device_attach: the probe error is swallowed
    assert driver(host, E1000) is None
    kernel.release(EDU2)
    host.write_attr("/sys/bus/pci/drivers/e1000/bind", E1000)
    assert driver(host, E1000) == "e1000"


def test_vfio_pci_may_still_bind_into_a_held_group(guest):
    """vfio-pci sets driver_managed_dma: it takes no ownership count and is not refused."""
    host, kernel = machine(guest)
    host.write_attr("/sys/bus/pci/drivers/e1000/unbind", E1000)
    to_vfio(host, EDU2)
    kernel.hold(EDU2)
    host.write_attr(f"/sys/bus/pci/devices/{E1000}/driver_override", "vfio-pci")
    host.write_attr("/sys/bus/pci/drivers_probe", E1000)
    assert driver(host, E1000) == "vfio-pci"


def test_a_vm_cannot_open_a_group_that_is_not_viable(guest):
    """iommu_group_claim_dma_owner fails with EBUSY while a member is on a kernel driver
    (e1000 in the bridge group); a function not on vfio has no vfio device (ENODEV); no group
    node, no open (ENOENT)."""
    host, kernel = machine(guest)
    with pytest.raises(OSError) as exc:
        kernel.hold(EDU2)          # nothing on vfio yet: /dev/vfio/N does not exist
    assert exc.value.errno == errno.ENOENT
    to_vfio(host, EDU2)
    with pytest.raises(OSError) as exc:
        kernel.hold(EDU2)          # e1000 01:03.0 still on e1000
    assert exc.value.errno == errno.EBUSY and E1000 in str(exc.value)
    assert kernel.held == {}
    with pytest.raises(OSError) as exc:
        kernel.hold(BRIDGE)        # the bridge is in the group but is no vfio device
    assert exc.value.errno in (errno.EBUSY, errno.ENODEV)
    host.write_attr("/sys/bus/pci/drivers/e1000/unbind", E1000)
    kernel.hold(EDU2)              # now viable: the bridge has no driver, e1000 is unbound
    assert kernel.held


def _mtty_mdev(host, kernel, guest):
    assert kernel.run(["modprobe", "-a", "mdev", "vfio_iommu_type1"]).rc == 0
    assert kernel.run(["insmod", guest.extra["mtty_ko"]]).rc == 0
    name = str(uuid.uuid4())
    host.write_attr("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create", name)
    return name


def test_removing_an_open_mtty_mdev_blocks_as_mtty_does(guest):
    """6.1 mtty: remove_store → mdev_device_remove → vfio_unregister_group_dev waits for the last
    close ("blocked until device is released"), it does not return EBUSY."""
    host, kernel = machine(guest)
    name = _mtty_mdev(host, kernel, guest)
    kernel.hold(name)
    with pytest.raises(KernelWouldBlock):
        host.write_attr(f"/sys/bus/mdev/devices/{name}/remove", "1")
    assert host.exists(f"/sys/bus/mdev/devices/{name}")
    kernel.release(name)
    host.write_attr(f"/sys/bus/mdev/devices/{name}/remove", "1")
    assert not host.exists(f"/sys/bus/mdev/devices/{name}")


def test_removing_an_open_nvidia_vgpu_answers_ebusy(tmp_path):
    host, kernel = machine(scenarios.amd_host(str(tmp_path / "root")))
    vgpu = scenarios.EXISTING_VGPU_UUID
    kernel.hold(vgpu)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(f"/sys/bus/mdev/devices/{vgpu}/remove", "1")
    assert exc.value.errno == errno.EBUSY


@pytest.mark.parametrize("program", ["mdevctl", "systemctl", "udevadm"])
def test_a_program_without_a_model_does_not_succeed_silently(tmp_path, program):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    FakeRoot.attach(info.root).add_tools(program)
    host, kernel = machine(info)
    with pytest.raises(UnhandledProgram, match=program):
        kernel.run([program, "list"])
    kernel.command_handlers[program] = lambda argv: CommandResult(tuple(argv), 0, "ok\n", "")
    assert kernel.run([program, "list"]).stdout == "ok\n"


def test_a_program_missing_from_the_root_is_enoent(tmp_path):
    host, kernel = machine(scenarios.intel_host_t4(str(tmp_path / "root")))
    with pytest.raises(FileNotFoundError):
        kernel.run(["mdevctl", "list"])


def test_a_write_to_an_attribute_without_a_model_is_refused(tmp_path):
    """Linux runs the attribute's own store(); storing the text instead would pretend success.
    A read-only attribute is EACCES as kernfs answers (no write bit)."""
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    host, kernel = machine(info)
    fr = FakeRoot.attach(info.root)
    path = f"/sys/bus/pci/devices/{info.t4}/power/control"
    fr.write(path, "on\n", 0o644)
    with pytest.raises(UnmodelledWrite, match="power/control"):
        kernel.write(path, "auto")
    assert fr.read(path) == "on\n"
    with pytest.raises(OSError) as exc:
        kernel.write(f"/sys/bus/pci/devices/{info.t4}/vendor", "0x10de")
    assert exc.value.errno == errno.EACCES


def test_without_devtmpfs_the_vfio_node_never_appears(tmp_path):
    info = scenarios.intel_host_t4(str(tmp_path / "root"))
    host, kernel = machine(info)
    kernel.create_dev_nodes = False
    to_vfio(host, info.t4)
    assert not host.exists(f"/dev/vfio/{info.groups['t4']}")
