"""A recorded host: what hostdev reads of a machine (the PCI, IOMMU and mdev parts of sysfs, the
relevant /proc and /etc files, pci.ids), taken through a Host and kept as one archive that
``--root FILE`` opens. What a user attaches to a bug report, and what an admin plans KubeVirt
output from away from the host (docs/commands.md, "hostdev record").

Reading is strictly read-only towards the source: listdir, readlink and small reads through
Host; never a PCI ``config`` (each read can be trapped and slow on real hardware, and hostdev
never reads it). Links are kept RELATIVE, as sysfs stores them. scripts/record-sysfs.py records
into a directory with the same ``members``.

Opening is bounded (``check_member``): a member outside the root, an absolute or escaping link, a
hard link or device node, a member over MAX_MEMBER_BYTES, more than MAX_MEMBERS or
MAX_TOTAL_BYTES in all is refused with one line (UsageError, exit 2) before anything is unpacked.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from .errors import UsageError
from .host import Host

FORMAT = 1
MANIFEST = "hostdev-recording.json"
TOP = "root"  # members are TOP/<host path>
MAX_MEMBERS = 200_000
MAX_MEMBER_BYTES = 16 * 1024 * 1024   # documents.MAX_BYTES: the largest file hostdev reads
MAX_TOTAL_BYTES = 256 * 1024 * 1024

DEVICE_ATTRS = ("vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision",
                "numa_node", "driver_override", "boot_vga", "uevent", "modalias", "enable",
                "sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device",
                "sriov_drivers_autoprobe", "reset_method", "local_cpulist", "irq", "d3cold_allowed",
                "resource", "current_link_speed", "current_link_width", "power_state")
WRITE_ONLY_ATTRS = ("remove", "reset", "rescan")
DEVICE_LINKS = ("driver", "iommu_group", "physfn", "subsystem", "iommu")
MDEV_TYPE_ATTRS = ("name", "available_instances", "device_api", "description")
# Files under /etc, /boot, /var and /usr that hostdev reads (boot arguments, module and mdevctl
# configuration, its own journal and persistence files, pci.ids): kept with their content.
CONFIG_FILES = ("/etc/default/grub", "/etc/kernel/cmdline", "/etc/os-release", "/etc/hostname",
                "/proc/sys/kernel/hostname",
                "/var/lib/hostdev/bindings.json", "/var/lib/hostdev/boot-args.json",
                "/etc/udev/rules.d/60-hostdev.rules", "/etc/systemd/system/hostdev-bindings.service",
                "/usr/lib/udev/rules.d/60-mdevctl.rules", "/lib/udev/rules.d/60-mdevctl.rules",
                "/run/ostree-booted", "/proc/iomem", "/proc/interrupts")
CONFIG_DIRS = ("/etc/default/grub.d", "/boot/loader/entries", "/etc/modules-load.d", "/etc/modprobe.d",
               "/etc/hostdev/bindings.d", "/etc/mdevctl.d")
PCI_IDS = ("/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids")  # pciids.SEARCH_PATHS
# Programs whose presence decides a plan (Host.which): recorded as placeholders, never run.
TOOLS = ("update-grub", "grub-mkconfig", "grub2-mkconfig", "grubby", "update-initramfs", "dracut", "mkinitcpio",
         "modprobe", "mdevctl", "virsh")
PLACEHOLDER = b"#!/bin/sh\n# recorded by hostdev record: present on the recorded host (never run)\n"


@dataclass(frozen=True)
class Member:
    """One entry of a recording: ``kind`` "file" (``data``), "dir" or "link" (``target``, relative)."""

    kind: str
    data: bytes = b""
    target: str = ""
    mode: int = 0o644


class Recorder:
    """Collects the members of a recording of ``host``; ``record()`` returns them by host path."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.members: Dict[str, Member] = {}
        self.devices: set = set()   # host paths of recorded device directories

    # ------------------------------------------------------------ collecting
    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(path)
        self.members[path] = Member("file", data, mode=mode)

    def mkdir(self, path: str) -> None:
        self._parents(path)
        if path not in self.members:
            self.members[path] = Member("dir", mode=0o755)

    def _parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in ("/", "") and parent not in self.members:
            self.members[parent] = Member("dir", mode=0o755)
            parent = posixpath.dirname(parent)

    def link(self, path: str, target: str) -> None:
        """``path`` → ``target`` (host paths), stored relative as sysfs stores it."""
        if path in self.members:
            return
        self._parents(path)
        self.members[path] = Member("link", target=posixpath.relpath(target, posixpath.dirname(path)))

    def copy(self, path: str, mode: int = 0o644, limit: int = MAX_MEMBER_BYTES) -> bool:
        data = self.host.read_bytes(path)
        if data is None or len(data) > limit:
            return False
        self.put(path, data, mode)
        return True

    def copy_attrs(self, directory: str, names: Iterable[str], write_only: Iterable[str] = ()) -> None:
        for name in names:
            self.copy(f"{directory}/{name}")
        write_only = list(write_only)
        present = set(self.host.listdir(directory)) if write_only else set()
        for name in write_only:
            if name in present:
                self.put(f"{directory}/{name}", b"", 0o200)

    def resolve(self, path: str) -> str:
        return self.host.resolve(path)

    # ------------------------------------------------------------ what is recorded
    def record(self) -> Dict[str, Member]:
        addresses = self.host.listdir("/sys/bus/pci/devices")
        self.devices = {self.resolve(f"/sys/bus/pci/devices/{a}") for a in addresses}
        for addr in addresses:
            self.record_device(addr)
        self.record_drivers()
        self.record_groups()
        self.record_iommu_units()
        self.record_mdevs()
        self.record_modules()
        self.record_proc()
        self.record_use()
        self.record_config()
        for name in ("DMAR", "IVRS"):
            if name in self.host.listdir("/sys/firmware/acpi/tables"):
                self.put(f"/sys/firmware/acpi/tables/{name}", b"", 0o400)
        for name in ("drivers_probe", "rescan"):
            self.put(f"/sys/bus/pci/{name}", b"", 0o200)
        self.copy_attrs("/sys/bus/pci", ["drivers_autoprobe"])
        for path in ("/sys/firmware/efi", "/boot/efi/EFI"):
            if self.host.is_dir(path):
                self.mkdir(path)
        for name in self.host.listdir("/sys/devices/system/node"):
            if name.startswith("node"):
                self.copy_attrs(f"/sys/devices/system/node/{name}", ("cpulist",))
        return self.members

    def record_device(self, addr: str) -> None:
        path = self.resolve(f"/sys/bus/pci/devices/{addr}")
        self.mkdir(path)
        self.link(f"/sys/bus/pci/devices/{addr}", path)
        self.copy_attrs(path, DEVICE_ATTRS, write_only=WRITE_ONLY_ATTRS)
        for name in DEVICE_LINKS:
            if self.host.readlink(f"{path}/{name}") is not None:
                self.link(f"{path}/{name}", self.resolve(f"{path}/{name}"))
        for name in self.host.listdir(path):
            if name.startswith("virtfn"):
                self.link(f"{path}/{name}", self.resolve(f"{path}/{name}"))
        types = f"{path}/mdev_supported_types"
        for type_id in self.host.listdir(types):
            self.mkdir(f"{types}/{type_id}/devices")
            self.copy_attrs(f"{types}/{type_id}", MDEV_TYPE_ATTRS, write_only=("create",))
        if self.host.listdir(types):
            self.link(f"/sys/class/mdev_bus/{addr}", path)

    def record_mdevs(self) -> None:
        """Existing mdevs: their directory under the parent, type link, driver, group."""
        for uuid in self.host.listdir("/sys/bus/mdev/devices"):
            path = self.resolve(f"/sys/bus/mdev/devices/{uuid}")
            self.mkdir(path)
            self.link(f"/sys/bus/mdev/devices/{uuid}", path)
            self.copy_attrs(path, ("uevent",), write_only=("remove",))
            for name in ("mdev_type", "driver", "iommu_group", "subsystem"):
                if self.host.readlink(f"{path}/{name}") is not None:
                    self.link(f"{path}/{name}", self.resolve(f"{path}/{name}"))
            type_dir = self.resolve(f"{path}/mdev_type")
            self.link(f"{type_dir}/devices/{uuid}", path)
        for name in self.host.listdir("/sys/bus/mdev/drivers"):
            self.mkdir(f"/sys/bus/mdev/drivers/{name}")
            for entry in self.host.listdir(f"/sys/bus/mdev/drivers/{name}"):
                if entry.count("-") == 4:
                    self.link(f"/sys/bus/mdev/drivers/{name}/{entry}",
                              self.resolve(f"/sys/bus/mdev/drivers/{name}/{entry}"))

    def record_drivers(self) -> None:
        for name in self.host.listdir("/sys/bus/pci/drivers"):
            base = f"/sys/bus/pci/drivers/{name}"
            self.mkdir(base)
            self.copy_attrs(base, (), write_only=("bind", "unbind", "new_id", "remove_id", "uevent"))
            if self.host.readlink(f"{base}/module") is not None:
                module = self.resolve(f"{base}/module")
                self.mkdir(module)
                self.link(f"{base}/module", module)
            for entry in self.host.listdir(base):
                if entry.count(":") == 2 and self.resolve(f"{base}/{entry}") in self.devices:
                    self.link(f"{base}/{entry}", self.resolve(f"{base}/{entry}"))

    def record_groups(self) -> None:
        for group in self.host.listdir("/sys/kernel/iommu_groups"):
            base = f"/sys/kernel/iommu_groups/{group}"
            self.mkdir(f"{base}/devices")
            self.copy_attrs(base, ("type", "reserved_regions"))
            for member in self.host.listdir(f"{base}/devices"):
                target = self.resolve(f"{base}/devices/{member}")
                if target in self.devices or member.count("-") == 4:
                    self.link(f"{base}/devices/{member}", target)

    def record_iommu_units(self) -> None:
        for name in self.host.listdir("/sys/class/iommu"):
            target = self.resolve(f"/sys/class/iommu/{name}")
            self.mkdir(f"{target}/devices")
            self.link(f"/sys/class/iommu/{name}", target)

    def record_modules(self) -> None:
        for name in self.host.listdir("/sys/module"):
            base = f"/sys/module/{name}"
            self.mkdir(base)
            self.copy_attrs(base, ("initstate", "version"), write_only=("uevent",))
            self.copy_attrs(f"{base}/parameters", self.host.listdir(f"{base}/parameters"))
        release = (self.host.read_attr("/proc/sys/kernel/osrelease") or "").strip()
        if release and "/" not in release:
            for name in ("modules.dep", "modules.builtin", "modules.alias", "modules.softdep",
                         "modules.builtin.modinfo"):
                self.copy(f"/lib/modules/{release}/{name}")
            self.copy(f"/boot/config-{release}")

    def record_proc(self) -> None:
        for path in ("/proc/cmdline", "/proc/sys/kernel/osrelease", "/proc/modules"):
            self.copy(path, 0o444)
        text = (self.host.read_text("/proc/cpuinfo") or "")
        first = text.split("\n\n", 1)[0]
        keep = ("processor", "vendor_id", "cpu family", "model", "model name", "flags", "vmx flags")
        lines = [line for line in first.splitlines() if line.split(":", 1)[0].strip() in keep]
        if lines:
            self.put("/proc/cpuinfo", ("\n".join(lines) + "\n\n").encode(), 0o444)

    def record_use(self) -> None:
        """Routes, interfaces and their stacking, block devices and their stacking, block-device
        mounts and swap: the shapes the in-use interlocks follow (hostdev/hostuse.py)."""
        for path in ("/proc/net/route", "/proc/net/ipv6_route", "/proc/swaps"):
            self.copy(path, 0o444)
        for path in ("/proc/self/mountinfo", "/proc/mounts"):
            text = self.host.read_text(path) or ""
            # block-device mounts only (a device number with a major, or a /dev source): the rest
            # (proc, cgroup, tmpfs, overlay …) says nothing about PCI functions
            keep = [line for line in text.splitlines() if line.startswith("/dev/") or (
                path.endswith("mountinfo") and len(line.split()) > 2 and not line.split()[2].startswith("0:"))]
            if keep:
                self.put(path, ("\n".join(keep) + "\n").encode(), 0o444)
        for name in self.host.listdir("/sys/class/net"):
            self.record_netdev(name)
        for name in self.host.listdir("/sys/class/block"):
            self.record_blockdev(f"/sys/class/block/{name}")
        for name in self.host.listdir("/sys/block"):
            self.link(f"/sys/block/{name}", self.resolve(f"/sys/block/{name}"))
        for number in self.host.listdir("/sys/dev/block"):
            self.link(f"/sys/dev/block/{number}", self.resolve(f"/sys/dev/block/{number}"))

    def record_netdev(self, name: str) -> None:
        path = self.resolve(f"/sys/class/net/{name}")
        self.mkdir(path)
        self.link(f"/sys/class/net/{name}", path)
        self.copy_attrs(path, ("ifindex", "address", "operstate", "type", "mtu"))
        self.copy_attrs(f"{path}/bonding", ("slaves", "mode"))
        for entry in self.host.listdir(path):
            if entry in ("device", "master") or entry.startswith(("lower_", "upper_")):
                target = self.resolve(f"{path}/{entry}")
                self.mkdir(target)
                self.link(f"{path}/{entry}", target)
        for port in self.host.listdir(f"{path}/brif"):
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
            for entry in self.host.listdir(f"{path}/{kind}"):
                self.link(f"{path}/{kind}/{entry}", self.resolve(f"{path}/{kind}/{entry}"))
        if self.host.readlink(f"{path}/device") is not None:
            self.link(f"{path}/device", self.resolve(f"{path}/device"))

    def record_config(self) -> None:
        """/etc, /var/lib/hostdev, pci.ids, /dev/kvm and /dev/vfio, the tools: content, not links."""
        for path in CONFIG_FILES:
            self.copy(path)
        for directory in CONFIG_DIRS:
            self._copy_tree(directory, depth=2)
        for path in PCI_IDS:
            if self.copy(path):
                break
        for path in ["/dev/kvm", "/dev/vfio/vfio"] + [f"/dev/vfio/{n}" for n in self.host.listdir("/dev/vfio")]:
            if self.host.exists(path) and not self.host.is_dir(path):
                self.put(path, b"", 0o600)
        for tool in TOOLS:
            found = self.host.which(tool)
            if found:
                self.put(found, PLACEHOLDER, 0o755)

    def _copy_tree(self, directory: str, depth: int) -> None:
        for name in self.host.listdir(directory):
            path = f"{directory}/{name}"
            if self.host.is_dir(path):
                if depth > 1:
                    self._copy_tree(path, depth - 1)
            else:
                self.copy(path)


def record(host: Host) -> Dict[str, Member]:
    """The members of a recording of ``host``, by host path (read-only towards it)."""
    return Recorder(host).record()


def functions(members: Dict[str, Member]) -> int:
    """How many PCI functions a recording holds."""
    return sum(1 for p in members if p.startswith("/sys/bus/pci/devices/"))


def refuse_destination(path: str) -> Optional[str]:
    """Why a recording must not be written to ``path`` (a path on this machine), or None."""
    real = posixpath.normpath(path)
    for forbidden in ("/sys", "/proc", "/dev"):
        if real == forbidden or real.startswith(forbidden + "/"):
            return f"refusing to write a recording into {forbidden}"
    return None


# ---------------------------------------------------------------- opening (the bounded rules)
class RecordingError(UsageError):
    """An archive ``--root`` cannot open as a recording: names the file and what is wrong (exit 2)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"--root {source}: {problem}",
                         fix="give a file made by 'hostdev record', or a directory")
        self.source = source
        self.problem = problem


def check_member(source: str, name: str, kind: str, size: int, target: str = "") -> Optional[str]:
    """Validate one archive member (its name as stored, ``kind`` file/dir/link/other, its size,
    a link's target). Returns the host path it unpacks to (None for the manifest). Raises
    RecordingError for a name outside TOP, a ``..``, an absolute or escaping link, any other kind
    of member (hard link, device, fifo) or a member over MAX_MEMBER_BYTES."""
    if name == MANIFEST:
        if kind != "file":
            raise RecordingError(source, f"{MANIFEST} is not a plain file")
        return None
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or parts[0] != TOP or "" in parts[1:] or "\\" in name:
        raise RecordingError(source, f"member {name!r} is outside the recorded root")
    if kind not in ("file", "dir", "link"):
        raise RecordingError(source, f"member {name!r} is a {kind}, not a file, directory or symlink")
    if size > MAX_MEMBER_BYTES:
        raise RecordingError(source, f"member {name!r} is more than the {MAX_MEMBER_BYTES} bytes hostdev reads")
    path = "/" + "/".join(parts[1:])
    if kind == "link":
        if not target or target.startswith("/"):
            raise RecordingError(source, f"link {name!r} points to {target!r}: only relative links are recorded")
        if _climbs_out(posixpath.dirname(path), target):
            raise RecordingError(source, f"link {name!r} points outside the recorded root ({target})")
    return path


def _climbs_out(directory: str, target: str) -> bool:
    """True when following ``target`` from ``directory`` ever goes above the root."""
    depth = len([p for p in directory.split("/") if p])
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def check_totals(source: str, count: int, total: int) -> None:
    """Raises RecordingError when a recording has more than MAX_MEMBERS members or
    MAX_TOTAL_BYTES in all (checked as the members are read, before unpacking)."""
    if count > MAX_MEMBERS:
        raise RecordingError(source, f"more than {MAX_MEMBERS} members: not a recording hostdev made")
    if total > MAX_TOTAL_BYTES:
        raise RecordingError(source, f"more than {MAX_TOTAL_BYTES} bytes unpacked: not a recording hostdev made")


def archive_members(members: Dict[str, Member], manifest: bytes) -> List[Tuple[str, Member]]:
    """The archive's (name, member) list: the manifest first, then TOP/<path> in path order."""
    return [(MANIFEST, Member("file", manifest, mode=0o644))] + [
        (f"{TOP}{path}", member) for path, member in sorted(members.items())]

