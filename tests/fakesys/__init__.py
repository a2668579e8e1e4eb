"""Realistic fake machines for hostdev's tests: a sysfs-shaped tree builder (builder), whole
hosts (scenarios), and a simulated kernel that applies sysfs writes and modprobe (simkernel)."""

from .builder import FakeRoot, HostInfo, PciSpec
from .scenarios import amd_host, intel_host_t4, qemu_test_guest, vm_guest_no_iommu
from .simkernel import KernelWouldBlock, SimKernel, SimulatedDisaster

__all__ = ["FakeRoot", "HostInfo", "PciSpec", "SimKernel", "KernelWouldBlock", "SimulatedDisaster",
           "intel_host_t4", "amd_host", "vm_guest_no_iommu", "qemu_test_guest"]
