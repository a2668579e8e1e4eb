#!/usr/bin/env python3
"""Record this machine's PCI-relevant sysfs/procfs into a directory that is a valid fake root.

Strictly read-only towards the source: it only lists directories, reads small attributes and
reads links (never ``config``: on real hardware each config read can be trapped and slow, and
hostdev never reads it). Links are written RELATIVE, as sysfs stores them, so the recording
works with hostdev's ``--root`` and with tests/fakesys.SimKernel.

    scripts/record-sysfs.py --out tests/data/NAME            # record / (this machine)
    scripts/record-sysfs.py --source-root FAKE --out DIR     # record a fake root (tests)

Recorded: /sys/bus/pci/devices/* with their /sys/devices directories (vendor device
subsystem_* class revision numa_node driver_override boot_vga uevent modalias enable
sriov_* reset_method and the write-only attributes as empty files), the driver / iommu_group /
physfn / virtfnN / subsystem links, mdev_supported_types, /sys/bus/pci/drivers/* (with bind,
unbind, new_id, remove_id and module links), /sys/kernel/iommu_groups, /sys/class/iommu,
/sys/module/* (initstate), ACPI DMAR/IVRS presence (empty marker files), /proc/cmdline,
/proc/cpuinfo (first processor, identification and flags only), /proc/sys/kernel/osrelease,
/lib/modules/<release>/modules.{dep,builtin} when present (module names only, paths kept).
Refuses to write inside /sys, /proc or /dev, or inside the source root's sys, proc or dev.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, Optional

DEVICE_ATTRS = ("vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision",
                "numa_node", "driver_override", "boot_vga", "uevent", "modalias", "enable",
                "sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device",
                "sriov_drivers_autoprobe", "reset_method", "local_cpulist", "irq", "d3cold_allowed")
WRITE_ONLY_ATTRS = ("remove", "reset", "rescan")
DEVICE_LINKS = ("driver", "iommu_group", "physfn", "subsystem", "iommu")
MDEV_TYPE_ATTRS = ("name", "available_instances", "device_api", "description")
FORBIDDEN = ("/sys", "/proc", "/dev")


class Recorder:
    def __init__(self, source: str, out: str) -> None:
        self.source = os.path.realpath(source)
        self.out = os.path.realpath(out)
        self.devices: set = set()   # host paths of recorded device directories

    # ------------------------------------------------------------ source (read-only)
    def src(self, host_path: str) -> str:
        return os.path.join(self.source, host_path.lstrip("/"))

    def listdir(self, host_path: str) -> list:
        try:
            return sorted(os.listdir(self.src(host_path)))
        except OSError:
            return []

    def read(self, host_path: str, limit: int = 65536) -> Optional[bytes]:
        try:
            with open(self.src(host_path), "rb") as handle:
                return handle.read(limit)
        except OSError:
            return None

    def readlink(self, host_path: str) -> Optional[str]:
        try:
            return os.readlink(self.src(host_path))
        except OSError:
            return None

    def link_target(self, host_path: str) -> Optional[str]:
        """The host path a link points to, normalised (not following further links)."""
        target = self.readlink(host_path)
        if target is None:
            return None
        if target.startswith("/"):
            return os.path.normpath(target)
        return os.path.normpath(os.path.join(os.path.dirname(host_path), target))

    def resolve(self, host_path: str) -> str:
        real = os.path.realpath(self.src(host_path))
        rel = os.path.relpath(real, self.source)
        return "/" if rel == "." else "/" + rel

    def mode(self, host_path: str) -> int:
        try:
            return os.stat(self.src(host_path)).st_mode & 0o777
        except OSError:
            return 0o444

    # ------------------------------------------------------------ destination
    def dst(self, host_path: str) -> str:
        path = os.path.normpath(os.path.join(self.out, host_path.lstrip("/")))
        if not (path == self.out or path.startswith(self.out + "/")):
            raise SystemExit(f"record-sysfs: refusing to write {path} outside {self.out}")
        return path

    def put(self, host_path: str, data: bytes, mode: int = 0o444) -> None:
        path = self.dst(host_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)

    def mkdir(self, host_path: str) -> None:
        os.makedirs(self.dst(host_path), exist_ok=True)

    def link(self, host_link: str, host_target: str) -> None:
        path = self.dst(host_link)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            return
        os.symlink(os.path.relpath(host_target, os.path.dirname(host_link)), path)

    def copy_attrs(self, directory: str, names: Iterable[str], *, write_only: Iterable[str] = ()) -> None:
        for name in names:
            data = self.read(f"{directory}/{name}")
            if data is not None:
                self.put(f"{directory}/{name}", data, self.mode(f"{directory}/{name}"))
        for name in write_only:
            if os.path.lexists(self.src(f"{directory}/{name}")):
                self.put(f"{directory}/{name}", b"", 0o200)

    # ------------------------------------------------------------ recording
    def record(self) -> int:
        addresses = self.listdir("/sys/bus/pci/devices")
        for addr in addresses:
            path = self.resolve(f"/sys/bus/pci/devices/{addr}")
            self.devices.add(path)
        for addr in addresses:
            self.record_device(addr)
        self.record_drivers()
        self.record_groups()
        self.record_iommu_units()
        self.record_modules()
        self.record_proc()
        self.record_use()
        for name in ("DMAR", "IVRS"):
            if os.path.lexists(self.src(f"/sys/firmware/acpi/tables/{name}")):
                self.put(f"/sys/firmware/acpi/tables/{name}", b"", 0o400)
        for name in ("drivers_probe", "rescan"):
            self.put(f"/sys/bus/pci/{name}", b"", 0o200)
        self.copy_attrs("/sys/bus/pci", ["drivers_autoprobe"])
        return len(addresses)

    def record_device(self, addr: str) -> None:
        path = self.resolve(f"/sys/bus/pci/devices/{addr}")
        self.mkdir(path)
        self.link(f"/sys/bus/pci/devices/{addr}", path)
        self.copy_attrs(path, DEVICE_ATTRS, write_only=WRITE_ONLY_ATTRS)
        for name in DEVICE_LINKS:
            target = self.link_target(f"{path}/{name}")
            if target is not None:
                self.link(f"{path}/{name}", self.resolve(f"{path}/{name}"))
        for name in self.listdir(path):
            if name.startswith("virtfn"):
                self.link(f"{path}/{name}", self.resolve(f"{path}/{name}"))
        types = f"{path}/mdev_supported_types"
        for type_id in self.listdir(types):
            self.mkdir(f"{types}/{type_id}/devices")
            self.copy_attrs(f"{types}/{type_id}", MDEV_TYPE_ATTRS, write_only=("create",))
        if self.listdir(types):
            self.link(f"/sys/class/mdev_bus/{addr}", path)

    def record_drivers(self) -> None:
        for name in self.listdir("/sys/bus/pci/drivers"):
            base = f"/sys/bus/pci/drivers/{name}"
            self.mkdir(base)
            self.copy_attrs(base, (), write_only=("bind", "unbind", "new_id", "remove_id", "uevent"))
            module = self.link_target(f"{base}/module")
            if module:
                self.mkdir(module)
                self.link(f"{base}/module", module)
            for entry in self.listdir(base):
                if entry.count(":") == 2 and self.resolve(f"{base}/{entry}") in self.devices:
                    self.link(f"{base}/{entry}", self.resolve(f"{base}/{entry}"))

    def record_groups(self) -> None:
        for group in self.listdir("/sys/kernel/iommu_groups"):
            base = f"/sys/kernel/iommu_groups/{group}"
            self.mkdir(f"{base}/devices")
            self.copy_attrs(base, ("type",))
            for member in self.listdir(f"{base}/devices"):
                target = self.resolve(f"{base}/devices/{member}")
                if target in self.devices:
                    self.link(f"{base}/devices/{member}", target)

    def record_iommu_units(self) -> None:
        for name in self.listdir("/sys/class/iommu"):
            target = self.resolve(f"/sys/class/iommu/{name}")
            self.mkdir(f"{target}/devices")
            self.link(f"/sys/class/iommu/{name}", target)

    def record_modules(self) -> None:
        for name in self.listdir("/sys/module"):
            base = f"/sys/module/{name}"
            self.mkdir(base)
            self.copy_attrs(base, ("initstate", "version"), write_only=("uevent",))
            params = self.listdir(f"{base}/parameters")
            self.copy_attrs(f"{base}/parameters", params)
        release = (self.read("/proc/sys/kernel/osrelease") or b"").decode().strip()
        if release:
            for name in ("modules.dep", "modules.builtin"):
                data = self.read(f"/lib/modules/{release}/{name}", limit=4 << 20)
                if data is not None:
                    self.put(f"/lib/modules/{release}/{name}", data, 0o644)

    def record_proc(self) -> None:
        for path in ("/proc/cmdline", "/proc/sys/kernel/osrelease"):
            data = self.read(path)
            if data is not None:
                self.put(path, data)
        text = (self.read("/proc/cpuinfo", limit=1 << 20) or b"").decode("utf-8", "replace")
        first = text.split("\n\n", 1)[0]
        keep = ("processor", "vendor_id", "cpu family", "model", "model name", "flags", "vmx flags")
        lines = [line for line in first.splitlines() if line.split(":", 1)[0].strip() in keep]
        if lines:
            self.put("/proc/cpuinfo", ("\n".join(lines) + "\n\n").encode())


    # ------------------------------------------------------------ what the host uses (hostdev/hostuse.py)
    def record_use(self) -> None:
        """Routes, network interfaces and their stacking, block devices and their stacking,
        block-device mounts and swap: the shapes the in-use interlocks follow."""
        for path in ("/proc/net/route", "/proc/net/ipv6_route", "/proc/swaps"):
            data = self.read(path)
            if data is not None:
                self.put(path, data)
        for path in ("/proc/self/mountinfo", "/proc/mounts"):
            text = (self.read(path, limit=1 << 20) or b"").decode("utf-8", "replace")
            # block-device mounts only (a device number with a major, or a /dev source): the rest
            # (proc, cgroup, tmpfs, overlay …) says nothing about PCI functions
            keep = [line for line in text.splitlines() if line.startswith("/dev/") or (
                path.endswith("mountinfo") and len(line.split()) > 2 and not line.split()[2].startswith("0:"))]
            if keep:
                self.put(path, ("\n".join(keep) + "\n").encode())
        for name in self.listdir("/sys/class/net"):
            self.record_netdev(name)
        for name in self.listdir("/sys/class/block"):
            self.record_blockdev(f"/sys/class/block/{name}")
        for name in self.listdir("/sys/block"):
            self.link(f"/sys/block/{name}", self.resolve(f"/sys/block/{name}"))
        for number in self.listdir("/sys/dev/block"):
            self.link(f"/sys/dev/block/{number}", self.resolve(f"/sys/dev/block/{number}"))

    def record_netdev(self, name: str) -> None:
        path = self.resolve(f"/sys/class/net/{name}")
        self.mkdir(path)
        self.link(f"/sys/class/net/{name}", path)
        self.copy_attrs(path, ("ifindex", "address", "operstate", "type", "mtu"))
        self.copy_attrs(f"{path}/bonding", ("slaves", "mode"))
        for entry in self.listdir(path):
            if entry in ("device", "master") or entry.startswith(("lower_", "upper_")):
                target = self.resolve(f"{path}/{entry}")
                self.mkdir(target)
                self.link(f"{path}/{entry}", target)
        for port in self.listdir(f"{path}/brif"):
            target = self.resolve(f"{path}/brif/{port}")
            self.mkdir(target)
            self.link(f"{path}/brif/{port}", target)

    def record_blockdev(self, class_path: str) -> None:
        path = self.resolve(class_path)
        self.mkdir(path)
        self.link(class_path, path)
        self.copy_attrs(path, ("dev", "partition", "size", "ro", "removable"))
        self.copy_attrs(f"{path}/dm", ("name", "uuid"))
        self.copy_attrs(f"{path}/md", ("level",))
        for kind in ("slaves", "holders"):
            self.mkdir(f"{path}/{kind}")
            for entry in self.listdir(f"{path}/{kind}"):
                self.link(f"{path}/{kind}/{entry}", self.resolve(f"{path}/{kind}/{entry}"))
        for entry in self.listdir(path):
            if entry == "device":
                self.link(f"{path}/device", self.resolve(f"{path}/device"))


def refuse(out: str, source: str) -> Optional[str]:
    real = os.path.realpath(out)
    src = os.path.realpath(source)
    for forbidden in FORBIDDEN:
        for base in {forbidden, os.path.join(src, forbidden.lstrip("/"))}:
            if real == base or real.startswith(base.rstrip("/") + "/"):
                return f"refusing to write into {base}"
    if real == src or src.startswith(real + "/"):
        return "refusing to write over the source root"
    if os.path.exists(real) and os.listdir(real):
        return f"{out} exists and is not empty"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", required=True, help="new or empty directory for the recording")
    parser.add_argument("--source-root", default="/", help="the tree to record (default: this machine)")
    args = parser.parse_args(argv)
    problem = refuse(args.out, args.source_root)
    if problem:
        print(f"record-sysfs: {problem}", file=sys.stderr)
        return 2
    count = Recorder(args.source_root, args.out).record()
    print(f"recorded {count} PCI functions from {args.source_root} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
