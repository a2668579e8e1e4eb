"""SimKernel: applies sysfs writes and kernel-module commands to a fake root the way Linux does.

``Host(root, kernel=SimKernel(root))`` routes every ``write_attr`` to ``SimKernel.write`` and
every ``run`` to ``SimKernel.run``. The simulation changes the tree exactly as the kernel would
show it afterwards (links, uevent, /dev/vfio, /proc/modules …), so code reading it through Host
cannot tell it from a real machine. State the kernel keeps but sysfs does not show (dynamic
ids, driver registration order, what a driver created under its device) lives in this object.

Semantics follow Linux 6.1 (the QEMU guest's kernel); each errno names its source:
  drivers/base/bus.c      bind_store / unbind_store / drivers_probe_store
  drivers/base/dd.c       device_driver_attach, __device_attach_driver, really_probe
  drivers/base/driver.c   driver_set_override
  drivers/pci/pci-driver.c  pci_match_device, new_id_store, remove_id_store
  drivers/pci/pci-sysfs.c   sriov_numvfs_store (iov.c in 6.1), remove_store, reset_store
  drivers/vfio/pci/vfio_pci_core.c  vfio_pci_core_register_device
  drivers/vfio/vfio_main.c  vfio_group_find_or_alloc, vfio_unregister_group_dev
  drivers/vfio/mdev/mdev_sysfs.c create_store / remove_store, mdev_core.c mdev_device_create
  samples/vfio-mdev/mtty.c  mtty_probe
  drivers/pci/pci-driver.c  pci_dma_configure → drivers/iommu/iommu.c iommu_device_use_default_domain
                          (a host driver cannot bind into a group a VFIO user owns: EBUSY)
  drivers/iommu/iommu.c   iommu_group_claim_dma_owner (a VM cannot open a non-viable group: EBUSY)

Strict where the simulation does not know: a write to an attribute it has no model of raises
UnmodelledWrite, and a program it does not model raises UnhandledProgram unless the test gives
it a handler (``command_handlers``). Both are test-infrastructure errors, never OSErrors.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import shlex
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hostdev.host import PROGRAM_DIRS as PATH_DIRS  # the same lookup as Host.which
from hostdev.host import CommandResult

from . import catalog
from .builder import PCI_DEVICES, PCI_DRIVERS, PCIE_PORT_TYPES, READ_WRITE, FakeRoot, pcie_type_of

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ADDR_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
PAGE_SIZE = 4096
PCI_ANY_ID = 0xFFFFFFFF

# Tools that every Linux host has (kmod); any other program must exist in the fake root.
KMOD_TOOLS = {"modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod"}

# mdev parents' vendor driver → the mdev driver their mdevs bind to
PARENT_MDEV_DRIVER = {"nvidia": "nvidia-vgpu-vfio", "mtty": "mtty", "i915": "vfio_mdev"}
MTTY_PORTS = 24        # samples/vfio-mdev/mtty.c MAX_MTTYS
MTTY_TYPE_PORTS = {"mtty-1": 1, "mtty-2": 2}
VFIO_DRIVERS = {"vfio-pci"}
# Drivers that set driver_managed_dma (6.1: vfio-pci, pci-stub, pcieport): binding them takes no
# DMA-ownership count of the IOMMU group, so they neither block a VFIO user from claiming the
# group nor are refused while one holds it (drivers/pci/pci-driver.c pci_dma_configure).
DMA_MANAGED_DRIVERS = VFIO_DRIVERS | {"pci-stub", "pcieport"}


class UnmodelledWrite(RuntimeError):
    """A write to a sysfs attribute the simulation has no model for. Linux would run that
    attribute's store(), which may refuse the value or change state the simulation does not
    show; storing the value as text would pretend it succeeded. Model it here first. Not an
    OSError: no code under test may catch it as a kernel answer."""


class UnhandledProgram(RuntimeError):
    """A program present in the fake root that the simulation does not model (mdevctl,
    systemctl, udevadm …). Running it must not "succeed" silently: a test that expects hostdev
    to run it gives it a handler, ``kernel.command_handlers[name] = fn(argv) -> CommandResult``."""


class KernelWouldBlock(RuntimeError):
    """The write would block forever on a real host (e.g. unbinding a device a VM has open:
    vfio_unregister_group_dev waits for the last close, 6.1 drivers/vfio/vfio_main.c
    "Device is currently in use, task ... blocked until device is released"). A test that sees
    this found a missing interlock; it is deliberately not an OSError."""


class SimulatedDisaster(RuntimeError):
    """The write would take down the host (unbinding the controller of a mounted filesystem
    or active swap). Not an OSError: the kernel would not refuse, the machine would break."""


@dataclass
class Dev:
    """A PCI function as sysfs shows it right now."""

    addr: str
    path: str
    vendor: int
    device: int
    sv: int
    sd: int
    klass: int
    driver: Optional[str]
    override: Optional[str]
    group: Optional[int]
    pcie_type: Optional[int]

    @property
    def is_bridge(self) -> bool:
        return (self.klass >> 8) == 0x0604


def _err(code: int, what: str) -> OSError:
    return OSError(code, f"{os.strerror(code)} ({what})")


def _sysfs_streq_value(value: str) -> str:
    """sysfs_streq: a trailing newline is ignored."""
    return value[:-1] if value.endswith("\n") else value


class SimKernel:
    """The simulated kernel of a fake root. See the module docstring."""

    def __init__(self, root: str) -> None:
        self.fr = FakeRoot.attach(root)
        self.root = self.fr.root
        self.writes: List[Tuple[str, str]] = []        # every write() call, in order
        self.commands: List[Tuple[str, ...]] = []      # every run() call, in order
        self.events: List[str] = []                    # notable side effects (route lost …)
        self.dynids: Dict[str, List[Tuple[int, int, int, int, int, int]]] = {}
        self.held: Dict[str, int] = {}                 # device/mdev → pid holding it open
        self.probe_failures: Dict[Tuple[str, str], int] = {}
        self.command_handlers: Dict[str, Callable[[Sequence[str]], CommandResult]] = {}
        self._saved: Dict[Tuple[str, str], dict] = {}  # (device path, driver) → driver children
        self._removed: List[dict] = []                 # PCI devices removed via ``remove``
        self._capacity: Dict[Tuple[str, str], int] = {}
        self._next_pid = 4242
        # devtmpfs creates /dev/vfio/N when vfio registers a group; False models a /dev that is
        # not devtmpfs (a container's static /dev): the node never appears
        self.create_dev_nodes = True
        drivers = self.fr.p(PCI_DRIVERS)
        self.driver_order: List[str] = sorted(os.listdir(drivers)) if os.path.isdir(drivers) else []
        self._remember_mdev_capacity()

    # ================================================================ public helpers
    def hold(self, target: str, *, pid: Optional[int] = None, comm: str = "qemu-system-x86") -> int:
        """A process (a running VM) opens a PCI function or mdev through VFIO.

        Writes /proc/PID/{comm,cmdline,fd/N} with fd N → /dev/vfio/GROUP as /proc shows it
        (an absolute link). Unbinding it then raises KernelWouldBlock, removing an mdev blocks
        (mtty) or gives EBUSY (vendor drivers), disabling SR-IOV under it gives EBUSY, and a host
        driver can no longer bind into its group (EBUSY). Returns the pid.

        Raises OSError as the open would fail on Linux 6.1: ENOENT without /dev/vfio/GROUP,
        EBUSY when the group is not viable (a member on a driver without driver_managed_dma:
        VFIO_GROUP_SET_CONTAINER → iommu_group_claim_dma_owner, drivers/iommu/iommu.c, fails
        while the group's owner_cnt is non-zero), ENODEV when the function is not on a vfio
        driver (VFIO_GROUP_GET_DEVICE_FD finds no vfio device of that name)."""
        self._check_vfio_open(target)
        if pid is None:
            pid = self._next_pid
            self._next_pid += 1
        self.held[target] = pid
        base = f"/proc/{pid}"
        self.fr.write(f"{base}/comm", f"{comm}\n")
        self.fr.write(f"{base}/cmdline", f"/usr/bin/{comm}\0-name\0guest\0")
        path = self._any_path(target)
        group = self._group_of(path) if path else None
        fd_target = f"/dev/vfio/{group}" if group is not None else "/dev/null"
        self.fr.mkdir(f"{base}/fd")
        real = self.fr.p(f"{base}/fd/{20 + len(os.listdir(self.fr.p(base + '/fd')))}")
        os.symlink(fd_target, real)
        return pid

    def _check_vfio_open(self, target: str) -> None:
        path = self._any_path(target)
        if path is None:
            raise _err(errno.ENODEV, f"no device {target!r}")
        group = self._group_of(path)
        if group is None:
            return  # no IOMMU (noiommu mode): nothing to check here
        if not self.fr.exists(f"/dev/vfio/{group}"):
            raise _err(errno.ENOENT, f"/dev/vfio/{group}")
        blockers = [(member, drv) for member, drv in self._group_drivers(group)
                    if drv is not None and drv not in DMA_MANAGED_DRIVERS and not self._is_mdev_driver(drv)]
        if blockers:
            raise _err(errno.EBUSY, f"group {group} is not viable: " +
                       ", ".join(f"{m} on {d}" for m, d in blockers))
        driver = self.fr.readlink(f"{path}/driver")
        if not driver or not (os.path.basename(driver) in VFIO_DRIVERS
                              or self._is_mdev_driver(os.path.basename(driver))):
            raise _err(errno.ENODEV, f"{target} is not a vfio device")

    @staticmethod
    def _is_mdev_driver(driver: str) -> bool:
        return driver in set(PARENT_MDEV_DRIVER.values()) | {"vfio_mdev"}

    def _group_drivers(self, group: int) -> List[Tuple[str, Optional[str]]]:
        base = f"/sys/kernel/iommu_groups/{group}/devices"
        try:
            members = sorted(os.listdir(self.fr.p(base)))
        except OSError:
            return []
        out = []
        for member in members:
            target = self.fr.readlink(f"{base}/{member}/driver")
            out.append((member, os.path.basename(target) if target else None))
        return out

    def _group_user(self, group: Optional[int]) -> Optional[int]:
        """The pid of a VFIO user holding ``group`` open (its DMA owner), or None."""
        if group is None:
            return None
        for target, pid in self.held.items():
            path = self._any_path(target)
            if path is not None and self._group_of(path) == group:
                return pid
        return None

    def register_driver(self, driver: str) -> None:
        """A driver registers (built in, or its module loads): last in the probe order, then
        offered every unbound device (driver_register → driver_attach)."""
        if driver not in self.driver_order:
            self.driver_order.append(driver)
        if self._autoprobe():
            self._driver_attach(driver)

    def release(self, target: str) -> None:
        """Undo ``hold`` (the VM closed the device)."""
        pid = self.held.pop(target, None)
        if pid is not None and pid not in self.held.values():
            self.fr.unlink(f"/proc/{pid}")

    def fail_probe(self, addr: str, driver: str, code: int) -> None:
        """Make ``driver``'s probe of ``addr`` fail with ``code`` (bind then returns it)."""
        self.probe_failures[(addr, driver)] = code

    # ================================================================ write()
    def write(self, path: str, value: str) -> None:
        """One write(2) of ``value`` to sysfs attribute ``path`` (a host path)."""
        self.writes.append((path, value))
        if isinstance(value, bytes):
            value = value.decode()
        canonical = self.fr.resolve(path)
        directory, name = os.path.split(canonical)
        real = self.fr.p(canonical)
        if not os.path.lexists(real):
            # open(2) of a missing attribute
            raise _err(errno.ENOENT, path)
        if os.path.isdir(real):
            raise _err(errno.EISDIR, path)
        if not os.stat(real).st_mode & 0o222:
            # kernfs_fop_open: no write permission bits / no store() → -EACCES
            raise _err(errno.EACCES, path)
        if canonical == "/sys/bus/pci/drivers_probe":
            return self._drivers_probe(value)
        if canonical == "/sys/bus/pci/rescan":
            return self._rescan(value)
        if canonical == "/sys/bus/mdev/drivers_probe":
            return None
        if directory.startswith(f"{PCI_DRIVERS}/"):
            driver = os.path.basename(directory)
            handler = {"bind": self._bind, "unbind": self._unbind, "new_id": self._new_id,
                       "remove_id": self._remove_id}.get(name)
            if handler:
                return handler(driver, value)
        if directory.startswith("/sys/bus/mdev/drivers/") and name in ("bind", "unbind"):
            return self._mdev_bind_unbind(os.path.basename(directory), name, value)
        if os.path.basename(os.path.dirname(directory)) == "mdev_supported_types" and name == "create":
            return self._mdev_create(directory, value)
        subsystem = self.fr.readlink(f"{directory}/subsystem") or ""
        if subsystem.endswith("bus/mdev") and name == "remove":
            return self._mdev_remove(directory, value)
        if subsystem.endswith("bus/pci"):
            addr = os.path.basename(directory)
            handler = {"driver_override": self._driver_override, "sriov_numvfs": self._sriov_numvfs,
                       "remove": self._remove, "reset": self._reset,
                       "sriov_drivers_autoprobe": self._bool_attr,
                       "d3cold_allowed": self._bool_attr, "reset_method": self._reset_method}.get(name)
            if handler:
                return handler(addr, value) if handler not in (self._bool_attr,) else handler(canonical, value)
        if canonical.startswith("/sys/module/") and "/parameters/" in canonical:
            self.fr.write(canonical, _sysfs_streq_value(value) + "\n", os.stat(real).st_mode & 0o777)
            return None
        if canonical == "/sys/bus/pci/drivers_autoprobe":
            return self._bool_attr(canonical, value)
        if not canonical.startswith("/sys/"):
            # not sysfs (a test writing /proc/sys or a file of the fake root through the kernel)
            raise UnmodelledWrite(f"{path} is not a sysfs attribute")
        raise UnmodelledWrite(f"no model of a write of {value!r} to {path}: add one to SimKernel.write")

    # ---------------------------------------------------------------- reading state
    def dev(self, addr: str) -> Optional[Dev]:
        link = self.fr.readlink(f"{PCI_DEVICES}/{addr}")
        if link is None:
            return None
        path = os.path.normpath(os.path.join(PCI_DEVICES, link))

        def hexattr(name: str) -> int:
            try:
                return int((self.fr.read(f"{path}/{name}") or "0").strip(), 16)
            except ValueError:
                return 0
        driver = self.fr.readlink(f"{path}/driver")
        override = (self.fr.read(f"{path}/driver_override") or "").rstrip("\n")
        config = None
        try:
            with open(self.fr.p(f"{path}/config"), "rb") as handle:
                config = handle.read(256)
        except OSError:
            pass
        return Dev(addr, path, hexattr("vendor"), hexattr("device"), hexattr("subsystem_vendor"),
                   hexattr("subsystem_device"), hexattr("class"),
                   os.path.basename(driver) if driver else None,
                   None if override in ("", "(null)") else override,
                   self._group_of(path), pcie_type_of(config))

    def _group_of(self, path: str) -> Optional[int]:
        target = self.fr.readlink(f"{path}/iommu_group")
        return int(os.path.basename(target)) if target else None

    def _any_path(self, target: str) -> Optional[str]:
        if ADDR_RE.match(target):
            d = self.dev(target)
            return d.path if d else None
        try:
            return self.fr.mdev_path(target)
        except KeyError:
            return None

    def _addresses(self) -> List[str]:
        try:
            return sorted(os.listdir(self.fr.p(PCI_DEVICES)))
        except OSError:
            return []

    def _driver_loaded(self, driver: str) -> bool:
        return os.path.isdir(self.fr.p(f"{PCI_DRIVERS}/{driver}"))

    # ---------------------------------------------------------------- matching and probing
    def _static_ids(self, driver: str):
        module = catalog.module_for_driver(driver)
        if module is not None:
            return module.pci_ids, module.override_only
        return catalog.CORE_DRIVERS.get(driver, ()), False

    @staticmethod
    def _id_matches(entry, dev: Dev) -> bool:
        vendor, device, klass, mask = entry[:4]
        return ((vendor is None or vendor == dev.vendor) and (device is None or device == dev.device)
                and (dev.klass & mask) == (klass & mask))

    def matches(self, driver: str, dev: Dev) -> bool:
        """pci_match_device (6.1 drivers/pci/pci-driver.c)."""
        # "When driver_override is set, only bind to the matching driver"
        if dev.override is not None and dev.override != driver:
            return False
        for vendor, device, sv, sd, klass, mask in self.dynids.get(driver, []):
            if ((vendor == PCI_ANY_ID or vendor == dev.vendor) and (device == PCI_ANY_ID or device == dev.device)
                    and (sv == PCI_ANY_ID or sv == dev.sv) and (sd == PCI_ANY_ID or sd == dev.sd)
                    and (dev.klass & mask) == (klass & mask)):
                return True
        table, override_only = self._static_ids(driver)
        for entry in table:
            if self._id_matches(entry, dev):
                if not override_only or dev.override is not None:
                    return True
        # driver_override names this driver: match with pci_device_id_any
        return dev.override == driver

    def _probe_error(self, driver: str, dev: Dev) -> int:
        """0, or the errno the driver's probe() returns for this device."""
        forced = self.probe_failures.get((dev.addr, driver))
        if forced:
            return forced
        if driver not in DMA_MANAGED_DRIVERS and self._group_user(dev.group) is not None:
            # pci_dma_configure → iommu_device_use_default_domain (drivers/iommu/iommu.c, 6.1):
            # a kernel driver cannot take a device whose group a VFIO user owns → -EBUSY
            return errno.EBUSY
        if driver == "pcieport" and dev.pcie_type is not None and dev.pcie_type not in PCIE_PORT_TYPES:
            return errno.ENODEV  # pcie_portdrv_probe: not a root/upstream/downstream port
        if driver in VFIO_DRIVERS:
            if dev.is_bridge:
                # vfio_pci_core_register_device: hdr_type != PCI_HEADER_TYPE_NORMAL → -EINVAL
                return errno.EINVAL
            if int((self.fr.read(f"{dev.path}/sriov_numvfs") or "0").strip() or 0):
                # "Cannot bind to PF with SR-IOV enabled" → -EBUSY
                return errno.EBUSY
            if dev.group is None and (self.fr.read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
                                      or "N").strip() not in ("Y", "1"):
                # vfio_group_find_or_alloc: no iommu_group and no noiommu mode → -EINVAL
                return errno.EINVAL
        return 0

    def _really_bind(self, driver: str, dev: Dev) -> None:
        """driver_sysfs_add + what the driver's probe creates."""
        self.fr.bind(dev.addr, driver)
        self._restore_children(dev, driver)
        if driver in VFIO_DRIVERS and dev.group is not None:
            # the vfio group chardev appears with the first vfio device of the group
            self._vfio_node(dev.group)

    def _vfio_node(self, group: int) -> None:
        """vfio_group_alloc → cdev_device_add: devtmpfs shows /dev/vfio/GROUP."""
        if self.create_dev_nodes:
            self.fr.write(f"/dev/vfio/{group}", "", 0o600)

    def _attach(self, dev: Dev) -> bool:
        """device_attach: try the loaded drivers in registration order (dd.c
        __device_attach_driver: a probe error just moves on to the next driver)."""
        for driver in self.driver_order:
            if not self._driver_loaded(driver) or not self.matches(driver, dev):
                continue
            if self._probe_error(driver, dev):
                continue
            self._really_bind(driver, dev)
            return True
        return False

    def _driver_attach(self, driver: str) -> None:
        """driver_attach: offer every unbound device to a newly registered driver / new id."""
        for addr in self._addresses():
            dev = self.dev(addr)
            if dev and dev.driver is None and self.matches(driver, dev) and not self._probe_error(driver, dev):
                self._really_bind(driver, dev)

    # ---------------------------------------------------------------- bus attributes
    def _drivers_probe(self, value: str) -> None:
        addr = _sysfs_streq_value(value)
        dev = self.dev(addr)
        if dev is None:
            # drivers_probe_store: bus_find_device_by_name fails → -ENODEV
            raise _err(errno.ENODEV, f"no PCI device {addr!r}")
        if dev.driver is None:
            # bus_rescan_devices_helper → device_attach; "no driver matched" is success
            self._attach(dev)

    def _rescan(self, value: str) -> None:
        if _sysfs_streq_value(value).strip() not in ("1",):
            return None
        removed, self._removed = self._removed, []
        for snapshot in removed:
            self._restore_tree(snapshot)
            dev = self.dev(snapshot["addr"])
            if dev and self._autoprobe():
                self._attach(dev)
        return None

    def _autoprobe(self) -> bool:
        return (self.fr.read("/sys/bus/pci/drivers_autoprobe") or "1").strip() == "1"

    # ---------------------------------------------------------------- driver attributes
    def _bind(self, driver: str, value: str) -> None:
        addr = _sysfs_streq_value(value)
        dev = self.dev(addr)
        # bind_store: err = -ENODEV unless the device exists and driver_match_device()
        if dev is None or not self.matches(driver, dev):
            raise _err(errno.ENODEV, f"{driver} does not match {addr!r}")
        if dev.driver is not None:
            # __driver_probe_device: "if (dev->driver) return -EBUSY"
            raise _err(errno.EBUSY, f"{addr} is bound to {dev.driver}")
        code = self._probe_error(driver, dev)
        if code:
            # device_driver_attach returns probe errors as negative errnos
            raise _err(code, f"{driver} probe of {addr}")
        self._really_bind(driver, dev)

    def _unbind(self, driver: str, value: str) -> None:
        addr = _sysfs_streq_value(value)
        dev = self.dev(addr)
        # unbind_store: err = -ENODEV unless dev && dev->driver == drv
        if dev is None or dev.driver != driver:
            raise _err(errno.ENODEV, f"{addr!r} is not bound to {driver}")
        self._release_driver(dev)

    def _release_driver(self, dev: Dev) -> None:
        """device_release_driver plus what the driver's remove() tears down."""
        if dev.addr in self.held:
            raise KernelWouldBlock(f"unbinding {dev.addr} from {dev.driver} blocks: pid "
                                   f"{self.held[dev.addr]} has it open")
        self._check_disaster(dev)
        driver = dev.driver
        assert driver is not None
        # PF drivers disable SR-IOV in remove() (ice_remove → ice_free_vfs, vfio_pci_remove …)
        numvfs = int((self.fr.read(f"{dev.path}/sriov_numvfs") or "0").strip() or 0)
        if numvfs:
            for index in range(numvfs):
                vf = os.path.basename(self.fr.resolve(f"{dev.path}/virtfn{index}"))
                if vf in self.held:
                    raise KernelWouldBlock(f"unbinding PF {dev.addr} removes VF {vf}, which pid "
                                           f"{self.held[vf]} has open")
            self.fr.set_numvfs(dev.addr, 0)
        self._remove_mdevs_of(dev.path)
        self._save_children(dev, driver)
        self.fr.unbind(dev.addr)
        if driver in VFIO_DRIVERS and dev.group is not None:
            self._maybe_drop_vfio_group(dev.group)

    def _maybe_drop_vfio_group(self, group: int) -> None:
        members = os.listdir(self.fr.p(f"/sys/kernel/iommu_groups/{group}/devices")) \
            if self.fr.exists(f"/sys/kernel/iommu_groups/{group}/devices") else []
        for member in members:
            target = self.fr.readlink(f"/sys/kernel/iommu_groups/{group}/devices/{member}/driver")
            if target and os.path.basename(target) in VFIO_DRIVERS | set(PARENT_MDEV_DRIVER.values()):
                return
        self.fr.unlink(f"/dev/vfio/{group}")

    def _check_disaster(self, dev: Dev) -> None:
        mounts = (self.fr.read("/proc/mounts") or "") + (self.fr.read("/proc/swaps") or "")
        used = {line.split()[0].rsplit("/", 1)[-1] for line in mounts.splitlines()
                if line.startswith("/dev/")}
        for cls in ("/sys/class/block",):
            try:
                names = os.listdir(self.fr.p(cls))
            except OSError:
                continue
            for name in names:
                if name in used and self.fr.resolve(f"{cls}/{name}").startswith(dev.path + "/"):
                    raise SimulatedDisaster(f"unbinding {dev.addr} removes /dev/{name}, which is mounted "
                                            "or used as swap")

    def _new_id(self, driver: str, value: str) -> None:
        fields = _scan_hex(value, 7)
        if len(fields) < 2:
            raise _err(errno.EINVAL, f"new_id {value!r}")  # new_id_store: fields < 2
        vendor, device = fields[0], fields[1]
        sv = fields[2] if len(fields) > 2 else PCI_ANY_ID
        sd = fields[3] if len(fields) > 3 else PCI_ANY_ID
        klass = fields[4] if len(fields) > 4 else 0
        mask = fields[5] if len(fields) > 5 else 0
        if len(fields) != 7:
            # new_id_store: "if (pci_match_device(pdrv, pdev)) retval = -EEXIST" on a fake
            # pci_dev with these ids and no driver_override
            probe = Dev("", "", vendor, device, sv, sd, klass, None, None, None, None)
            if self.matches(driver, probe):
                raise _err(errno.EEXIST, f"{driver} already matches {value!r}")
        self.dynids.setdefault(driver, []).append((vendor, device, sv, sd, klass, mask))
        # pci_add_dynid → driver_attach: every unbound matching device is probed NOW
        self._driver_attach(driver)

    def _remove_id(self, driver: str, value: str) -> None:
        fields = _scan_hex(value, 6)
        if len(fields) < 2:
            raise _err(errno.EINVAL, f"remove_id {value!r}")
        vendor, device = fields[0], fields[1]
        sv = fields[2] if len(fields) > 2 else PCI_ANY_ID
        sd = fields[3] if len(fields) > 3 else PCI_ANY_ID
        klass = fields[4] if len(fields) > 4 else 0
        mask = fields[5] if len(fields) > 5 else 0
        ids = self.dynids.get(driver, [])
        for i, entry in enumerate(ids):
            ev, ed, esv, esd, ek, em = entry
            if (ev == vendor and ed == device and (sd == PCI_ANY_ID or esd == sd)
                    and (sv == PCI_ANY_ID or esv == sv) and (not klass or ek == klass)
                    and (not mask or em == mask)):
                del ids[i]
                return  # bound devices stay bound
        raise _err(errno.ENODEV, f"{driver} has no dynamic id {value!r}")  # retval = -ENODEV

    # ---------------------------------------------------------------- device attributes
    def _driver_override(self, addr: str, value: str) -> None:
        dev = self.dev(addr)
        assert dev is not None
        # driver_set_override (6.1 drivers/base/driver.c)
        if len(value) >= PAGE_SIZE - 1:
            raise _err(errno.EINVAL, "driver_override too long")
        value = value.split("\0", 1)[0]
        if value == "" or value.startswith("\n"):
            new = None       # empty string or "\n" clears the override
        else:
            new = value.split("\n", 1)[0]
        self.fr.attr(f"{dev.path}/driver_override", new if new is not None else "(null)", READ_WRITE)

    def _bool_attr(self, path: str, value: str) -> None:
        text = _sysfs_streq_value(value).strip().lower()
        if text in ("1", "y", "yes", "on", "true"):
            out = "1"
        elif text in ("0", "n", "no", "off", "false"):
            out = "0"
        else:
            raise _err(errno.EINVAL, f"{path}: {value!r}")  # kstrtobool
        self.fr.attr(path, out, READ_WRITE)

    def _reset_method(self, addr: str, value: str) -> None:
        dev = self.dev(addr)
        assert dev is not None
        self.fr.attr(f"{dev.path}/reset_method", _sysfs_streq_value(value), READ_WRITE)

    def _reset(self, addr: str, value: str) -> None:
        # reset_store: kstrtoul; val != 1 → -EINVAL
        try:
            val = int(_sysfs_streq_value(value), 0)
        except ValueError:
            raise _err(errno.EINVAL, f"reset {value!r}") from None
        if val != 1:
            raise _err(errno.EINVAL, f"reset {value!r}")
        self.events.append(f"reset {addr}")

    def _sriov_numvfs(self, addr: str, value: str) -> None:
        dev = self.dev(addr)
        assert dev is not None
        try:
            num = int(_sysfs_streq_value(value), 0)  # kstrtou16(buf, 0, &num_vfs)
        except ValueError:
            raise _err(errno.EINVAL, f"sriov_numvfs {value!r}") from None
        if not 0 <= num <= 0xFFFF:
            raise _err(errno.ERANGE, f"sriov_numvfs {value!r}")
        total = int((self.fr.read(f"{dev.path}/sriov_totalvfs") or "0").strip())
        if num > total:
            raise _err(errno.ERANGE, f"{num} > sriov_totalvfs {total}")  # sriov_numvfs_store
        current = int((self.fr.read(f"{dev.path}/sriov_numvfs") or "0").strip())
        if num == current:
            return
        if dev.driver is None:
            # "no driver bound to device; cannot configure SR-IOV" → -ENOENT
            raise _err(errno.ENOENT, f"{addr} has no driver")
        module = catalog.module_for_driver(dev.driver)
        if module is None or not module.sriov_configure:
            # "driver does not support SR-IOV configuration via sysfs" → -ENOENT
            raise _err(errno.ENOENT, f"{dev.driver} has no sriov_configure")
        if dev.driver == "vfio-pci" and (self.fr.read("/sys/module/vfio_pci/parameters/enable_sriov")
                                         or "N").strip() != "Y":
            raise _err(errno.ENOENT, "vfio-pci enable_sriov=N")  # vfio_pci_sriov_configure
        if num == 0:
            for index in range(current):
                vf = os.path.basename(self.fr.resolve(f"{dev.path}/virtfn{index}"))
                if vf in self.held:
                    # PF drivers refuse while VFs are assigned (ice_sriov_configure: pci_vfs_assigned → -EBUSY)
                    raise _err(errno.EBUSY, f"VF {vf} is in use")
                vdev = self.dev(vf)
                if vdev and vdev.driver:
                    self._release_driver(vdev)
            self.fr.set_numvfs(addr, 0)
            return
        if current:
            # "%d VFs already enabled. Disable before enabling %d VFs" → -EBUSY
            raise _err(errno.EBUSY, f"{current} VFs already enabled")
        added = self.fr.set_numvfs(addr, num)
        if (self.fr.read(f"{dev.path}/sriov_drivers_autoprobe") or "1").strip() == "1":
            for vf in added:
                vdev = self.dev(vf)
                if vdev:
                    self._attach(vdev)

    def _remove(self, addr: str, value: str) -> None:
        try:
            val = int(_sysfs_streq_value(value), 0)
        except ValueError:
            raise _err(errno.EINVAL, f"remove {value!r}") from None
        if not val:
            return
        dev = self.dev(addr)
        assert dev is not None
        if dev.driver:
            self._release_driver(dev)
        snapshot = self._snapshot_tree(dev)
        self.fr.leave_group(addr, dev.path)
        self.fr.unlink(f"{PCI_DEVICES}/{addr}")
        self.fr.unlink(dev.path)
        self._removed.append(snapshot)

    # ---------------------------------------------------------------- driver-created children
    _KEEP = {"power"}

    def _child_dirs(self, dev: Dev) -> List[str]:
        try:
            names = os.listdir(self.fr.p(dev.path))
        except OSError:
            return []
        out = []
        for name in names:
            real = self.fr.p(f"{dev.path}/{name}")
            if (os.path.isdir(real) and not os.path.islink(real) and name not in self._KEEP
                    and not ADDR_RE.match(name) and not UUID_RE.match(name)):
                out.append(name)
        return out

    def _save_children(self, dev: Dev, driver: str) -> None:
        """Remember and delete what the driver created under the device (net/, nvme/, drm/,
        mdev_supported_types/ …) and the class links into it; restored on the next bind."""
        children = self._child_dirs(dev)
        if not children:
            return
        snapshot: dict = {"files": [], "links": [], "class_links": [], "routes": []}
        prefixes = [f"{dev.path}/{c}" for c in children]
        for child in children:
            self._collect(f"{dev.path}/{child}", snapshot)
        for top in ("/sys/class", "/sys/block"):
            for dirpath, _dirs, files in os.walk(self.fr.p(top)):
                for name in files + _dirs:
                    real = os.path.join(dirpath, name)
                    if not os.path.islink(real):
                        continue
                    host = "/" + os.path.relpath(real, self.root)
                    resolved = self.fr.resolve(host)
                    if any(resolved == p or resolved.startswith(p + "/") for p in prefixes):
                        snapshot["class_links"].append((host, resolved))
        netdevs = [n for n in os.listdir(self.fr.p(f"{dev.path}/net"))] if "net" in children else []
        routes = (self.fr.read("/proc/net/route") or "").splitlines(keepends=True)
        if netdevs and routes:
            kept = [routes[0]] + [r for r in routes[1:] if r.split("\t", 1)[0] not in netdevs]
            snapshot["routes"] = [r for r in routes[1:] if r.split("\t", 1)[0] in netdevs]
            if snapshot["routes"]:
                self.events.append(f"routes lost with {', '.join(netdevs)}")
            self.fr.write("/proc/net/route", "".join(kept))
        for host, _ in snapshot["class_links"]:
            self.fr.unlink(host)
        for child in children:
            self.fr.unlink(f"{dev.path}/{child}")
        self._saved[(dev.path, driver)] = snapshot

    def _collect(self, host_dir: str, snapshot: dict) -> None:
        for dirpath, dirs, files in os.walk(self.fr.p(host_dir)):
            for name in files + dirs:
                real = os.path.join(dirpath, name)
                host = "/" + os.path.relpath(real, self.root)
                if os.path.islink(real):
                    snapshot["links"].append((host, os.readlink(real)))
                elif os.path.isfile(real):
                    with open(real, "rb") as handle:
                        snapshot["files"].append((host, handle.read(), os.stat(real).st_mode & 0o777))
                else:
                    snapshot["files"].append((host, None, 0))

    def _restore_children(self, dev: Dev, driver: str) -> None:
        snapshot = self._saved.pop((dev.path, driver), None)
        if not snapshot:
            return
        for host, data, mode in snapshot["files"]:
            if data is None:
                self.fr.mkdir(host)
            else:
                self.fr.write(host, data, mode)
        for host, target in snapshot["links"]:
            real = self.fr.p(host)
            os.makedirs(os.path.dirname(real), exist_ok=True)
            os.symlink(target, real)
        for host, resolved in snapshot["class_links"]:
            self.fr.symlink(host, resolved)
        if snapshot["routes"]:
            self.fr.write("/proc/net/route", (self.fr.read("/proc/net/route") or "") + "".join(snapshot["routes"]))
        if os.path.isdir(self.fr.p(f"{dev.path}/mdev_supported_types")):
            self._recompute_available(dev.path)

    def _snapshot_tree(self, dev: Dev) -> dict:
        snapshot: dict = {"addr": dev.addr, "path": dev.path, "files": [], "links": [],
                          "group": dev.group, "class_links": [], "routes": []}
        self._collect(dev.path, snapshot)
        snapshot["files"].insert(0, (dev.path, None, 0))
        snapshot["links"] = [(h, t) for h, t in snapshot["links"]
                             if not h.endswith("/iommu_group") and not h.endswith("/iommu")
                             and not h.endswith("/driver")]
        return snapshot

    def _restore_tree(self, snapshot: dict) -> None:
        for host, data, mode in snapshot["files"]:
            if data is None:
                self.fr.mkdir(host)
            else:
                self.fr.write(host, data, mode)
        for host, target in snapshot["links"]:
            real = self.fr.p(host)
            if not os.path.lexists(real):
                os.symlink(target, real)
        self.fr.symlink(f"{PCI_DEVICES}/{snapshot['addr']}", snapshot["path"])
        self.fr.write_uevent(snapshot["addr"])
        if snapshot["group"] is not None:
            self.fr.join_group(snapshot["addr"], snapshot["group"])

    # ================================================================ mdev
    def _parent_of_type_dir(self, type_dir: str) -> str:
        return os.path.dirname(os.path.dirname(type_dir))

    def _mdev_driver_for(self, parent_path: str) -> str:
        target = self.fr.readlink(f"{parent_path}/driver")
        key = os.path.basename(target) if target else os.path.basename(parent_path)
        return PARENT_MDEV_DRIVER.get(key, "vfio_mdev")

    def _policy(self, parent_path: str) -> str:
        driver = self._mdev_driver_for(parent_path)
        if driver == "mtty":
            return "mtty"
        if driver == "nvidia-vgpu-vfio":
            return "homogeneous"
        return "independent"

    def _mdevs_of(self, parent_path: str) -> List[Tuple[str, str]]:
        """(uuid, type id) of every mdev under ``parent_path``."""
        out = []
        try:
            names = os.listdir(self.fr.p(parent_path))
        except OSError:
            return out
        for name in names:
            if UUID_RE.match(name):
                link = self.fr.readlink(f"{parent_path}/{name}/mdev_type")
                out.append((name, os.path.basename(link) if link else ""))
        return out

    def _types_of(self, parent_path: str) -> List[str]:
        try:
            return sorted(os.listdir(self.fr.p(f"{parent_path}/mdev_supported_types")))
        except OSError:
            return []

    def _remember_mdev_capacity(self) -> None:
        try:
            parents = os.listdir(self.fr.p("/sys/class/mdev_bus"))
        except OSError:
            return
        for name in parents:
            self._remember_parent(self.fr.resolve(f"/sys/class/mdev_bus/{name}"))

    def _remember_parent(self, parent_path: str) -> None:
        existing = self._mdevs_of(parent_path)
        for type_id in self._types_of(parent_path):
            key = (parent_path, type_id)
            if key in self._capacity:
                continue
            avail = int((self.fr.read(f"{parent_path}/mdev_supported_types/{type_id}/available_instances")
                         or "0").strip() or 0)
            mine = sum(1 for _, t in existing if t == type_id)
            if self._policy(parent_path) == "homogeneous" and existing and not mine:
                # a type blocked by another type's vGPUs: its capacity is unknown from the
                # tree; use the description's max_instance when present
                desc = self.fr.read(f"{parent_path}/mdev_supported_types/{type_id}/description") or ""
                m = re.search(r"max_instance=(\d+)", desc)
                self._capacity[key] = int(m.group(1)) if m else avail
            else:
                self._capacity[key] = avail + mine

    def _recompute_available(self, parent_path: str) -> None:
        self._remember_parent(parent_path)
        existing = self._mdevs_of(parent_path)
        policy = self._policy(parent_path)
        used_ports = sum(MTTY_TYPE_PORTS.get(t, 1) for _, t in existing)
        for type_id in self._types_of(parent_path):
            mine = sum(1 for _, t in existing if t == type_id)
            if policy == "mtty":
                # mtty_get_available: avail ports / ports per type
                value = (MTTY_PORTS - used_ports) // MTTY_TYPE_PORTS.get(type_id, 1)
            elif policy == "homogeneous" and existing and not mine:
                value = 0  # NVIDIA time-sliced vGPU: one type per GPU at a time
            else:
                value = max(self._capacity[(parent_path, type_id)] - mine, 0)
            self.fr.attr(f"{parent_path}/mdev_supported_types/{type_id}/available_instances", value)

    def _all_mdev_uuids(self) -> List[str]:
        try:
            return [n.lower() for n in os.listdir(self.fr.p("/sys/bus/mdev/devices"))]
        except OSError:
            return []

    def _mdev_create(self, type_dir: str, value: str) -> None:
        # create_store: count must be UUID_STRING_LEN or +1, then guid_parse → -EINVAL
        if not (36 <= len(value) <= 37) or not UUID_RE.match(value[:36]):
            raise _err(errno.EINVAL, f"create {value!r}: not a UUID")
        uuid = value[:36].lower()  # dev_set_name(&mdev->dev, "%pUl", uuid): lower case
        if uuid in self._all_mdev_uuids():
            raise _err(errno.EEXIST, f"mdev {uuid} exists")  # mdev_device_create: duplicate
        parent = self._parent_of_type_dir(type_dir)
        type_id = os.path.basename(type_dir)
        self._remember_parent(parent)
        avail = int((self.fr.read(f"{type_dir}/available_instances") or "0").strip() or 0)
        policy = self._policy(parent)
        if avail <= 0:
            if policy == "mtty":
                raise _err(errno.ENOSPC, "mtty: no free ports")  # mtty_probe → -ENOSPC
            # mdev_device_create for parents without get_available: -EUSERS (6.1
            # mdev_core.c); NVIDIA's own error here is not documented: same errno assumed.
            raise _err(errno.EUSERS, f"{type_id}: no available instances")
        driver = self._mdev_driver_for(parent)
        self.fr.add_mdev(parent, type_id, uuid, driver=None)
        if os.path.isdir(self.fr.p(f"/sys/bus/mdev/drivers/{driver}")):
            self.fr.bind(uuid, driver, bus="mdev")
            group = self._group_of(f"{parent}/{uuid}")
            # the vendor driver registers a vfio device (emulated IOMMU): /dev/vfio/N appears
            self._vfio_node(group)
        self._recompute_available(parent)

    def _mdev_remove(self, mdev_dir: str, value: str) -> None:
        try:
            val = int(_sysfs_streq_value(value), 0)  # remove_store: kstrtoul
        except ValueError:
            raise _err(errno.EINVAL, f"remove {value!r}") from None
        if not val:
            return
        uuid = os.path.basename(mdev_dir)
        if uuid in self.held:
            # An open mdev: 6.1's in-tree drivers (mtty, mdpy, mbochs) block: remove_store →
            # mdev_device_remove → device_del → the driver's remove → vfio_unregister_group_dev
            # waits for the last close (drivers/vfio/vfio_main.c, "Device is currently in use,
            # task ... blocked until device is released"). NVIDIA's vendor driver (and
            # pre-5.13 mdev_device_remove_ops) refuse with -EBUSY instead.
            if self._policy(os.path.dirname(mdev_dir)) == "mtty":
                raise KernelWouldBlock(f"removing mdev {uuid} blocks: pid {self.held[uuid]} has it open")
            raise _err(errno.EBUSY, f"mdev {uuid} is in use by pid {self.held[uuid]}")
        self._destroy_mdev(mdev_dir)
        self._recompute_available(os.path.dirname(mdev_dir))

    def _destroy_mdev(self, mdev_dir: str) -> None:
        uuid = os.path.basename(mdev_dir)
        parent = os.path.dirname(mdev_dir)
        driver = self.fr.readlink(f"{mdev_dir}/driver")
        if driver:
            self.fr.unbind(uuid, bus="mdev")
        type_link = self.fr.readlink(f"{mdev_dir}/mdev_type")
        group = self.fr.leave_group(uuid, mdev_dir)
        if group is not None:
            self.fr.unlink(f"/dev/vfio/{group}")
        if type_link:
            self.fr.unlink(f"{parent}/mdev_supported_types/{os.path.basename(type_link)}/devices/{uuid}")
        self.fr.unlink(f"/sys/bus/mdev/devices/{uuid}")
        self.fr.unlink(mdev_dir)

    def _remove_mdevs_of(self, parent_path: str) -> None:
        """mdev_unregister_parent removes every child mdev (the parent's driver is going)."""
        for uuid, _ in self._mdevs_of(parent_path):
            if uuid in self.held:
                raise KernelWouldBlock(f"removing mdev {uuid} blocks: pid {self.held[uuid]} has it open")
            self._destroy_mdev(f"{parent_path}/{uuid}")

    def _mdev_bind_unbind(self, driver: str, action: str, value: str) -> None:
        uuid = _sysfs_streq_value(value).lower()
        try:
            path = self.fr.mdev_path(uuid)
        except KeyError:
            raise _err(errno.ENODEV, f"no mdev {uuid}") from None
        current = self.fr.readlink(f"{path}/driver")
        if action == "unbind":
            if not current or os.path.basename(current) != driver:
                raise _err(errno.ENODEV, f"{uuid} is not bound to {driver}")
            if uuid in self.held:
                raise KernelWouldBlock(f"unbinding mdev {uuid}: pid {self.held[uuid]} has it open")
            self.fr.unbind(uuid, bus="mdev")
            group = self._group_of(path)
            if group is not None:
                self.fr.unlink(f"/dev/vfio/{group}")
        else:
            if current:
                raise _err(errno.EBUSY, f"{uuid} is bound")
            self.fr.bind(uuid, driver, bus="mdev")
            group = self._group_of(path)
            if group is not None:
                self._vfio_node(group)

    # ================================================================ run()
    def run(self, argv: Sequence[str]) -> CommandResult:
        """Run a command against the fake machine. Raises FileNotFoundError when the program
        does not exist there (kmod's tools always exist; others need a file in the root)."""
        argv = tuple(str(a) for a in argv)
        self.commands.append(argv)
        if not argv:
            raise FileNotFoundError(errno.ENOENT, "empty command")
        prog = os.path.basename(argv[0])
        if prog in self.command_handlers:
            return self.command_handlers[prog](argv)
        if prog not in KMOD_TOOLS and not self._program_exists(argv[0]):
            raise FileNotFoundError(errno.ENOENT, f"No such file or directory: '{argv[0]}'")
        handler = {
            "modprobe": self._cmd_modprobe, "insmod": self._cmd_insmod, "rmmod": self._cmd_rmmod,
            "lsmod": self._cmd_lsmod, "update-grub": self._cmd_grub_mkconfig,
            "grub-mkconfig": self._cmd_grub_mkconfig, "grub2-mkconfig": self._cmd_grub_mkconfig,
            "update-initramfs": self._cmd_initramfs, "dracut": self._cmd_initramfs, "grubby": self._cmd_grubby,
        }.get(prog)
        if handler is None:
            raise UnhandledProgram(f"{argv[0]} exists in the fake root but the simulation has no model of it "
                                   f"(argv {list(argv)}): give the test a handler, "
                                   f"kernel.command_handlers[{prog!r}] = fn")
        return handler(argv)

    def _program_exists(self, program: str) -> bool:
        if "/" in program:
            return os.path.isfile(self.fr.p(program))
        return any(os.path.isfile(self.fr.p(f"{d}/{program}")) for d in PATH_DIRS)

    # ---------------------------------------------------------------- kmod
    def _modules_dir(self) -> str:
        return f"/lib/modules/{self.fr.release}"

    def _dep_index(self) -> Dict[str, List[str]]:
        """modules.dep: module name → dependency names (nearest first)."""
        index: Dict[str, List[str]] = {}
        for line in (self.fr.read(f"{self._modules_dir()}/modules.dep") or "").splitlines():
            if ":" not in line:
                continue
            path, _, deps = line.partition(":")
            index[_mod_name(path)] = [_mod_name(d) for d in deps.split()]
        return index

    def _builtin(self) -> List[str]:
        text = self.fr.read(f"{self._modules_dir()}/modules.builtin") or ""
        return [_mod_name(line_) for line_ in text.splitlines() if line_.strip()]

    def _loaded(self, name: str) -> bool:
        return self.fr.exists(f"/sys/module/{name}/initstate")

    def _modprobe_conf_words(self):
        """The words of every line of /lib/modprobe.d/*.conf then /etc/modprobe.d/*.conf, comments
        stripped, in the order kmod reads them (modprobe.d(5))."""
        for directory in ("/lib/modprobe.d", "/etc/modprobe.d"):
            try:
                files = sorted(f for f in os.listdir(self.fr.p(directory)) if f.endswith(".conf"))
            except OSError:
                continue
            for fname in files:
                for line in (self.fr.read(f"{directory}/{fname}") or "").splitlines():
                    yield line.split("#", 1)[0].split()

    def _options(self, name: str) -> Dict[str, str]:
        """``options NAME k=v`` lines of /etc/modprobe.d and /lib/modprobe.d (modprobe.d(5))."""
        out: Dict[str, str] = {}
        for words in self._modprobe_conf_words():
            if len(words) >= 3 and words[0] == "options" and catalog.normalize(words[1]) == name:
                for word in words[2:]:
                    key, _, val = word.partition("=")
                    out[key] = val
        return out

    def _blacklisted(self, name: str) -> bool:
        return any(len(words) == 2 and words[0] == "blacklist" and catalog.normalize(words[1]) == name
                   for words in self._modprobe_conf_words())

    def _resolve_alias(self, alias: str) -> List[str]:
        out = []
        for line in (self.fr.read(f"{self._modules_dir()}/modules.alias") or "").splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "alias" and fnmatch.fnmatchcase(alias, words[1]):
                out.append(words[2])
        return out

    def _load(self, name: str, params: Dict[str, str]) -> None:
        """Load one module whose dependencies are loaded (init_module)."""
        module = catalog.MODULES.get(name)
        if module is None:
            raise _ModError(f"could not insert '{name}': Invalid module format")
        merged = dict(self._options(name))
        merged.update(params)
        self.fr.register_module(name, params=merged)
        for driver in filter(None, (module.pci_driver,)):
            if driver not in self.driver_order:
                self.driver_order.append(driver)
        if name == "mtty":
            self._mtty_init()
        if module.pci_driver and self._autoprobe():
            self._driver_attach(module.pci_driver)
        if name == "vfio_pci" and merged.get("ids"):
            # vfio_pci_fill_ids: "ids=vendor:device[:subvendor[:subdevice[:class[:class_mask]]]],…"
            for entry in merged["ids"].split(","):
                parts = [int(p, 16) if p else PCI_ANY_ID for p in entry.split(":")]
                if len(parts) < 2:
                    continue
                while len(parts) < 4:
                    parts.append(PCI_ANY_ID)
                while len(parts) < 6:
                    parts.append(0)
                self.dynids.setdefault("vfio-pci", []).append(tuple(parts[:6]))  # type: ignore[arg-type]
            self._driver_attach("vfio-pci")

    def _mtty_init(self) -> None:
        """mtty_dev_init: a virtual ``mtty`` device, class mtty, and an mdev parent."""
        path = "/sys/devices/virtual/mtty/mtty"
        self.fr.mkdir(f"{path}/power")
        self.fr.attr(f"{path}/uevent", "", READ_WRITE)
        self.fr.symlink(f"{path}/subsystem", "/sys/class/mtty")
        self.fr.symlink("/sys/class/mtty/mtty", path)
        from .scenarios import MTTY_TYPES
        self.fr.add_mdev_parent(path, MTTY_TYPES, class_name="mtty")
        self._remember_parent(path)

    def _unload(self, name: str) -> None:
        module = catalog.MODULES[name]
        if module.pci_driver:
            for addr in self._addresses():
                dev = self.dev(addr)
                if dev and dev.driver == module.pci_driver:
                    self._release_driver(dev)
            self.dynids.pop(module.pci_driver, None)
        if name == "mtty":
            self._remove_mdevs_of("/sys/devices/virtual/mtty/mtty")
            self.fr.unlink("/sys/class/mdev_bus/mtty")
            self.fr.unlink("/sys/class/mtty")
            self.fr.unlink("/sys/devices/virtual/mtty")
        self.fr.unregister_module(name)

    def _in_use(self, name: str) -> Optional[str]:
        """Why ``name`` cannot be unloaded, or None (kernel/module/main.c delete_module: -EWOULDBLOCK
        while refcnt > 0; holders are modules that depend on it)."""
        try:
            holders = os.listdir(self.fr.p(f"/sys/module/{name}/holders"))
        except OSError:
            holders = []
        if holders:
            return ",".join(sorted(holders))
        module = catalog.MODULES.get(name)
        driver = module.pci_driver or module.mdev_driver if module else None
        if driver:
            for target in self.held:
                path = self._any_path(target)
                link = self.fr.readlink(f"{path}/driver") if path else None
                if link and os.path.basename(link) == driver:
                    return ""
        return None

    def _cmd_modprobe(self, argv: Sequence[str]) -> CommandResult:
        remove = quiet = all_ = use_blacklist = first_time = dry_run = False
        args: List[str] = []
        for arg in argv[1:]:
            if arg in ("-r", "--remove"):
                remove = True
            elif arg in ("-q", "--quiet"):
                quiet = True
            elif arg in ("-a", "--all"):
                all_ = True
            elif arg in ("-b", "--use-blacklist"):
                use_blacklist = True
            elif arg == "--first-time":
                first_time = True
            elif arg in ("-n", "--dry-run", "--show"):
                dry_run = True
            elif arg in ("-v", "--verbose", "-s", "--syslog"):
                continue
            elif arg.startswith("-"):
                return CommandResult(tuple(argv), 1, "", f"modprobe: ERROR: unknown option '{arg}'\n")
            else:
                args.append(arg)
        if not args:
            return CommandResult(tuple(argv), 1, "", "modprobe: ERROR: missing parameters. See -h.\n")
        if all_ or remove:
            names, params = args, {}
        else:
            names = [args[0]]
            params = dict(a.partition("=")[::2] for a in args[1:])
        errors: List[str] = []
        for raw in names:
            try:
                if remove:
                    self._modprobe_remove(catalog.normalize(raw), dry_run)
                else:
                    self._modprobe_load(raw, params, use_blacklist, first_time, dry_run)
            except _ModError as exc:
                errors.append(str(exc))
        if errors:
            return CommandResult(tuple(argv), 1, "",
                                 "" if quiet and not remove else "".join(f"modprobe: {e}\n" for e in errors))
        return CommandResult(tuple(argv), 0, "", "")

    def _modprobe_load(self, raw: str, params: Dict[str, str], use_blacklist: bool, first_time: bool,
                       dry_run: bool) -> None:
        if raw.startswith("pci:"):
            for name in self._resolve_alias(raw):
                if use_blacklist and self._blacklisted(name):
                    continue
                self._modprobe_load(name, {}, False, False, dry_run)
            return
        name = catalog.normalize(raw)
        if name in self._builtin():
            if first_time:
                raise _ModError(f"ERROR: could not insert '{name}': Module already in kernel")
            return
        deps = self._dep_index()
        if name not in deps:
            raise _ModError(f"FATAL: Module {raw} not found in directory {self._modules_dir()}")
        if self._loaded(name):
            if first_time:
                raise _ModError(f"ERROR: could not insert '{name}': Module already in kernel")
            return
        if dry_run:
            return
        for dep in reversed(deps[name]):
            if not self._loaded(dep) and dep not in self._builtin():
                self._load(dep, {})
        self._load(name, params)
        # "softdep X post: Y" (modules.softdep, modprobe.d) of the module and its dependencies
        softdeps = self._softdeps()
        for mod in list(reversed(deps[name])) + [name]:
            for soft in softdeps.get(mod, []):
                if soft in deps and not self._loaded(soft):
                    self._modprobe_load(soft, {}, False, False, dry_run)

    def _softdeps(self) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        softdep_file = self.fr.read(f"{self._modules_dir()}/modules.softdep") or ""
        lines = [line.split("#", 1)[0].split() for line in softdep_file.splitlines()]
        for words in lines + list(self._modprobe_conf_words()):
            if len(words) >= 3 and words[0] == "softdep" and "post:" in words:
                post = words[words.index("post:") + 1:]
                post = [w for w in post if not w.endswith(":")]
                out.setdefault(catalog.normalize(words[1]), []).extend(catalog.normalize(w) for w in post)
        return out

    def _modprobe_remove(self, name: str, dry_run: bool) -> None:
        if name in self._builtin():
            raise _ModError(f"FATAL: Module {name} is builtin.")
        if not self._loaded(name):
            raise _ModError(f"FATAL: Module {name} is not in kernel.")
        if self._in_use(name) is not None:
            raise _ModError(f"FATAL: Module {name} is in use.")
        if dry_run:
            return
        index = self._dep_index()
        softdeps = self._softdeps()
        self._unload(name)
        # modprobe -r also removes the dependencies (and their "softdep post:" modules) that
        # nobody uses any more; repeat until nothing more can go
        candidates: List[str] = []
        for dep in index.get(name, []):
            candidates += softdeps.get(dep, []) + [dep]
        candidates = softdeps.get(name, []) + candidates
        progress = True
        while progress:
            progress = False
            for dep in candidates:
                if self._loaded(dep) and self._in_use(dep) is None:
                    self._unload(dep)
                    progress = True

    def _cmd_insmod(self, argv: Sequence[str]) -> CommandResult:
        if len(argv) < 2:
            return CommandResult(tuple(argv), 1, "", "insmod: ERROR: missing filename.\n")
        path = argv[1]
        params = dict(a.partition("=")[::2] for a in argv[2:])
        if not os.path.isfile(self.fr.p(path)):
            return CommandResult(tuple(argv), 1, "",
                                 f"insmod: ERROR: could not load module {path}: No such file or directory\n")
        name = _mod_name(path)
        module = catalog.MODULES.get(name)
        if module is None:
            return CommandResult(tuple(argv), 1, "",
                                 f"insmod: ERROR: could not insert module {path}: Invalid module format\n")
        if self._loaded(name):
            return CommandResult(tuple(argv), 1, "",
                                 f"insmod: ERROR: could not insert module {path}: File exists\n")
        if any(not self._loaded(d) and d not in self._builtin() for d in module.deps):
            return CommandResult(tuple(argv), 1, "",
                                 f"insmod: ERROR: could not insert module {path}: Unknown symbol in module\n")
        self._load(name, params)
        return CommandResult(tuple(argv), 0, "", "")

    def _cmd_rmmod(self, argv: Sequence[str]) -> CommandResult:
        names = [a for a in argv[1:] if not a.startswith("-")]
        for raw in names:
            name = catalog.normalize(os.path.basename(raw).split(".ko", 1)[0])
            if name in self._builtin():
                return CommandResult(tuple(argv), 1, "", f"rmmod: ERROR: Module {name} is builtin.\n")
            if not self._loaded(name):
                return CommandResult(tuple(argv), 1, "", f"rmmod: ERROR: Module {name} is not currently loaded\n")
            users = self._in_use(name)
            if users is not None:
                return CommandResult(tuple(argv), 1, "",
                                     f"rmmod: ERROR: Module {name} is in use{' by: ' + users if users else ''}\n")
            self._unload(name)
        return CommandResult(tuple(argv), 0, "", "")

    def _cmd_lsmod(self, argv: Sequence[str]) -> CommandResult:
        lines = ["Module                  Size  Used by"]
        for line in (self.fr.read("/proc/modules") or "").splitlines():
            f = line.split()
            if len(f) >= 4:
                lines.append(f"{f[0]:<24}{f[1]:>6}  {f[2]} {f[3].rstrip(',') if f[3] != '-' else ''}".rstrip())
        return CommandResult(tuple(argv), 0, "\n".join(lines) + "\n", "")

    # ---------------------------------------------------------------- bootloader / initramfs
    def _grub_settings(self) -> Dict[str, str]:
        settings: Dict[str, str] = {}
        files = ["/etc/default/grub"]
        try:
            files += [f"/etc/default/grub.d/{f}" for f in sorted(os.listdir(self.fr.p("/etc/default/grub.d")))
                      if f.endswith(".cfg")]
        except OSError:
            pass
        for host in files:
            try:  # sh reads bytes: a Latin-1 comment is no error for grub-mkconfig
                with open(self.fr.p(host), encoding="utf-8", errors="surrogateescape") as handle:
                    text = handle.read()
            except OSError:
                text = ""
            for line in text.splitlines():
                m = re.match(r"^\s*(GRUB_[A-Z_]+)=(.*)$", line)
                if not m:
                    continue
                try:
                    words = shlex.split(m.group(2))
                except ValueError:
                    continue
                value = " ".join(words)
                settings[m.group(1)] = value.replace(f"${m.group(1)}", settings.get(m.group(1), "")).strip()
        return settings

    def _cmd_grub_mkconfig(self, argv: Sequence[str]) -> CommandResult:
        prog = os.path.basename(argv[0])
        out = "/boot/grub2/grub.cfg" if prog == "grub2-mkconfig" else "/boot/grub/grub.cfg"
        if "-o" in argv:
            i = argv.index("-o")
            if i + 1 < len(argv):
                out = argv[i + 1]
        if prog != "update-grub" and "-o" not in argv:
            out = ""
        s = self._grub_settings()
        args = " ".join(x for x in (s.get("GRUB_CMDLINE_LINUX", ""), s.get("GRUB_CMDLINE_LINUX_DEFAULT", "")) if x)
        text = ("# DO NOT EDIT THIS FILE\n# It is automatically generated by grub-mkconfig (simulated)\n"
                "menuentry 'Linux' {\n"
                f"\tlinux\t/boot/vmlinuz-{self.fr.release} root=/dev/nvme0n1p2 ro {args}\n"
                f"\tinitrd\t/boot/initrd.img-{self.fr.release}\n}}\n")
        if not out:
            return CommandResult(tuple(argv), 0, text, "")
        self.fr.write(out, text)
        return CommandResult(tuple(argv), 0, "", "Generating grub configuration file ...\ndone\n")

    def _cmd_grubby(self, argv: Sequence[str]) -> CommandResult:
        """grubby --update-kernel=ALL --args=".." / --remove-args="..": edit the ``options`` line
        of every BLS entry (grubby's own behaviour on Fedora/RHEL 8+: add replaces a key's value)."""
        if "--update-kernel=ALL" not in argv:
            return CommandResult(tuple(argv), 64, "", "grubby: only --update-kernel=ALL is simulated\n")
        add = [a for x in argv if x.startswith("--args=") for a in x.split("=", 1)[1].split()]
        remove = [a for x in argv if x.startswith("--remove-args=") for a in x.split("=", 1)[1].split()]
        entries = "/boot/loader/entries"
        for name in sorted(os.listdir(self.fr.p(entries))):
            lines = (self.fr.read(f"{entries}/{name}") or "").splitlines()
            for i, line in enumerate(lines):
                if line.startswith("options "):
                    opts = [o for o in line.split()[1:] if o not in remove]
                    for a in add:
                        opts = [o for o in opts if o.split("=", 1)[0] != a.split("=", 1)[0]] + [a]
                    lines[i] = "options " + " ".join(opts)
            self.fr.write(f"{entries}/{name}", "\n".join(lines) + "\n")
        return CommandResult(tuple(argv), 0, "", "")

    def _cmd_initramfs(self, argv: Sequence[str]) -> CommandResult:
        prog = os.path.basename(argv[0])
        image = (f"/boot/initrd.img-{self.fr.release}" if prog == "update-initramfs"
                 else f"/boot/initramfs-{self.fr.release}.img")
        self.fr.write(image, b"\x1f\x8b simulated initramfs")
        msg = f"update-initramfs: Generating {image}\n" if prog == "update-initramfs" else ""
        return CommandResult(tuple(argv), 0, msg, "")


class _ModError(Exception):
    pass


def _mod_name(path: str) -> str:
    base = os.path.basename(path.strip())
    return catalog.normalize(base.split(".ko", 1)[0])


def _scan_hex(text: str, limit: int) -> List[int]:
    """sscanf(buf, "%x %x …"): leading hex fields until the first that does not parse."""
    out = []
    for word in text.split()[:limit]:
        try:
            out.append(int(word, 16))
        except ValueError:
            break
    return out
