#!/usr/bin/env python3
"""A fake root for the bind benchmark: tests/fakesys's Intel host with a second E810 PF
(sriov_totalvfs 128) at 0000:4b:00.0 whose 64 VFs are enabled on iavf. Prints the 64 VF
addresses, one a line. Bind them with the simulated kernel (tests/ansible_sim.py is hostdev with
a SimKernel behind --root):

    python bench/vf_host.py ROOT > vfs.txt
    python tests/ansible_sim.py --root ROOT bind $(cat vfs.txt)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fakesys import scenarios  # noqa: E402
from tests.fakesys.builder import FakeRoot  # noqa: E402

PF = "0000:4b:00.0"
VFS = 64


def build(root: str) -> list:
    """The tree under ``root`` (which must not exist yet); returns the VF addresses."""
    scenarios.intel_host_t4(root)
    fr = FakeRoot.attach(root)
    fr.add_pci("0000:4a:02.0", 0x8086, 0x347A, 0x060400, revision=0x04, numa_node=1, iommu_group=60,
               pcie_type="root_port", secondary_bus=0x4B, driver="pcieport", reset_method=None)
    fr.add_pci(PF, 0x8086, 0x1592, 0x020000, subsys=(0x8086, 0x0002), revision=0x02, parent="0000:4a:02.0",
               numa_node=1, iommu_group=61, driver="ice", sriov_totalvfs=128, sriov_vf_device=0x1889,
               sriov_offset=8, sriov_stride=1)
    return fr.set_numvfs(PF, VFS, driver="iavf")


if __name__ == "__main__":
    if len(sys.argv) != 2 or os.path.exists(sys.argv[1]):
        sys.exit("usage: vf_host.py NEW_ROOT (a directory that does not exist yet)")
    print("\n".join(build(sys.argv[1])))
