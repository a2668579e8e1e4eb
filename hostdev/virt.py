"""Thin adapter around libvirt-python, imported only by the commands that need it.

libvirt-python is the optional extra ``hostdev[vm]``: it needs libvirt's C library and headers
to build, which a host that only binds devices does not want.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from .errors import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_REFUSED, EXIT_USAGE, HostdevError, HostEnvironmentError


def missing_libvirt_error(prefix: str, base_prefix: str, writable: bool) -> HostEnvironmentError:
    """The error for a missing libvirt-python, with the command that installs it where this
    hostdev runs: in a virtual environment (scripts/install.sh makes /opt/hostdev) the system's
    python3-libvirt is invisible, so the fix is the ``vm`` extra in that environment."""
    sudo = "" if writable else "sudo "
    if prefix != base_prefix:
        return HostEnvironmentError(
            f"libvirt-python is not installed in hostdev's virtual environment {prefix}",
            fix=f"{sudo}./scripts/install.sh --vm in hostdev's source tree (it installs libvirt-dev, pkg-config, "
                f"gcc and python3-dev, then the vm extra); or by hand: {sudo}apt install libvirt-dev pkg-config gcc "
                f"python3-dev && {sudo}{prefix}/bin/pip install 'libvirt-python>=7.0'")
    return HostEnvironmentError(
        "libvirt-python is not installed",
        fix=f"{sudo}apt install python3-libvirt (dnf install python3-libvirt on Fedora/RHEL), or pip install "
            "'hostdev[vm]' (needs libvirt-dev and pkg-config)")


def import_libvirt():
    """The ``libvirt`` module. Raises HostEnvironmentError (exit 4) naming what to install."""
    try:
        import libvirt  # lazy on purpose: start-up time, and an optional extra
    except ImportError:
        import os
        import sys

        raise missing_libvirt_error(sys.prefix, sys.base_prefix, os.access(sys.prefix, os.W_OK)) from None
    # libvirt's default handler prints every error to stderr ("libvirt: … error : Domain not
    # found"), expected lookups included; hostdev reports the errors it does not expect itself.
    libvirt.registerErrorHandler(_ignore_error, None)
    return libvirt


def _ignore_error(context, error) -> None:
    return None


def open_connection(uri: str):
    """A libvirt connection to ``uri``. Raises HostEnvironmentError when libvirt refuses."""
    libvirt = import_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostEnvironmentError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}",
                                   fix="is libvirtd (or virtqemud) running? systemctl start libvirtd") from None


# ---------------------------------------------------------------- vm test
class PassthroughError(HostdevError):
    """libvirt or QEMU could not give the device to the test domain. ``reason`` is a short id
    (docs/vm-test.md lists them); ``libvirt_message`` is libvirt's own text, kept whole."""

    def __init__(self, reason: str, message: str, *, fix: Optional[str] = None,
                 libvirt_message: Optional[str] = None, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message, fix=fix)
        self.reason = reason
        self.libvirt_message = libvirt_message
        self.exit_code = exit_code

    def to_dict(self) -> dict:
        return {**super().to_dict(), "reason": self.reason, "libvirt_message": self.libvirt_message}


CHECK_FIX = "run 'hostdev check' for the IOMMU, vfio and group checks"
BAR_FIX = "add video=efifb:off or initcall_blacklist=sysfb_init to the kernel arguments and reboot; " + CHECK_FIX
# Messages as libvirt 9 and QEMU 7 write them, most specific first. The QEMU ones arrive
# wrapped in libvirt's "internal error: qemu unexpectedly closed the monitor: … -device …: ".
_GROUP_RE = re.compile(r"group (\d+) is not viable")
_BAR_RE = re.compile(r"BAR (\d+): can't reserve")
_IN_USE_RE = re.compile(r"(?:PCI|Mediated) device (\S+) is in use by driver (\S+), domain (\S+)", re.I)


def first_line(message: str) -> str:
    """The first line of a multi-line libvirt message, without QEMU's timestamp prefixes."""
    return (message.strip().splitlines() or [""])[0].strip()


def explain(message: str, *, iommu_enabled: bool = True, vfio_loaded: bool = True) -> PassthroughError:
    """Turn libvirt's error text into a PassthroughError that says why and what to run next.

    ``iommu_enabled`` (/sys/kernel/iommu_groups has groups) and ``vfio_loaded`` (/dev/vfio/vfio
    exists) tell apart the two causes behind libvirt's "host doesn't support … passthrough"
    (qemu_hostdev.c qemuHostdevHostSupportsPassthroughVFIO checks exactly these two).
    """
    text = message or ""
    lower = text.lower()
    match = _GROUP_RE.search(text)
    if match:
        group = match.group(1)
        return PassthroughError(
            "group_not_viable", f"IOMMU group {group} is not viable: another device in it is on a host driver",
            fix=f"bind every endpoint of group {group} to vfio-pci (hostdev bind ADDR …); {CHECK_FIX}",
            libvirt_message=text)
    match = _BAR_RE.search(text)
    if match or "can't reserve" in lower:
        return PassthroughError(
            "bar_reserve", "a BAR of the device is reserved by another driver (often the firmware framebuffer)",
            fix=BAR_FIX,
            libvirt_message=text)
    match = _IN_USE_RE.search(text)
    if match:
        return PassthroughError(
            "in_use", f"{match.group(1)} is already given to domain {match.group(3)} ({match.group(2)})",
            fix=f"stop that domain first (virsh destroy {match.group(3)})", libvirt_message=text,
            exit_code=EXIT_REFUSED)
    if "device or resource busy" in lower:
        return PassthroughError(
            "busy", "the device or its IOMMU group is busy (held by another process, or a BAR could not be "
                    "reserved)",
            fix="look for 'can't reserve' in dmesg and for holders of /dev/vfio/N (hostdev bindings); " + CHECK_FIX,
            libvirt_message=text)
    if "doesn't support" in lower and "passthrough" in lower or "/dev/vfio/vfio" in lower \
            or "no iommu_group" in lower or "failed to load pci stub module" in lower:
        if not iommu_enabled or "no iommu_group" in lower:
            return PassthroughError(
                "no_iommu", "the IOMMU is off: the kernel made no IOMMU groups",
                fix="hostdev iommu enable (then reboot); " + CHECK_FIX, libvirt_message=text,
                exit_code=EXIT_ENVIRONMENT)
        if not vfio_loaded or "vfio" in lower:
            return PassthroughError(
                "no_vfio", "the vfio modules are not loaded (/dev/vfio/vfio is missing)",
                fix="modprobe vfio-pci (hostdev bind loads it); " + CHECK_FIX, libvirt_message=text,
                exit_code=EXIT_ENVIRONMENT)
        return PassthroughError("no_passthrough", "libvirt says this host cannot pass devices through",
                                fix=CHECK_FIX, libvirt_message=text, exit_code=EXIT_ENVIRONMENT)
    if "domaintype=kvm" in lower or "kvm is not available" in lower or "/dev/kvm" in lower:
        return PassthroughError(
            "no_kvm", "libvirt cannot run KVM domains here",
            fix="load kvm_intel or kvm_amd (enable virtualization in the firmware), or use --virt-type qemu",
            libvirt_message=text, exit_code=EXIT_ENVIRONMENT)
    if "mediated device" in lower and ("not found" in lower or "no such" in lower):
        return PassthroughError("mdev_missing", "the mediated device does not exist",
                                fix="hostdev mdev list shows the mdevs; hostdev mdev create makes one",
                                libvirt_message=text, exit_code=EXIT_USAGE)
    if "locked memory" in lower or "cannot allocate memory" in lower:
        return PassthroughError(
            "memory", "the domain's memory could not be allocated and locked (VFIO pins all guest memory)",
            fix="try a smaller --memory, or raise the memlock limit of libvirt's QEMU", libvirt_message=text)
    return PassthroughError("libvirt", f"libvirt could not start the test domain: {first_line(text)}",
                            fix=CHECK_FIX, libvirt_message=text)


def error_text(exc: BaseException) -> str:
    """libvirt's message for a libvirtError (its own field: ``str()`` may carry a prefix)."""
    getter = getattr(exc, "get_error_message", None)
    text = getter() if getter else None
    return text or str(exc)


class TestDomain:
    """A transient domain that exists only inside ``with``: created on entry, destroyed on exit
    (after an error, KeyboardInterrupt, or success) unless ``keep``. A domain that was being
    created when the interrupt came is found by name and destroyed too.

    ``create`` raises PassthroughError (explained); ``wait_running`` raises it on timeout or
    when the domain stops by itself.
    """

    def __init__(self, conn, name: str, xml: str, *, keep: bool = False, explain_facts: Optional[dict] = None):
        self.conn = conn
        self.name = name
        self.xml = xml
        self.keep = keep
        self.domain = None
        self.destroyed = False
        self.explain_facts = explain_facts or {}

    def __enter__(self) -> TestDomain:
        return self

    def create(self) -> None:
        libvirt = import_libvirt()
        try:
            self.conn.lookupByName(self.name)
        except libvirt.libvirtError:
            pass
        else:
            raise PassthroughError("exists", f"a domain named {self.name} already exists (a kept test?)",
                                   fix=f"virsh -c {self.conn.getURI()} destroy {self.name}", exit_code=EXIT_REFUSED)
        try:
            self.domain = self.conn.createXML(self.xml, 0)
        except libvirt.libvirtError as exc:
            raise explain(error_text(exc), **self.explain_facts) from None

    def wait_running(self, timeout: float, poll: float = 0.1) -> float:
        """Seconds until the domain was RUNNING. Raises PassthroughError."""
        import time

        libvirt = import_libvirt()
        started = time.monotonic()
        while True:
            try:
                state = self.domain.state()[0]
            except libvirt.libvirtError as exc:
                raise explain(error_text(exc), **self.explain_facts) from None
            if state == libvirt.VIR_DOMAIN_RUNNING:
                return time.monotonic() - started
            if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED):
                raise PassthroughError("stopped", f"the test domain {self.name} stopped by itself (state {state})",
                                       fix=f"read /var/log/libvirt/qemu/{self.name}.log; {CHECK_FIX}")
            if time.monotonic() - started > timeout:
                raise PassthroughError("timeout", f"the test domain {self.name} was not running after {timeout:g} s",
                                       fix="raise --timeout (a TCG domain starts slowly)")
            time.sleep(poll)

    def live_xml(self) -> str:
        return self.domain.XMLDesc(0)

    def guest_pci(self) -> Optional[dict]:
        """What QEMU shows the guest on its PCI buses: QEMU device id → ``vvvv:dddd``, from the
        QMP command query-pci (through libvirt_qemu). None when the driver has no QEMU monitor
        (test:///default, other hypervisors)."""
        reply = self.qmp("query-pci")
        return parse_query_pci(reply) if reply is not None else None

    def qmp(self, command: str, arguments: Optional[dict] = None) -> Optional[str]:
        """A QMP command's raw JSON reply (through libvirt_qemu), or None when the driver has no
        QEMU monitor or QEMU refused the command."""
        import json

        libvirt = import_libvirt()
        try:
            import libvirt_qemu  # part of libvirt-python; lazy like libvirt
        except ImportError:
            return None
        request = {"execute": command, **({"arguments": arguments} if arguments else {})}
        try:
            return libvirt_qemu.qemuMonitorCommand(self.domain, json.dumps(request), 0)
        except libvirt.libvirtError:
            return None

    def guest_bars(self) -> Optional[dict]:
        """QEMU device id → its BARs as the guest has them (query-pci ``regions``). None without a
        QEMU monitor."""
        reply = self.qmp("query-pci")
        return parse_query_pci_bars(reply) if reply is not None else None

    def guest_phys_bits(self) -> Optional[int]:
        """The guest CPU's physical address bits (QOM property ``phys-bits`` of the first vCPU),
        or None when QEMU does not say."""
        import json

        cpus = self.qmp("query-cpus-fast")
        try:
            path = json.loads(cpus)["return"][0]["qom-path"] if cpus else None
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        reply = self.qmp("qom-get", {"path": path, "property": "phys-bits"}) if path else None
        try:
            value = json.loads(reply)["return"] if reply else None
        except (ValueError, KeyError, TypeError):
            return None
        return value if isinstance(value, int) else None

    def is_active(self) -> bool:
        return bool(self.domain.isActive())

    def wait_stopped(self, timeout: float, poll: float = 0.2) -> bool:
        """Wait until the guest powered itself off (a transient domain then disappears); True
        when it did within ``timeout`` seconds."""
        import time

        libvirt = import_libvirt()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self.domain.isActive():
                    break
            except libvirt.libvirtError:
                break  # gone: on_poweroff=destroy removed the transient domain
            time.sleep(poll)
        else:
            return False
        self.destroyed = True
        return True

    def destroy(self) -> None:
        """Destroy the domain (libvirt then gives managed devices back). Idempotent."""
        libvirt = import_libvirt()
        if self.destroyed:
            return
        domain = self.domain
        if domain is None:
            try:
                domain = self.conn.lookupByName(self.name)
            except libvirt.libvirtError:
                self.destroyed = True
                return
        try:
            domain.destroy()
        except libvirt.libvirtError as exc:
            if domain.isActive():
                raise PassthroughError("destroy", f"could not destroy the test domain {self.name}: "
                                                  f"{first_line(error_text(exc))}",
                                       fix=f"virsh destroy {self.name}") from None
        self.destroyed = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.keep and exc_type is None:
            return
        if self.domain is None and exc_type is PassthroughError:
            return  # createXML refused: there is no domain (and a same-named one is not ours)
        self.destroy()


def parse_query_pci(reply: str) -> dict:
    """QEMU device id → ``vvvv:dddd`` for every device with an id in a QMP query-pci reply
    (qapi/pci.json: a list of buses with their devices; a bridge's PciBridgeInfo has ``bus``
    and, beside it, ``devices`` — on q35 every hostdev sits behind a pcie-root-port)."""
    import json

    found = {}

    def walk(devices):
        for device in devices or []:
            ids = device.get("id") or {}
            if device.get("qdev_id") and "vendor" in ids and "device" in ids:
                found[device["qdev_id"]] = f"{ids['vendor']:04x}:{ids['device']:04x}"
            walk((device.get("pci_bridge") or {}).get("devices"))

    for bus in json.loads(reply).get("return", []):
        walk(bus.get("devices"))
    return found


# QEMU's PCI_BAR_UNMAPPED: the address query-pci shows for a BAR the guest has not enabled
# (QEMU prints it unsigned; through libvirt_qemu it arrives as -1)
PCI_BAR_UNMAPPED = (1 << 64) - 1


class GuestBar(NamedTuple):
    """One BAR of a device as the guest's PCI bus has it (QMP query-pci ``regions``; qapi/pci.json
    PciMemoryRegion). ``address`` None: not mapped (no address programmed, or decoding off)."""

    index: int
    kind: str            # "memory" | "io"
    address: Optional[int]
    size: int
    is_64bit: bool
    prefetchable: bool


def parse_query_pci_bars(reply: str) -> dict:
    """QEMU device id → [GuestBar …] for every device with an id in a QMP query-pci reply."""
    import json

    found = {}

    def walk(devices):
        for device in devices or []:
            if device.get("qdev_id"):
                bars = []
                for region in device.get("regions") or []:
                    address = region.get("address")
                    # unmapped: QEMU's PCI_BAR_UNMAPPED, which libvirt's monitor passes on as -1
                    mapped = isinstance(address, int) and 0 < address < PCI_BAR_UNMAPPED
                    bars.append(GuestBar(region.get("bar", -1), region.get("type", ""), address if mapped else None,
                                         region.get("size", 0), bool(region.get("mem_type_64")),
                                         bool(region.get("prefetch"))))
                found[device["qdev_id"]] = bars
            walk((device.get("pci_bridge") or {}).get("devices"))

    for bus in json.loads(reply).get("return", []):
        walk(bus.get("devices"))
    return found
