#!/usr/bin/env python3
"""Benchmark the fleet merge: N host inventories (hostdev inventory -o json shape) → one
KubeVirt CR with ``hostdev kubevirt merge --mdev-config``. Goal (issue 7): 10,000 inventories
in seconds, linear in hosts.

    .venv/bin/python bench/kubevirt_merge.py                    # N = 1,000 2,500 5,000 10,000
    .venv/bin/python bench/kubevirt_merge.py --sizes 10000 --runs 3

Inventories are generated under bench/out/inventories/N (ignored by git) once per size: each
host has 40 PCI functions (root ports, 2 E810 PFs with 8 VFs each, 2 NVMe, a T4 and an A10 on
vfio-pci or a T4 running vGPU with one mdev, in proportions that vary by host) and one of
three node labels. Timing is wall-clock of the CLI as users run it (start-up, reading and
validating every file, building, YAML output to a pipe), median of --runs; plus the build
alone in-process (pure hostdev.kubevirt.build on already-loaded inventories).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out", "inventories")
sys.path.insert(0, REPO)

T4_TYPES = [{"id": "nvidia-222", "name": "GRID T4-1B", "available_instances": 15, "device_api": "vfio-pci",
             "description": "num_heads=4, frl_config=45, framebuffer=1024M"},
            {"id": "nvidia-226", "name": "GRID T4-2A", "available_instances": 0, "device_api": "vfio-pci",
             "description": "num_heads=1, frl_config=60, framebuffer=2048M"}]


def device(address, vendor, dev_id, class_id, driver, name, group):
    return {"address": address, "vendor_id": vendor, "device_id": dev_id, "subsystem_vendor_id": vendor,
            "subsystem_device_id": "0000", "class_id": class_id, "class_name": None, "vendor_name": None,
            "device_name": name, "driver": driver, "driver_override": None, "iommu_group": group, "numa_node": 0,
            "sriov": None, "mdev_parent": False, "boot_vga": None}


def inventory(i: int) -> dict:
    devices, groups = [], []

    def add(address, vendor, dev_id, class_id, driver, name):
        group = len(groups)
        groups.append({"id": group, "devices": [address]})
        devices.append(device(address, vendor, dev_id, class_id, driver, name, group))

    for rp in range(8):
        add(f"0000:00:{rp + 1:02x}.0", "8086", "347a", "060400", "pcieport", "Ice Lake Root Port")
    for pf in range(2):
        add(f"0000:3{pf}:00.0", "8086", "1592", "020000", "ice", "Ethernet Controller E810-C for QSFP")
        for vf in range(8):
            add(f"0000:3{pf}:01.{vf}", "8086", "1889", "020000", "vfio-pci" if vf < 4 else "iavf",
                "Ethernet Adaptive Virtual Function")
    for n in range(2):
        add(f"0000:0{n + 1}:00.0", "144d", "a80a", "010802", "nvme", "NVMe SSD Controller PM9A1/PM9A3/980PRO")
    vgpu = i % 3 == 0
    add("0000:65:00.0", "10de", "1eb8", "030200", "nvidia" if vgpu else "vfio-pci", "TU104GL [Tesla T4]")
    add("0000:17:00.0", "10de", "2236", "030000", "vfio-pci", "GA102GL [A10]")
    add("0000:17:00.1", "10de", "1aef", "040300", "vfio-pci", "GA102 High Definition Audio Controller")
    add("0000:6b:00.0", "8086", "4940", "0b4000", "vfio-pci" if i % 2 else "4xxx", "4xxx Series QAT")
    while len(devices) < 40:
        add(f"0000:a{len(devices) % 10}:00.0", "1af4", "1041", "020000", "virtio-pci", "Virtio network device")
    mdevs, parents = [], []
    if vgpu:
        devices[-1]["mdev_parent"] = True
        parents.append({"address": "0000:65:00.0", "interface": "mdev", "types": T4_TYPES})
        mdevs.append({"uuid": f"00000000-0000-4000-8000-{i:012d}", "parent": "0000:65:00.0", "type_id": "nvidia-222",
                      "type_name": "GRID T4-1B", "iommu_group": len(groups), "driver": "nvidia-vgpu-vfio"})
    return {"inventory_version": 1, "hostname": f"node-{i:05d}", "labels": {"pool": ("vgpu", "gpu", "net")[i % 3]},
            "pci_ids": {"path": "/usr/share/misc/pci.ids", "version": "2023.04.10", "date": "2023-04-10 20:08:02"},
            "devices": devices, "iommu_groups": groups, "mdev_types": parents, "mdevs": mdevs}


def generate(n: int) -> list:
    directory = os.path.join(OUT, str(n))
    paths = [os.path.join(directory, f"node-{i:05d}.json") for i in range(n)]
    if not all(os.path.exists(p) for p in (paths[0], paths[-1])):
        os.makedirs(directory, exist_ok=True)
        for i, path in enumerate(paths):
            with open(path, "w") as handle:
                json.dump(inventory(i), handle, separators=(",", ":"))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from hostdev import inventory as inv
    from hostdev import kubevirt as kv

    hostdev = os.path.join(REPO, ".venv", "bin", "hostdev")
    rows = []
    for n in args.sizes:
        paths = generate(n)
        size_mb = sum(os.path.getsize(p) for p in paths) / 2**20
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            proc = subprocess.run([hostdev, "kubevirt", "merge", *paths, "--mdev-config"], capture_output=True,
                                  text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return 1
        loaded = inv.load(paths)
        start = time.perf_counter()
        result = kv.build(loaded, kv.Selection(), kv.Options(mdev_config=True))
        build_s = time.perf_counter() - start
        # sanity: the union is the same whatever N (4 selectors + the vGPU type, 3 label groups)
        assert sorted(e.selector for e in result.entries) == ["10DE:1AEF", "10DE:1EB8", "10DE:2236", "8086:1889",
                                                              "8086:4940", "GRID T4-1B"], result.entries
        rows.append((n, size_mb, statistics.median(times), build_s))
    lines = ["| inventories | JSON MiB | `hostdev kubevirt merge` s (median) | build alone s | µs per host (CLI) |",
             "|---:|---:|---:|---:|---:|"]
    for n, size_mb, cli_s, build_s in rows:
        lines.append(f"| {n:,} | {size_mb:.1f} | {cli_s:.2f} | {build_s:.2f} | {cli_s / n * 1e6:.0f} |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
