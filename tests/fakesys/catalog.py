"""What the simulated kernel knows about modules and the PCI drivers they register.

A real kernel learns this from the module binaries; the fake trees learn it from here. The
builder writes modules.dep / modules.alias / modules.builtin / modules.builtin.modinfo from
this table, and SimKernel uses the same entries to decide which driver matches which device
(the static id table, drivers/pci/pci-driver.c pci_match_id) and what loading a module adds.

Module paths follow Debian 12's linux-image-6.1.0-*-amd64 (uncompressed ``.ko``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

# A static id entry: (vendor, device, class, class_mask); None means PCI_ANY_ID.
PciId = Tuple[Optional[int], Optional[int], int, int]


def ids(*pairs: str) -> Tuple[PciId, ...]:
    """``ids("8086:10d3", "8086:*")`` → id table entries matching vendor:device."""
    out = []
    for pair in pairs:
        vendor, device = pair.split(":")
        out.append((int(vendor, 16), None if device == "*" else int(device, 16), 0, 0))
    return tuple(out)


def class_ids(vendor: Optional[int], klass: int, mask: int) -> Tuple[PciId, ...]:
    return ((vendor, None, klass, mask),)


@dataclass(frozen=True)
class Module:
    name: str                       # module name, underscores (vfio_pci)
    path: str                       # under /lib/modules/<release>/ (kernel/drivers/…/vfio-pci.ko)
    deps: Tuple[str, ...] = ()      # modules.dep order: direct and indirect, nearest first
    softdeps_post: Tuple[str, ...] = ()
    pci_driver: Optional[str] = None  # the name under /sys/bus/pci/drivers
    pci_ids: Tuple[PciId, ...] = ()
    # vfio-pci's table is PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_ANY_ID, PCI_ANY_ID) with
    # override_only set: it matches only a device whose driver_override names it (6.1
    # drivers/pci/pci-driver.c pci_match_device, "override_only").
    override_only: bool = False
    sriov_configure: bool = False   # the driver implements .sriov_configure
    mdev_driver: Optional[str] = None  # registers this driver on the mdev bus
    parameters: Dict[str, str] = field(default_factory=dict)  # /sys/module/NAME/parameters
    netdev: bool = False            # binding creates a network interface
    vf_of: Tuple[str, ...] = ()     # (informational) the PF driver whose VFs it drives


_V = "kernel/drivers/vfio"

MODULES: Dict[str, Module] = {m.name: m for m in [
    # --- VFIO, as Debian's 6.1 builds it (CONFIG_VFIO=m, CONFIG_VFIO_PCI=m, VFIO_VIRQFD a
    # module of its own until 6.2). vfio softdeps the IOMMU backend
    # (drivers/vfio/vfio_main.c MODULE_SOFTDEP("post: vfio_iommu_type1 vfio_iommu_spapr_tce")).
    Module("irqbypass", "kernel/virt/lib/irqbypass.ko"),
    Module("vfio", f"{_V}/vfio.ko", softdeps_post=("vfio_iommu_type1",),
           parameters={"enable_unsafe_noiommu_mode": "N"}),
    Module("vfio_iommu_type1", f"{_V}/vfio_iommu_type1.ko", deps=("vfio",),
           parameters={"allow_unsafe_interrupts": "N", "dma_entry_limit": "65535",
                       "disable_hugepages": "N"}),
    Module("vfio_virqfd", f"{_V}/vfio_virqfd.ko"),
    Module("vfio_pci_core", f"{_V}/pci/vfio-pci-core.ko", deps=("vfio_virqfd", "irqbypass", "vfio"),
           parameters={"nointxmask": "N", "disable_vga": "N", "disable_idle_d3": "N"}),
    Module("vfio_pci", f"{_V}/pci/vfio-pci.ko",
           deps=("vfio_pci_core", "vfio_virqfd", "irqbypass", "vfio"),
           pci_driver="vfio-pci", pci_ids=((None, None, 0, 0),), override_only=True,
           sriov_configure=True,
           parameters={"ids": "", "enable_sriov": "N", "disable_denylist": "N"}),
    Module("mdev", f"{_V}/mdev/mdev.ko"),
    Module("kvm", "kernel/arch/x86/kvm/kvm.ko"),
    Module("kvm_intel", "kernel/arch/x86/kvm/kvm-intel.ko", deps=("kvm",)),
    Module("kvm_amd", "kernel/arch/x86/kvm/kvm-amd.ko", deps=("kvm",)),
    # --- the vfio-mdev sample, built out of tree (vmlab REPORT §3: "depends mdev,vfio")
    Module("mtty", "extra/mtty.ko", deps=("mdev", "vfio"), mdev_driver="mtty"),
    # --- NVIDIA (out of tree, DKMS)
    Module("nvidia", "updates/dkms/nvidia.ko", pci_driver="nvidia",
           pci_ids=class_ids(0x10DE, 0x030000, 0xFF0000) + class_ids(0x10DE, 0x030200, 0xFFFF00),
           sriov_configure=True),
    Module("nvidia_vgpu_vfio", "updates/dkms/nvidia-vgpu-vfio.ko", deps=("nvidia", "mdev", "vfio"),
           mdev_driver="nvidia-vgpu-vfio"),
    # --- in-tree device drivers used by the scenarios
    Module("snd_hda_intel", "kernel/sound/pci/hda/snd-hda-intel.ko", pci_driver="snd_hda_intel",
           pci_ids=class_ids(None, 0x040300, 0xFFFF00)),
    Module("e1000e", "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko", pci_driver="e1000e",
           pci_ids=ids("8086:10d3", "8086:15b8"), netdev=True),
    Module("e1000", "kernel/drivers/net/ethernet/intel/e1000/e1000.ko", pci_driver="e1000",
           pci_ids=ids("8086:100e"), netdev=True),
    Module("ice", "kernel/drivers/net/ethernet/intel/ice/ice.ko", pci_driver="ice",
           pci_ids=ids("8086:1592", "8086:1593", "8086:159b"), sriov_configure=True, netdev=True),
    Module("iavf", "kernel/drivers/net/ethernet/intel/iavf/iavf.ko", pci_driver="iavf",
           pci_ids=ids("8086:1889", "8086:154c"), netdev=True, vf_of=("ice",)),
    # the 82576 (igb) of the real-kernel guest with QEMU >= 8.0 (Debian 6.1's modules.dep: igb needs
    # dca and i2c-algo-bit); its VFs' driver, igbvf, has no dependency
    Module("dca", "kernel/drivers/dca/dca.ko"),
    Module("i2c_algo_bit", "kernel/drivers/i2c/algos/i2c-algo-bit.ko"),
    Module("igb", "kernel/drivers/net/ethernet/intel/igb/igb.ko", deps=("dca", "i2c_algo_bit"),
           pci_driver="igb", pci_ids=ids("8086:10c9"), sriov_configure=True, netdev=True),
    Module("igbvf", "kernel/drivers/net/ethernet/intel/igbvf/igbvf.ko", pci_driver="igbvf",
           pci_ids=ids("8086:10ca"), netdev=True, vf_of=("igb",)),
    Module("mlx5_core", "kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko",
           pci_driver="mlx5_core", pci_ids=ids("15b3:101b", "15b3:101c", "15b3:101d", "15b3:101e"),
           sriov_configure=True, netdev=True),
    Module("nvme_core", "kernel/drivers/nvme/host/nvme-core.ko"),
    Module("nvme", "kernel/drivers/nvme/host/nvme.ko", deps=("nvme_core",), pci_driver="nvme",
           pci_ids=class_ids(None, 0x010802, 0xFFFFFF)),
    Module("qat_4xxx", "kernel/drivers/crypto/qat/qat_4xxx/qat_4xxx.ko", pci_driver="4xxx",
           pci_ids=ids("8086:4940", "8086:4942"), sriov_configure=True),
    Module("mgag200", "kernel/drivers/gpu/drm/mgag200/mgag200.ko", pci_driver="mgag200",
           pci_ids=ids("102b:0522", "102b:0532", "102b:0536")),
    Module("ahci", "kernel/drivers/ata/ahci.ko", pci_driver="ahci",
           pci_ids=class_ids(None, 0x010601, 0xFFFFFF)),
    Module("lpc_ich", "kernel/drivers/mfd/lpc_ich.ko", pci_driver="lpc_ich", pci_ids=ids("8086:2918")),
    Module("i2c_i801", "kernel/drivers/i2c/busses/i2c-i801.ko", pci_driver="i801_smbus",
           pci_ids=ids("8086:2930")),
    Module("virtio_pci", "kernel/drivers/virtio/virtio_pci.ko", pci_driver="virtio-pci",
           pci_ids=ids("1af4:*")),
    Module("xhci_pci", "kernel/drivers/usb/host/xhci-pci.ko", pci_driver="xhci_hcd",
           pci_ids=class_ids(None, 0x0C0330, 0xFFFFFF)),
    Module("ccp", "kernel/drivers/crypto/ccp/ccp.ko", pci_driver="ccp", pci_ids=ids("1022:1498")),
]}

# Drivers that are part of the kernel image on every distribution kernel (bool Kconfig
# symbols: never in modules.builtin, no /sys/module/NAME/initstate, no ``module`` link).
CORE_DRIVERS: Dict[str, Tuple[PciId, ...]] = {
    # drivers/pci/pcie/portdrv.c: PCI_CLASS_BRIDGE_PCI << 8 with prog-if 0, root and
    # switch ports only (the pcie-pci-bridge is not a PCIe port and stays unbound).
    "pcieport": class_ids(None, 0x060400, 0xFFFFFF),
}


def module_for_driver(driver: str) -> Optional[Module]:
    for module in MODULES.values():
        if module.pci_driver == driver or module.mdev_driver == driver:
            return module
    return None


def normalize(name: str) -> str:
    """modprobe treats - and _ alike; module names use _ (kmod's underscores())."""
    return name.replace("-", "_")
