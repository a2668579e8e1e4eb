"""The fake trees have the kernel's shape, and SimKernel applies writes as Linux 6.1 does.

Everything goes through hostdev.host.Host, as the product code does.
"""

from __future__ import annotations

import errno
import os

import pytest

from hostdev import kernel as hkernel
from hostdev import pci
from hostdev.errors import CommandError, SysfsWriteError
from hostdev.host import Host
from tests.fakesys import (
    FakeRoot,
    KernelWouldBlock,
    SimKernel,
    SimulatedDisaster,
    amd_host,
    intel_host_t4,
    qemu_test_guest,
    vm_guest_no_iommu,
)
from tests.fakesys.builder import pcie_type_of

SCENARIOS = [intel_host_t4, amd_host, vm_guest_no_iommu, qemu_test_guest]
UUID1 = "0c6b6d4b-63a0-4f5e-9c1c-0a4c2d5e6f70"
UUID2 = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"


def sim(info):
    kernel = SimKernel(info.root)
    return Host(info.root, kernel=kernel), kernel


def drv(host, addr):
    return host.link_name(f"/sys/bus/pci/devices/{addr}/driver")


def errno_of(excinfo):
    return excinfo.value.errno


# ============================================================ shape
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_every_link_is_relative_and_resolves_inside_the_root(tmp_path, scenario):
    info = scenario(str(tmp_path / "root"))
    root = os.path.realpath(info.root)
    links = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            links += 1
            target = os.readlink(path)
            assert not target.startswith("/"), f"absolute link {path} -> {target}"
            real = os.path.realpath(path)
            assert real.startswith(root + "/"), f"{path} -> {target} leaves the root"
            assert os.path.exists(real), f"dangling {path} -> {target}"
    assert links > 20


def test_intel_devices_nest_under_their_bridges_with_kernel_link_depths(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host = Host(info.root)
    assert host.readlink(f"/sys/bus/pci/devices/{info.t4}") == "../../../devices/pci0000:64/0000:64:02.0/0000:65:00.0"
    assert host.resolve(f"/sys/bus/pci/devices/{info.t4}") == "/sys/devices/pci0000:64/0000:64:02.0/0000:65:00.0"
    assert host.readlink(f"/sys/bus/pci/devices/{info.t4}/driver") == "../../../../bus/pci/drivers/nvidia"
    assert host.readlink(f"/sys/bus/pci/devices/{info.t4}/iommu_group") == "../../../../kernel/iommu_groups/12"
    assert host.readlink(f"/sys/bus/pci/devices/{info.t4}/subsystem") == "../../../../bus/pci"
    # a root-complex integrated endpoint sits directly on its root bus: one level less
    assert host.readlink(f"/sys/bus/pci/devices/{info.qat}/driver") == "../../../bus/pci/drivers/4xxx"
    assert host.readlink(f"/sys/bus/pci/drivers/nvidia/{info.t4}") == \
        "../../../../devices/pci0000:64/0000:64:02.0/0000:65:00.0"
    assert host.readlink("/sys/bus/pci/drivers/nvidia/module") == "../../../../module/nvidia"
    assert host.readlink(f"/sys/kernel/iommu_groups/12/devices/{info.t4}") == \
        "../../../../devices/pci0000:64/0000:64:02.0/0000:65:00.0"
    assert host.readlink(f"/sys/bus/pci/devices/{info.t4}/iommu") == "../../../virtual/iommu/dmar0"


def test_t4_attributes_are_what_the_kernel_prints(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host = Host(info.root)
    base = f"/sys/bus/pci/devices/{info.t4}"
    assert host.read_text(f"{base}/vendor") == "0x10de\n"
    assert host.read_text(f"{base}/device") == "0x1eb8\n"
    assert host.read_text(f"{base}/subsystem_device") == "0x12a2\n"
    assert host.read_text(f"{base}/class") == "0x030200\n"
    assert host.read_text(f"{base}/driver_override") == "(null)\n"
    assert host.read_text(f"{base}/numa_node") == "1\n"
    assert not host.exists(f"{base}/boot_vga")  # only VGA-class functions have it
    assert host.read_attr(f"/sys/bus/pci/devices/{info.boot_vga}/boot_vga") == "1"
    assert host.read_attr(f"/sys/bus/pci/devices/{info.a10}/boot_vga") == "0"
    assert host.read_text(f"{base}/uevent") == (
        "DRIVER=nvidia\nPCI_CLASS=30200\nPCI_ID=10DE:1EB8\nPCI_SUBSYS_ID=10DE:12A2\n"
        "PCI_SLOT_NAME=0000:65:00.0\nMODALIAS=pci:v000010DEd00001EB8sv000010DEsd000012A2bc03sc02i00\n")
    assert host.read_attr(f"{base}/modalias") == "pci:v000010DEd00001EB8sv000010DEsd000012A2bc03sc02i00"
    config = host.read_bytes(f"{base}/config")
    assert len(config) == 256
    assert config[0:4] == bytes([0xDE, 0x10, 0xB8, 0x1E])
    assert config[9:12] == bytes([0x00, 0x02, 0x03])
    assert config[0x2C:0x30] == bytes([0xDE, 0x10, 0xA2, 0x12])
    assert pcie_type_of(config) == 0
    for attr in ("reset", "remove", "reset_method"):
        assert host.exists(f"{base}/{attr}")


def test_hostdev_reads_the_intel_host(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host = Host(info.root)
    t4 = pci.read_device(host, info.t4)
    assert (t4.vendor_id, t4.device_id, t4.class_id, t4.driver, t4.iommu_group, t4.numa_node) == \
        ("10de", "1eb8", "030200", "nvidia", 12, 1)
    assert t4.driver_override is None
    groups = {g.id: g.devices for g in pci.iommu_groups(host)}
    assert groups[8] == ("0000:17:00.0", "0000:17:00.1")
    assert len(groups) == 16 and all(len(m) == 1 for gid, m in groups.items() if gid != 8)
    pf = pci.read_device(host, info.nic_pf)
    assert (pf.sriov.role, pf.sriov.total_vfs, pf.sriov.num_vfs) == ("pf", 8, 2)
    vf = pci.read_device(host, info.nic_vf0)
    assert (vf.sriov.role, vf.sriov.physfn, vf.driver, vf.device_id) == ("vf", info.nic_pf, "iavf", "1889")
    assert host.readlink(f"/sys/bus/pci/devices/{info.nic_pf}/virtfn1") == "../0000:31:01.1"
    assert host.readlink(f"/sys/bus/pci/devices/{info.nic_vf1}/physfn") == "../0000:31:00.0"
    facts = hkernel.read_iommu_facts(host)
    assert (facts.acpi_table, facts.units, facts.interrupt_remapping) == ("DMAR", ("dmar0",), True)
    assert hkernel.module_state(host, "vfio-pci") == hkernel.AVAILABLE
    assert hkernel.module_state(host, "nvidia") == hkernel.LOADED
    assert hkernel.read_cpuinfo(host).virtualization == "vmx"
    assert "intel_iommu=on" in hkernel.read_cmdline(host)
    assert 'GRUB_CMDLINE_LINUX="intel_iommu=on"' in host.read_text("/etc/default/grub")
    assert host.resolve("/sys/class/net/eth0/device") == host.resolve(f"/sys/bus/pci/devices/{info.nic_pf}")
    assert "eth0\t00000000" in host.read_text("/proc/net/route")
    assert "/dev/nvme0n1p2 / ext4" in host.read_text("/proc/mounts")
    assert host.resolve("/sys/block/nvme0n1").startswith(host.resolve(f"/sys/bus/pci/devices/{info.nvme_root}"))


def test_qemu_guest_mirrors_the_vmlab_guest(tmp_path):
    info = qemu_test_guest(str(tmp_path))
    host = Host(info.root)
    devices = {d.address: d for d in pci.list_devices(host)}
    assert sorted(devices) == ["0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:10.0", "0000:00:11.0",
                               "0000:00:12.0", "0000:00:13.0", "0000:00:14.0", "0000:00:1c.0", "0000:00:1e.0",
                               "0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3", "0000:01:01.0", "0000:01:03.0",
                               "0000:02:00.0"]
    assert devices[info.edu].pci_id == "1234:11e8" and devices[info.edu].driver is None
    assert devices[info.e1000e].pci_id == "8086:10d3" and devices[info.e1000e].driver == "e1000e"
    assert devices[info.testdev].pci_id == "1b36:0005" and devices[info.testdev].driver is None
    assert devices[info.bridge].pci_id == "1b36:000e" and devices[info.bridge].driver is None
    assert devices[info.e1000].pci_id == "8086:100e" and devices[info.e1000].driver == "e1000"
    assert devices[info.host_bridge].pci_id == "8086:29c0"
    groups = {g.id: g.devices for g in pci.iommu_groups(host)}
    assert groups[6] == ("0000:00:13.0", "0000:01:01.0", "0000:01:03.0")
    assert groups[7] == ("0000:00:14.0",)
    assert groups[8] == ("0000:00:1c.0",)                      # the SR-IOV PF's root port (QEMU >= 8.0)
    assert groups[9] == ("0000:00:1e.0",)
    assert groups[10] == ("0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3")
    assert groups[11] == ("0000:02:00.0",)
    pf = devices["0000:02:00.0"]
    assert (pf.pci_id, pf.driver, pf.sriov.role, pf.sriov.total_vfs) == ("8086:10c9", "igb", "pf", 7)
    assert host.resolve("/sys/bus/pci/devices/0000:02:00.0") == "/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0"
    assert host.resolve(f"/sys/bus/pci/devices/{info.edu2}") == "/sys/devices/pci0000:00/0000:00:13.0/0000:01:01.0"
    index = hkernel.read_module_index(host)
    assert index.release == "6.1.0-56-amd64"
    for name in ("vfio", "vfio_iommu_type1", "vfio_pci_core", "vfio_pci", "vfio_virqfd", "mdev"):
        assert hkernel.module_state(host, name, index) == hkernel.AVAILABLE
    assert "kernel/drivers/vfio/pci/vfio-pci.ko:" in host.read_text("/lib/modules/6.1.0-56-amd64/modules.dep")
    assert not host.exists("/sys/bus/pci/drivers/vfio-pci") and not host.exists("/dev/vfio")
    assert host.read_attr("/proc/cmdline") == \
        "console=ttyS0 quiet loglevel=1 panic=-1 intel_iommu=on hostdev.testguest=1"
    # the real guest's listing (vendor:device, group, driver) as its console showed it
    real = {"0000:00:00.0": ("8086:29c0", 0, None), "0000:00:01.0": ("1af4:1009", 1, "virtio-pci"),
            "0000:00:02.0": ("1af4:1009", 2, "virtio-pci"), "0000:00:10.0": ("1234:11e8", 3, None),
            "0000:00:11.0": ("8086:10d3", 4, "e1000e"), "0000:00:12.0": ("1b36:0005", 5, None),
            "0000:00:13.0": ("1b36:000e", 6, None), "0000:00:1f.0": ("8086:2918", 10, "lpc_ich"),
            "0000:00:1f.2": ("8086:2922", 10, "ahci"), "0000:00:1f.3": ("8086:2930", 10, "i801_smbus"),
            # added later (the route interlock tests); group checked by tests/behaviour/test_in_use_real.py
            "0000:00:14.0": ("1af4:1041", 7, "virtio-pci"),
            # added later (vm test's BAR check, tests/behaviour/test_vm_bars_real.py): ivshmem-plain;
            # its group in bus order (a real run before virtio-net existed gave it 7, ICH9 8)
            "0000:00:1e.0": ("1af4:1110", 9, None),
            # added later (the SR-IOV tests, QEMU >= 8.0): the root port takes 8 in bus order, before
            # ivshmem and ICH9; the igb PF behind it 11 (the guest's console: "Adding to iommu group")
            "0000:00:1c.0": ("1b36:000c", 8, "pcieport"), "0000:02:00.0": ("8086:10c9", 11, "igb"),
            "0000:01:01.0": ("1234:11e8", 6, None), "0000:01:03.0": ("8086:100e", 6, "e1000")}
    assert {a: (d.pci_id, d.iommu_group, d.driver) for a, d in devices.items()} == real
    assert hkernel.read_cpuinfo(host).is_guest


def test_cloud_guest_has_no_iommu(tmp_path):
    info = vm_guest_no_iommu(str(tmp_path))
    host = Host(info.root)
    facts = hkernel.read_iommu_facts(host)
    assert (facts.acpi_table, facts.units, facts.active, facts.interrupt_remapping) == (None, (), False, False)
    assert hkernel.read_cpuinfo(host).is_guest and hkernel.read_cpuinfo(host).virtualization is None
    assert all(d.iommu_group is None for d in pci.list_devices(host))
    assert pci.read_device(host, info.virtio_net).pci_id == "1af4:1041"


def test_amd_host_has_ivhd_on_its_pci_function_and_a_vgpu(tmp_path):
    info = amd_host(str(tmp_path))
    host = Host(info.root)
    assert host.resolve("/sys/class/iommu/ivhd0") == "/sys/devices/pci0000:00/0000:00:00.2/iommu/ivhd0"
    assert host.exists("/sys/firmware/acpi/tables/IVRS") and not host.exists("/sys/firmware/acpi/tables/DMAR")
    assert "amd_iommu" not in host.read_attr("/proc/cmdline")
    assert hkernel.read_cpuinfo(host).virtualization == "svm"
    t4 = pci.read_device(host, info.t4)
    assert t4.mdev_parent
    types = f"/sys/bus/pci/devices/{info.t4}/mdev_supported_types"
    assert host.listdir(types) == ["nvidia-222", "nvidia-223", "nvidia-226"]
    assert host.read_attr(f"{types}/nvidia-223/name") == "GRID T4-2B"
    assert [host.read_attr(f"{types}/{t}/available_instances") for t in host.listdir(types)] == ["15", "0", "0"]
    uuid = info.mdevs["existing"]
    assert host.resolve(f"/sys/bus/mdev/devices/{uuid}") == f"{host.resolve('/sys/bus/pci/devices/' + info.t4)}/{uuid}"
    assert host.readlink(f"/sys/bus/mdev/devices/{uuid}/mdev_type") == "../mdev_supported_types/nvidia-222"
    assert host.link_name(f"/sys/bus/mdev/devices/{uuid}/driver") == "nvidia-vgpu-vfio"
    assert host.link_name(f"/sys/bus/mdev/devices/{uuid}/iommu_group") == "8"
    assert host.listdir("/sys/kernel/iommu_groups/8/devices") == [uuid]
    assert host.listdir(f"{types}/nvidia-222/devices") == [uuid]
    assert host.resolve(f"/sys/class/mdev_bus/{info.t4}") == host.resolve(f"/sys/bus/pci/devices/{info.t4}")
    assert host.read_text(f"/sys/bus/mdev/devices/{uuid}/uevent") == "DRIVER=nvidia-vgpu-vfio\nMDEV_TYPE=nvidia-222\n"


def test_builder_supports_a_type_without_name_and_nvidia_vf_vgpu(tmp_path):
    fr = FakeRoot(str(tmp_path))
    fr.add_pci("0000:00:02.0", 0x8086, 0x3E92, 0x030000, boot_vga=True, iommu_group=0, driver="i915")
    fr.add_mdev_parent(fr.device_path("0000:00:02.0"),
                       [{"id": "i915-GVTg_V5_4", "name": None, "available": 2,
                         "description": "low_gm_size: 128MB\nhigh_gm_size: 512MB\n"}], class_name="i915")
    host = Host(fr.root)
    t = "/sys/bus/pci/devices/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4"
    assert host.read_attr(f"{t}/name") is None and host.read_attr(f"{t}/available_instances") == "2"
    fr.add_pci("0000:00:03.0", 0x10DE, 0x2236, 0x030200, sriov_totalvfs=4, sriov_vf_device=0x2236,
               sriov_offset=4, iommu_group=1, driver="nvidia")
    vf = fr.set_numvfs("0000:00:03.0", 1)[0]
    fr.add_nvidia_vgpu_vf(vf, [(558, "NVIDIA A10-1B"), (559, "NVIDIA A10-2B")])
    text = host.read_text(f"/sys/bus/pci/devices/{vf}/nvidia/creatable_vgpu_types")
    assert "558   : NVIDIA A10-1B" in text
    assert host.read_attr(f"/sys/bus/pci/devices/{vf}/nvidia/current_vgpu_type") == "0"


# ============================================================ driver_override, bind, unbind, probe
def test_driver_override_set_strip_and_clear(tmp_path):
    host, kernel = sim(intel_host_t4(str(tmp_path)))
    attr = "/sys/bus/pci/devices/0000:65:00.0/driver_override"
    host.write_attr(attr, "vfio-pci\n")
    assert host.read_text(attr) == "vfio-pci\n"
    host.write_attr(attr, "\n")
    assert host.read_text(attr) == "(null)\n"
    host.write_attr(attr, "vfio-pci")
    host.write_attr(attr, "")
    assert host.read_text(attr) == "(null)\n"
    assert kernel.writes[0] == (attr, "vfio-pci\n")
    assert len(kernel.writes) == 4


def test_unbind_wrong_driver_is_enodev_and_right_driver_unbinds(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, _ = sim(info)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/snd_hda_intel/unbind", info.t4)
    assert errno_of(exc) == errno.ENODEV
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/nvidia/unbind", "0000:99:00.0")
    assert errno_of(exc) == errno.ENODEV
    host.write_attr("/sys/bus/pci/drivers/nvidia/unbind", info.t4 + "\n")
    assert drv(host, info.t4) is None
    assert not host.exists(f"/sys/bus/pci/drivers/nvidia/{info.t4}")
    assert "DRIVER=" not in host.read_text(f"/sys/bus/pci/devices/{info.t4}/uevent")
    assert host.exists(f"/sys/bus/pci/drivers/nvidia/{info.a10}")  # the other GPU stays


def test_bind_rules(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, _ = sim(info)
    host.run(["modprobe", "vfio-pci"])
    # bound: EBUSY (even to its own driver)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/nvidia/bind", info.t4)
    assert errno_of(exc) == errno.EBUSY
    host.write_attr("/sys/bus/pci/drivers/nvidia/unbind", info.t4)
    # vfio-pci matches only through driver_override or a dynamic id
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", info.t4)
    assert errno_of(exc) == errno.ENODEV
    # an override naming another driver blocks every other driver
    host.write_attr(f"/sys/bus/pci/devices/{info.t4}/driver_override", "vfio-pci")
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/nvidia/bind", info.t4)
    assert errno_of(exc) == errno.ENODEV
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", info.t4)
    assert drv(host, info.t4) == "vfio-pci"
    assert host.exists("/dev/vfio/12") and host.exists("/dev/vfio/vfio")


def test_drivers_probe_follows_override_and_restores(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, kernel = sim(info)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers_probe", "0000:99:00.0")
    assert errno_of(exc) == errno.ENODEV
    dev = f"/sys/bus/pci/devices/{info.t4}"
    host.write_attr(f"{dev}/driver_override", "vfio-pci")
    host.write_attr("/sys/bus/pci/drivers/nvidia/unbind", info.t4)
    # vfio-pci is not loaded: nothing binds, and it is not an error
    host.write_attr("/sys/bus/pci/drivers_probe", info.t4)
    assert drv(host, info.t4) is None
    host.run(["modprobe", "vfio-pci"])  # registering the driver attaches it to the waiting device
    assert drv(host, info.t4) == "vfio-pci"
    assert host.exists("/dev/vfio/12")
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", info.t4)
    assert not host.exists("/dev/vfio/12")
    host.write_attr(f"{dev}/driver_override", "\n")
    host.write_attr("/sys/bus/pci/drivers_probe", info.t4)
    assert drv(host, info.t4) == "nvidia"
    # probing a bound device changes nothing
    host.write_attr("/sys/bus/pci/drivers_probe", info.t4)
    assert drv(host, info.t4) == "nvidia"
    assert [w[0].rsplit("/", 1)[1] for w in kernel.writes][-3:] == ["driver_override", "drivers_probe", "drivers_probe"]


def test_vfio_dev_node_stays_while_a_group_member_is_on_vfio(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, _ = sim(info)
    host.run(["modprobe", "vfio-pci"])
    for addr, driver in ((info.a10, "nvidia"), (info.a10_audio, "snd_hda_intel")):
        host.write_attr(f"/sys/bus/pci/devices/{addr}/driver_override", "vfio-pci")
        host.write_attr(f"/sys/bus/pci/drivers/{driver}/unbind", addr)
        host.write_attr("/sys/bus/pci/drivers_probe", addr)
    assert host.listdir("/sys/bus/pci/drivers/vfio-pci") == sorted(
        ["0000:17:00.0", "0000:17:00.1", "bind", "module", "new_id", "remove_id", "uevent", "unbind"])
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", info.a10)
    assert host.exists("/dev/vfio/8")
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", info.a10_audio)
    assert not host.exists("/dev/vfio/8")


def test_vfio_probe_refusals(tmp_path):
    info = intel_host_t4(str(tmp_path / "intel"))
    host, _ = sim(info)
    host.run(["modprobe", "vfio-pci"])
    # a bridge: vfio_pci_core_register_device refuses non-normal headers with EINVAL
    port = info.t4_root_port
    host.write_attr(f"/sys/bus/pci/devices/{port}/driver_override", "vfio-pci")
    host.write_attr("/sys/bus/pci/drivers/pcieport/unbind", port)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", port)
    assert errno_of(exc) == errno.EINVAL
    host.write_attr("/sys/bus/pci/drivers_probe", port)  # a probe error is not a drivers_probe error
    assert drv(host, port) is None
    # a PF with VFs enabled: EBUSY
    pf = info.nic_pf
    host.write_attr(f"/sys/bus/pci/devices/{pf}/driver_override", "vfio-pci")
    host.write_attr("/sys/bus/pci/drivers/ice/unbind", pf)  # ice's remove() also disables SR-IOV
    assert host.read_attr(f"/sys/bus/pci/devices/{pf}/sriov_numvfs") == "0"
    assert not host.exists(f"/sys/bus/pci/devices/{info.nic_vf0}")
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", pf)
    assert drv(host, pf) == "vfio-pci"

    guest = vm_guest_no_iommu(str(tmp_path / "guest"))
    ghost, _ = sim(guest)
    ghost.run(["modprobe", "vfio-pci"])
    ghost.write_attr(f"/sys/bus/pci/devices/{guest.virtio_blk}/driver_override", "vfio-pci")
    ghost.write_attr("/sys/bus/pci/drivers/virtio-pci/unbind", guest.virtio_blk)
    with pytest.raises(SysfsWriteError) as exc:  # no IOMMU group and no noiommu mode
        ghost.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", guest.virtio_blk)
    assert errno_of(exc) == errno.EINVAL


def test_pf_with_vfs_refuses_vfio(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, kernel = sim(info)
    host.run(["modprobe", "vfio-pci"])
    kernel.dynids["ice"] = []
    host.write_attr(f"/sys/bus/pci/devices/{info.nic_pf}/driver_override", "vfio-pci")
    # the PF is still bound with 2 VFs; fake an unbound PF with VFs by a forced unbind of links
    host.write_attr("/sys/bus/pci/drivers/ice/unbind", info.nic_pf)
    host.write_attr(f"/sys/bus/pci/devices/{info.nic_pf}/driver_override", "ice")
    host.write_attr("/sys/bus/pci/drivers_probe", info.nic_pf)
    host.write_attr(f"/sys/bus/pci/devices/{info.nic_pf}/sriov_numvfs", "1")
    kernel.fr.unbind(info.nic_pf)  # a PF left with VFs and no driver (driver crash)
    host.write_attr(f"/sys/bus/pci/devices/{info.nic_pf}/driver_override", "vfio-pci")
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", info.nic_pf)
    assert errno_of(exc) == errno.EBUSY


def test_new_id_binds_every_unbound_match_and_remove_id(tmp_path):
    info = qemu_test_guest(str(tmp_path))
    host, kernel = sim(info)
    host.run(["modprobe", "vfio-pci"])
    for bad in ("", "zz", "1234"):
        with pytest.raises(SysfsWriteError) as exc:
            host.write_attr("/sys/bus/pci/drivers/vfio-pci/new_id", bad)
        assert errno_of(exc) == errno.EINVAL
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/new_id", "1234 11e8")
    # both edu functions were unbound: both are now on vfio-pci (why hostdev never uses new_id)
    assert drv(host, info.edu) == "vfio-pci" and drv(host, info.edu2) == "vfio-pci"
    assert host.exists("/dev/vfio/3") and host.exists("/dev/vfio/6")
    assert drv(host, info.e1000) == "e1000"  # bound devices are not taken
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/new_id", "1234 11e8")
    assert errno_of(exc) == errno.EEXIST
    with pytest.raises(SysfsWriteError) as exc:  # e1000e's static table already has it
        host.write_attr("/sys/bus/pci/drivers/e1000e/new_id", "8086 10d3")
    assert errno_of(exc) == errno.EEXIST
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/remove_id", "1234 11e8")
    assert kernel.dynids["vfio-pci"] == []
    assert drv(host, info.edu) == "vfio-pci"  # remove_id leaves bound devices alone
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/remove_id", "1234 11e8")
    assert errno_of(exc) == errno.ENODEV


def test_write_errors_of_the_file_system(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, _ = sim(info)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(f"/sys/bus/pci/devices/{info.t4}/vendor", "0x1234")
    assert errno_of(exc) == errno.EACCES
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/bind", info.t4)  # driver not loaded
    assert errno_of(exc) == errno.ENOENT


# ============================================================ holds, interlocks
def test_held_device_unbind_would_block_and_root_disk_is_a_disaster(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, kernel = sim(info)
    host.run(["modprobe", "vfio-pci"])
    host.write_attr(f"/sys/bus/pci/devices/{info.nvme_spare}/driver_override", "vfio-pci")
    host.write_attr("/sys/bus/pci/drivers/nvme/unbind", info.nvme_spare)
    host.write_attr("/sys/bus/pci/drivers_probe", info.nvme_spare)
    pid = kernel.hold(info.nvme_spare)
    assert host.readlink(f"/proc/{pid}/fd/20") == "/dev/vfio/5"
    assert host.read_attr(f"/proc/{pid}/comm") == "qemu-system-x86"
    with pytest.raises(KernelWouldBlock):
        host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", info.nvme_spare)
    result = host.run(["modprobe", "-r", "vfio_pci"], check=False)
    assert result.rc == 1 and "in use" in result.stderr
    kernel.release(info.nvme_spare)
    assert not host.exists(f"/proc/{pid}")
    host.write_attr("/sys/bus/pci/drivers/vfio-pci/unbind", info.nvme_spare)
    with pytest.raises(SimulatedDisaster):
        host.write_attr("/sys/bus/pci/drivers/nvme/unbind", info.nvme_root)
    assert drv(host, info.nvme_root) == "nvme"


def test_unbinding_the_nic_takes_its_interface_and_route_and_rebinding_restores_them(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, kernel = sim(info)
    host.write_attr("/sys/bus/pci/drivers/ice/unbind", info.nic_pf)
    assert not host.exists("/sys/class/net/eth0")
    assert not host.exists(f"/sys/bus/pci/devices/{info.nic_pf}/net")
    assert "eth0" not in host.read_text("/proc/net/route")
    assert any("routes lost" in e for e in kernel.events)
    host.write_attr("/sys/bus/pci/drivers/ice/bind", info.nic_pf)
    assert host.resolve("/sys/class/net/eth0/device") == host.resolve(f"/sys/bus/pci/devices/{info.nic_pf}")
    assert "eth0\t00000000" in host.read_text("/proc/net/route")


# ============================================================ SR-IOV
def test_sriov_numvfs_rules(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, _ = sim(info)
    attr = f"/sys/bus/pci/devices/{info.nic_pf}/sriov_numvfs"
    for value, code in (("9", errno.ERANGE), ("3", errno.EBUSY), ("x", errno.EINVAL)):
        with pytest.raises(SysfsWriteError) as exc:
            host.write_attr(attr, value)
        assert errno_of(exc) == code, value
    host.write_attr(attr, "2")  # unchanged: success
    host.write_attr(attr, "0")
    assert host.read_attr(attr) == "0"
    assert not host.exists(f"/sys/bus/pci/devices/{info.nic_vf0}")
    assert not host.exists(f"/sys/bus/pci/devices/{info.nic_pf}/virtfn0")
    assert not host.exists("/sys/kernel/iommu_groups/14")
    host.write_attr(attr, "4\n")
    vfs = ["0000:31:01.0", "0000:31:01.1", "0000:31:01.2", "0000:31:01.3"]
    for i, vf in enumerate(vfs):
        assert host.readlink(f"/sys/bus/pci/devices/{info.nic_pf}/virtfn{i}") == f"../{vf}"
        assert host.link_name(f"/sys/bus/pci/devices/{vf}/physfn") == info.nic_pf
        assert drv(host, vf) == "iavf"
    assert [host.link_name(f"/sys/bus/pci/devices/{vf}/iommu_group") for vf in vfs] == ["14", "15", "16", "17"]
    # a VF in use by a VM (through vfio-pci): the PF driver refuses to disable SR-IOV
    _, kernel = host, host.kernel
    host.run(["modprobe", "vfio-pci"])
    host.write_attr(f"/sys/bus/pci/devices/{vfs[1]}/driver_override", "vfio-pci")
    host.write_attr("/sys/bus/pci/drivers/iavf/unbind", vfs[1])
    host.write_attr("/sys/bus/pci/drivers_probe", vfs[1])
    kernel.hold(vfs[1])
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(attr, "0")
    assert errno_of(exc) == errno.EBUSY
    # no driver on the PF: ENOENT
    kernel.release(vfs[1])
    host.write_attr(attr, "0")
    host.write_attr("/sys/bus/pci/drivers/ice/unbind", info.nic_pf)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(attr, "1")
    assert errno_of(exc) == errno.ENOENT


def test_sriov_autoprobe_off_leaves_vfs_unbound(tmp_path):
    info = intel_host_t4(str(tmp_path))
    host, _ = sim(info)
    base = f"/sys/bus/pci/devices/{info.nic_pf}"
    host.write_attr(f"{base}/sriov_numvfs", "0")
    host.write_attr(f"{base}/sriov_drivers_autoprobe", "0")
    host.write_attr(f"{base}/sriov_numvfs", "1")
    assert drv(host, info.nic_vf0) is None


# ============================================================ mdev
def test_mdev_create_remove_on_nvidia(tmp_path):
    info = amd_host(str(tmp_path))
    host, kernel = sim(info)
    types = f"/sys/bus/pci/devices/{info.t4}/mdev_supported_types"
    for bad in ("not-a-uuid", UUID1[:-1], UUID1 + "00"):
        with pytest.raises(SysfsWriteError) as exc:
            host.write_attr(f"{types}/nvidia-222/create", bad)
        assert errno_of(exc) == errno.EINVAL
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(f"{types}/nvidia-222/create", info.mdevs["existing"])
    assert errno_of(exc) == errno.EEXIST
    with pytest.raises(SysfsWriteError) as exc:  # homogeneous vGPU: another type is in use
        host.write_attr(f"{types}/nvidia-223/create", UUID1)
    assert errno_of(exc) == errno.EUSERS
    host.write_attr(f"{types}/nvidia-222/create", UUID1.upper() + "\n")
    mdev = f"/sys/bus/mdev/devices/{UUID1}"
    assert host.resolve(mdev) == f"{host.resolve('/sys/bus/pci/devices/' + info.t4)}/{UUID1}"
    assert host.link_name(f"{mdev}/driver") == "nvidia-vgpu-vfio"
    assert host.readlink(f"{mdev}/mdev_type") == "../mdev_supported_types/nvidia-222"
    group = host.link_name(f"{mdev}/iommu_group")
    assert group == "9" and host.exists("/dev/vfio/9")
    assert host.listdir(f"/sys/kernel/iommu_groups/{group}/devices") == [UUID1]
    assert host.read_attr(f"{types}/nvidia-222/available_instances") == "14"
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(f"{types}/nvidia-222/create", UUID1)
    assert errno_of(exc) == errno.EEXIST
    kernel.hold(UUID1)
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(f"{mdev}/remove", "1")
    assert errno_of(exc) == errno.EBUSY
    kernel.release(UUID1)
    host.write_attr(f"{mdev}/remove", "1")
    assert not host.exists(mdev) and not host.exists(f"/sys/kernel/iommu_groups/{group}")
    assert not host.exists("/dev/vfio/9")
    assert host.read_attr(f"{types}/nvidia-222/available_instances") == "15"
    host.write_attr(f"/sys/bus/mdev/devices/{info.mdevs['existing']}/remove", "1")
    # no vGPU left: every type has its full capacity again
    assert [host.read_attr(f"{types}/{t}/available_instances") for t in host.listdir(types)] == ["16", "8", "8"]
    host.write_attr(f"{types}/nvidia-223/create", UUID2)
    assert host.link_name(f"/sys/bus/mdev/devices/{UUID2}/iommu_group") == "8"  # lowest free id
    assert [host.read_attr(f"{types}/{t}/available_instances") for t in host.listdir(types)] == ["0", "7", "0"]


def test_mtty_sample_via_insmod_like_the_guest(tmp_path):
    info = qemu_test_guest(str(tmp_path))
    host, kernel = sim(info)
    ko = info.extra["mtty_ko"]
    missing = host.run(["modprobe", "mtty"], check=False)
    assert missing.rc == 1
    assert missing.stderr == "modprobe: FATAL: Module mtty not found in directory /lib/modules/6.1.0-56-amd64\n"
    early = host.run(["insmod", ko], check=False)
    assert early.rc == 1 and "Unknown symbol in module" in early.stderr
    host.run(["modprobe", "mdev"])
    host.run(["modprobe", "vfio_iommu_type1"])
    assert hkernel.module_state(host, "vfio") == hkernel.LOADED
    host.run(["insmod", ko])
    assert host.run(["insmod", ko], check=False).stderr.endswith("File exists\n")
    assert host.resolve("/sys/class/mdev_bus/mtty") == "/sys/devices/virtual/mtty/mtty"
    types = "/sys/class/mdev_bus/mtty/mdev_supported_types"
    assert host.read_attr(f"{types}/mtty-1/name") == "Single port serial"
    assert host.read_attr(f"{types}/mtty-1/available_instances") == "24"
    assert host.read_attr(f"{types}/mtty-2/name") == "Dual port serial"
    assert host.read_attr(f"{types}/mtty-2/device_api") == "vfio-pci"
    host.write_attr(f"{types}/mtty-2/create", UUID1)
    assert host.read_attr(f"{types}/mtty-1/available_instances") == "22"  # shared pool of 24 ports
    assert host.read_attr(f"{types}/mtty-2/available_instances") == "11"
    assert host.link_name(f"/sys/bus/mdev/devices/{UUID1}/driver") == "mtty"
    group = host.link_name(f"/sys/bus/mdev/devices/{UUID1}/iommu_group")
    assert group == "12" and host.exists(f"/dev/vfio/{group}")  # the lowest free id: 0-11 are the PCI groups
    for i in range(22):
        host.write_attr(f"{types}/mtty-1/create", f"00000000-0000-4000-8000-{i:012x}")
    with pytest.raises(SysfsWriteError) as exc:
        host.write_attr(f"{types}/mtty-1/create", UUID2)
    assert errno_of(exc) == errno.ENOSPC
    host.write_attr(f"/sys/bus/mdev/devices/{UUID1}/remove", "1")
    assert host.read_attr(f"{types}/mtty-2/available_instances") == "1"
    # rmmod mtty removes its parent and mdevs
    host.run(["rmmod", "mtty"])
    assert not host.exists("/sys/class/mdev_bus/mtty") and host.listdir("/sys/bus/mdev/devices") == []
    assert [c[0] for c in kernel.commands] == ["modprobe", "insmod", "modprobe", "modprobe", "insmod", "insmod",
                                               "rmmod"]


def test_modprobe_mtty_when_installed(tmp_path):
    info = qemu_test_guest(str(tmp_path), mtty_installed=True)
    host, _ = sim(info)
    host.run(["modprobe", "mtty"])
    for name in ("mtty", "mdev", "vfio"):
        assert hkernel.module_state(host, name) == hkernel.LOADED
    assert host.exists("/sys/bus/mdev/drivers/mtty")


# ============================================================ modprobe and other commands
def test_modprobe_loads_dependencies_and_removes_them(tmp_path):
    info = qemu_test_guest(str(tmp_path))
    host, kernel = sim(info)
    host.run(["modprobe", "vfio-pci"])
    for name in ("vfio", "vfio_iommu_type1", "vfio_pci_core", "vfio_pci", "vfio_virqfd", "irqbypass"):
        assert host.read_attr(f"/sys/module/{name}/initstate") == "live", name
    assert host.exists("/sys/bus/pci/drivers/vfio-pci/bind")
    assert host.readlink("/sys/bus/pci/drivers/vfio-pci/module") == "../../../../module/vfio_pci"
    assert host.exists("/dev/vfio/vfio")
    modules = host.read_text("/proc/modules")
    assert modules.startswith("vfio_iommu_type1 ") or "vfio_pci 16384 0 - Live" in modules
    assert any(line.startswith("vfio 16384 3 ") for line in modules.splitlines())
    again = host.run(["modprobe", "vfio_pci"])
    assert again.rc == 0
    first = host.run(["modprobe", "--first-time", "vfio_pci"], check=False)
    assert first.rc == 1
    busy = host.run(["modprobe", "-r", "vfio"], check=False)
    assert busy.rc == 1 and busy.stderr == "modprobe: FATAL: Module vfio is in use.\n"
    host.run(["modprobe", "-r", "vfio-pci"])
    for name in ("vfio", "vfio_iommu_type1", "vfio_pci_core", "vfio_pci"):
        assert not host.exists(f"/sys/module/{name}"), name
    assert not host.exists("/sys/bus/pci/drivers/vfio-pci") and not host.exists("/dev/vfio/vfio")
    gone = host.run(["modprobe", "-r", "vfio-pci"], check=False)
    assert gone.rc == 1 and "not in kernel" in gone.stderr
    with pytest.raises(CommandError) as exc:
        host.run(["modprobe", "nosuchmodule"])
    assert exc.value.rc == 1
    assert "modprobe: FATAL: Module nosuchmodule not found in directory /lib/modules/6.1.0-56-amd64" in exc.value.stderr


def test_modprobe_options_ids_bind_at_load(tmp_path):
    info = qemu_test_guest(str(tmp_path))
    host, _ = sim(info)
    host.write_file("/etc/modprobe.d/vfio.conf", "options vfio-pci ids=1b36:0005\n", backup=False)
    host.run(["modprobe", "vfio-pci"])
    assert host.read_attr("/sys/module/vfio_pci/parameters/ids") == "1b36:0005"
    assert drv(host, info.testdev) == "vfio-pci"
    assert drv(host, info.edu) is None


def test_builtin_vfio(tmp_path):
    fr = FakeRoot(str(tmp_path), release="6.5.0-1-generic")
    fr.set_modules(available=["mdev"], builtin=["irqbypass", "vfio", "vfio_iommu_type1", "vfio_virqfd",
                                                 "vfio_pci_core", "vfio_pci"])
    host, _ = sim(type("I", (), {"root": fr.root})())
    assert hkernel.module_state(host, "vfio_pci") == hkernel.BUILTIN
    assert host.exists("/sys/bus/pci/drivers/vfio-pci/bind")
    assert not host.exists("/sys/bus/pci/drivers/vfio-pci/module")
    assert host.run(["modprobe", "vfio-pci"]).rc == 0
    removed = host.run(["modprobe", "-r", "vfio_pci"], check=False)
    assert removed.rc == 1 and "builtin" in removed.stderr


def test_unknown_program_raises_file_not_found_and_tools_in_the_root_run(tmp_path):
    info = intel_host_t4(str(tmp_path))
    kernel = SimKernel(info.root)
    with pytest.raises(FileNotFoundError):
        kernel.run(["grubby", "--update-kernel=ALL", "--args=intel_iommu=on"])
    host = Host(info.root, kernel=kernel)
    host.write_file("/etc/default/grub", host.read_text("/etc/default/grub").replace(
        'GRUB_CMDLINE_LINUX="intel_iommu=on"', 'GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"'))
    result = host.run(["update-grub"])
    assert result.rc == 0
    assert "ro intel_iommu=on iommu=pt quiet\n" in host.read_text("/boot/grub/grub.cfg")
    host.run(["update-initramfs", "-u", "-k", "all"])
    assert host.exists("/boot/initrd.img-6.1.0-56-amd64")
    assert kernel.commands[-2:] == [("update-grub",), ("update-initramfs", "-u", "-k", "all")]


def test_remove_and_rescan(tmp_path):
    info = qemu_test_guest(str(tmp_path))
    host, _ = sim(info)
    host.write_attr(f"/sys/bus/pci/devices/{info.e1000}/remove", "1")
    assert not host.exists(f"/sys/bus/pci/devices/{info.e1000}")
    assert host.listdir("/sys/kernel/iommu_groups/6/devices") == ["0000:00:13.0", "0000:01:01.0"]
    assert not host.exists("/sys/class/net/eth1")
    host.write_attr("/sys/bus/pci/rescan", "1")
    assert drv(host, info.e1000) == "e1000"
    assert host.listdir("/sys/kernel/iommu_groups/6/devices") == ["0000:00:13.0", "0000:01:01.0", "0000:01:03.0"]


# ============================================================ recordings
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDER = os.path.join(REPO, "scripts", "record-sysfs.py")
DEV_VM = os.path.join(REPO, "tests", "data", "dev-vm-firecracker")


def _record(source: str, out: str):
    import subprocess
    import sys
    return subprocess.run([sys.executable, RECORDER, "--source-root", source, "--out", out],
                          capture_output=True, text=True, timeout=120)


def test_recorder_round_trips_a_fake_host(tmp_path):
    info = intel_host_t4(str(tmp_path / "src"))
    result = _record(info.root, str(tmp_path / "rec"))
    assert result.returncode == 0, result.stderr
    assert "recorded 17 PCI functions" in result.stdout
    src, rec = Host(info.root), Host(str(tmp_path / "rec"))
    assert pci.list_devices(rec) == pci.list_devices(src)
    assert pci.iommu_groups(rec) == pci.iommu_groups(src)
    assert rec.listdir("/sys/bus/pci/drivers") == src.listdir("/sys/bus/pci/drivers")
    for addr in pci.list_addresses(src):
        for link in ("driver", "iommu_group", "physfn", "subsystem"):
            assert rec.readlink(f"/sys/bus/pci/devices/{addr}/{link}") == \
                src.readlink(f"/sys/bus/pci/devices/{addr}/{link}"), (addr, link)
    assert rec.readlink(f"/sys/bus/pci/devices/{info.nic_pf}/virtfn0") == "../0000:31:01.0"
    assert rec.read_text("/proc/cmdline") == src.read_text("/proc/cmdline")
    assert hkernel.read_iommu_facts(rec).units == ("dmar0",)
    assert hkernel.module_state(rec, "nvidia") == hkernel.LOADED
    assert not rec.exists(f"/sys/bus/pci/devices/{info.t4}/config")
    # the recording is a valid root for the simulated kernel too
    kernel = SimKernel(rec.root)
    rhost = Host(rec.root, kernel=kernel)
    rhost.write_attr(f"/sys/bus/pci/devices/{info.t4}/driver_override", "vfio-pci")
    rhost.write_attr("/sys/bus/pci/drivers/nvidia/unbind", info.t4)
    rhost.run(["modprobe", "vfio-pci"])
    assert drv(rhost, info.t4) == "vfio-pci"


def test_recorder_refuses_sys_proc_and_non_empty_targets(tmp_path):
    for out in ("/sys/hostdev-record", "/proc/hostdev-record", "/dev/hostdev-record"):
        result = _record("/", out)
        assert result.returncode == 2 and "refusing" in result.stderr
        assert not os.path.exists(out)
    fake = tmp_path / "src"
    (fake / "sys").mkdir(parents=True)
    result = _record(str(fake), str(fake / "sys" / "rec"))
    assert result.returncode == 2 and not (fake / "sys" / "rec").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    result = _record(str(fake), str(tmp_path / "full"))
    assert result.returncode == 2 and (tmp_path / "full" / "x").read_text() == "keep"


def test_dev_vm_recording_loads(tmp_path):
    host = Host(DEV_VM)
    devices = pci.list_devices(host)
    assert [d.address for d in devices] == [f"0000:00:0{i}.0" for i in range(6)]
    assert devices[0].pci_id == "8086:0d57" and devices[0].driver is None
    assert {d.driver for d in devices[1:]} == {"virtio-pci"}
    assert {d.vendor_id for d in devices[1:]} == {"1af4"}
    assert pci.iommu_groups(host) == []
    assert not hkernel.read_iommu_facts(host).active
    assert hkernel.read_cpuinfo(host).is_guest
    assert host.read_attr("/proc/sys/kernel/osrelease").startswith("6.18.")
    for dirpath, dirs, files in os.walk(DEV_VM):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                assert not os.readlink(path).startswith("/")
                assert os.path.realpath(path).startswith(os.path.realpath(DEV_VM) + "/")
    # a copy (never the checked-in tree) works with the simulated kernel
    import shutil
    copy = str(tmp_path / "vm")
    shutil.copytree(DEV_VM, copy, symlinks=True)
    host, kernel = sim(type("I", (), {"root": copy})())
    result = host.run(["modprobe", "vfio-pci"], check=False)
    assert result.rc == 1 and "not found in directory /lib/modules/6.18." in result.stderr
