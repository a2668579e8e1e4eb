"""``hostdev vm test``: prove that a device can be given to a VM, before KubeVirt tries.

Plan (what goes into the domain, refused up front when taking a device would hurt the host),
run (create a transient libvirt domain, wait for it to run, check the live XML and sysfs,
destroy it), verify (each device is back on the driver it had). The libvirt calls are in
virt.py, the XML in domainxml.py; this module reads sysfs through Host.
"""

from __future__ import annotations

import re
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

from . import domainxml, guestinit, hostuse, pci, readiness, rules, virt
from .domainxml import HostdevSource
from .errors import EXIT_ENVIRONMENT, RefusedError, UsageError
from .host import Host
from .model import PciAddress

MDEV_DEVICES = "/sys/bus/mdev/devices"
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Device(NamedTuple):
    """A device of the test and what was seen of it: the driver before the test, while the
    domain ran, and after it was destroyed (None: no driver; ``driver_after`` None also when
    not checked, see ``returned``)."""

    source: HostdevSource
    group: Optional[int]
    driver_before: Optional[str]
    override_before: Optional[str] = None
    driver_running: Optional[str] = None
    attached: bool = False
    held_by: tuple = ()
    guest_pci_id: Optional[str] = None
    driver_after: Optional[str] = None
    returned: Optional[bool] = None
    bars: tuple = ()        # GuestBarCheck per BAR of the host device, once the guest was asked

    def to_dict(self) -> dict:
        return {"type": self.source.kind, "address": self.source.address, "managed": self.source.managed,
                "iommu_group": self.group, "driver_before": self.driver_before,
                "driver_running": self.driver_running, "attached": self.attached, "held_by": list(self.held_by),
                "guest_pci_id": self.guest_pci_id, "bars": [b.to_dict() for b in self.bars],
                "driver_after": self.driver_after, "returned": self.returned}


class GuestBarCheck(NamedTuple):
    """One BAR of the host device and where the guest has it: ``guest_address`` None when the
    guest did not assign it; ``reachable`` False when it lies past the guest CPU's physical
    address width (the firmware programmed it where the guest cannot reach it)."""

    bar: readiness.Bar
    guest_address: Optional[int]
    reachable: Optional[bool]
    source: str = "qemu"   # "qemu" (query-pci) or "guest-kernel" (--boot's report)

    @property
    def ok(self) -> bool:
        return self.guest_address is not None and self.reachable is not False

    def to_dict(self) -> dict:
        return {"index": self.bar.index, "size": self.bar.size, "is_64bit": self.bar.is_64,
                "prefetchable": self.bar.prefetchable, "io": self.bar.is_io,
                "guest_address": None if self.guest_address is None else f"0x{self.guest_address:x}",
                "reachable": self.reachable, "source": self.source}


class TestPlan(NamedTuple):
    target: str                   # what the user named: a PCI address or an mdev UUID
    name: str                     # the domain name
    devices: List[Device]
    notes: List[str]

    @property
    def sources(self) -> List[HostdevSource]:
        return [d.source for d in self.devices]

    @property
    def managed(self) -> bool:
        return any(d.source.managed for d in self.devices)


def virt_type(host: Host) -> str:
    """"kvm" when /dev/kvm exists (kvm_intel or kvm_amd created it), else "qemu" (TCG)."""
    return "kvm" if host.exists("/dev/kvm") else "qemu"


def _mdev_driver(host: Host, uuid: str) -> Optional[str]:
    return host.link_name(f"{MDEV_DEVICES}/{uuid}/driver")


def _mdev_group(host: Host, uuid: str) -> Optional[int]:
    group = host.link_name(f"{MDEV_DEVICES}/{uuid}/iommu_group")
    return int(group) if group and group.isdigit() else None


def plan_pci(host: Host, address: str, force: bool = False) -> TestPlan:
    """The devices a test of ``address`` gives to the domain: the function and the other
    functions of its card in its IOMMU group (never bridges). A function already on a vfio
    driver goes in unmanaged (libvirt leaves its binding alone, as KubeVirt's domains do); one
    on a host driver goes in managed, after the interlocks of ``hostdev bind`` (boot VGA, root
    disk, routed NIC, open device nodes) — libvirt would unbind it.

    Raises UsageError, DeviceNotFoundError, RefusedError (interlocks, a partial group, a group
    held by another process).
    """
    dev = pci.get_device(host, address)
    why = rules.unbindable(dev, iommu_active=True)
    if why is not None and why.kind == "bridge":
        raise UsageError(why.message, fix="name the device behind it (hostdev devices)")
    if dev.iommu_group is None:
        raise virt.PassthroughError("no_iommu", f"{dev.address} has no IOMMU group: the IOMMU is off",
                                    fix="hostdev iommu enable (then reboot); " + virt.CHECK_FIX,
                                    exit_code=EXIT_ENVIRONMENT)
    # the group rules of `hostdev bind` (rules.py): the card's other functions go too, and the
    # rest of the group must leave it viable; interlocks for each function libvirt would take
    members = [m for m in (pci.read_device(host, a) for a in pci.group_members(host, dev.iommu_group)) if m]
    card = sorted([dev] + rules.same_card(dev, members), key=lambda d: PciAddress.parse(d.address))
    notes = [f"also attaching {d.address} ({d.pci_id}, on {d.driver or 'no driver'}): another function of the "
             f"same card in IOMMU group {dev.iommu_group}" for d in card if d.address != dev.address]
    for other in rules.group_blockers(members, [d.address for d in card]):
        if not force:
            raise RefusedError(f"{other.address} ({other.pci_id}, on {other.driver}) shares IOMMU group "
                               f"{dev.iommu_group} with {dev.address}: the group would not be viable",
                               fix=f"hostdev bind {other.address} first, or pass --force")
        notes.append(f"--force: {other.address} stays on {other.driver}; IOMMU group {dev.iommu_group} "
                     "will not be viable for VFIO")
    use = hostuse.host_use(host)
    for d in card:
        if not rules.is_vfio_driver(d.driver):
            reasons = hostuse.interlocks(host, d, use)
            if reasons and not force:
                raise RefusedError(f"refusing to take {reasons[0]}", fix="pass --force if you are sure")
            notes.extend(f"--force: {r}" for r in reasons)
    holders = hostuse.vfio_group_holders(host, dev.iommu_group, use)
    if holders:
        raise RefusedError(f"{dev.address} is in use: /dev/vfio/{dev.iommu_group} is held by {', '.join(holders)}",
                           fix="stop that VM or process first; a group is opened by one user at a time")
    devices = [Device(HostdevSource("pci", d.address, not rules.is_vfio_driver(d.driver)), d.iommu_group, d.driver,
                      d.driver_override) for d in card]
    for d in devices:
        if d.source.managed:
            notes.append(f"libvirt will move {d.source.address} from {d.driver_before or 'no driver'} to vfio-pci "
                         "for the test and give it back after (managed='yes')")
    return TestPlan(dev.address, domainxml.domain_name(dev.address), devices, notes)


def plan_mdev(host: Host, uuid: str) -> TestPlan:
    """The test of one mdev (model vfio-pci). Raises UsageError, RefusedError."""
    value = uuid.strip().lower()
    if not _UUID_RE.match(value):
        raise UsageError(f"invalid mdev UUID {uuid!r}", fix="use the form hostdev mdev list prints")
    if not host.exists(f"{MDEV_DEVICES}/{value}"):
        raise UsageError(f"no mdev {value} on this host", fix="hostdev mdev list shows them; hostdev mdev create")
    api = host.read_attr(f"{MDEV_DEVICES}/{value}/mdev_type/device_api")
    if api and api != "vfio-pci":
        raise UsageError(f"mdev {value} has device_api {api}; hostdev vm test attaches vfio-pci mdevs only",
                         fix="test vfio-ccw and vfio-ap devices with a guest of that architecture")
    group = _mdev_group(host, value)
    if group is not None:
        holders = hostuse.vfio_group_holders(host, group)
        if holders:
            raise RefusedError(f"mdev {value} is in use: /dev/vfio/{group} is held by {', '.join(holders)}",
                               fix="stop that VM first; an mdev is given to one VM at a time")
    device = Device(HostdevSource("mdev", value, False), group, _mdev_driver(host, value))
    return TestPlan(value, domainxml.domain_name(value), [device], [])


def _current_driver(host: Host, source: HostdevSource) -> Optional[str]:
    if source.kind == "mdev":
        return _mdev_driver(host, source.address)
    dev = pci.read_device(host, source.address)
    return dev.driver if dev else None


def check_running(host: Host, plan: TestPlan, live_xml: str, guest_pci: Optional[dict] = None) -> List[Device]:
    """Each device as the running domain has it: in the live XML, its driver (vfio for PCI),
    the processes holding its /dev/vfio group (QEMU, when it really opened it), and the
    vendor:device the guest sees on its PCI bus (``guest_pci``: QEMU id → ID, when known)."""
    live = {(s.kind, s.address) for s in domainxml.attached(live_xml)}
    alias = domainxml.aliases(live_xml)
    use = hostuse.host_use(host)
    seen = []
    for d in plan.devices:
        key = (d.source.kind, d.source.address)
        holders = tuple(hostuse.vfio_group_holders(host, d.group, use)) if d.group is not None else ()
        in_guest = guest_pci.get(alias.get(key, "")) if guest_pci is not None else None
        seen.append(d._replace(attached=key in live, driver_running=_current_driver(host, d.source),
                               held_by=holders, guest_pci_id=in_guest))
    return seen


def running_problem(devices: List[Device], guest_checked: bool = False) -> Optional[virt.PassthroughError]:
    """Why the running domain does not prove the assignment, or None. ``guest_checked``: QEMU
    was asked what the guest sees, so a device missing there is a failure."""
    for d in devices:
        if not d.attached:
            return virt.PassthroughError("not_attached", f"{d.source.address} is not in the running domain's XML",
                                         fix="libvirt dropped the device: read the domain log; " + virt.CHECK_FIX)
        if guest_checked and d.guest_pci_id is None:
            return virt.PassthroughError("not_in_guest", f"{d.source.address} is not on the guest's PCI bus "
                                                         "(QEMU's query-pci does not list it)",
                                         fix="read the domain log; " + virt.CHECK_FIX)
        if d.source.kind == "pci" and not rules.is_vfio_driver(d.driver_running):
            return virt.PassthroughError(
                "not_on_vfio", f"{d.source.address} is on {d.driver_running or 'no driver'}, not vfio-pci, "
                               "while the domain runs",
                fix=f"hostdev bind {d.source.address}; " + virt.CHECK_FIX)
    return None


def host_bars(host: Host, device: Device) -> List[readiness.Bar]:
    """The BARs of a PCI device of the test as the host has them (none for an mdev)."""
    if device.source.kind != "pci":
        return []
    text = host.read_text(f"{pci.PCI_DEVICES}/{device.source.address}/resource") or ""
    return readiness.device_bars(readiness.parse_resource(text))


def guest_bar_checks(bars: List[readiness.Bar], guest: Optional[list], phys_bits: Optional[int]) -> tuple:
    """Each host BAR against the guest's view of the device (``guest``: virt.GuestBar list from
    query-pci, None when QEMU does not list the device)."""
    by_index = {g.index: g for g in guest or []}
    checks = []
    for bar in bars:
        seen = by_index.get(bar.index)
        address = seen.address if seen is not None else None
        checks.append(GuestBarCheck(bar, address, None if address is None else
                                    readiness.reachable(address, bar.size, phys_bits)))
    return tuple(checks)


def bars_settled(devices: List[Device]) -> bool:
    return all(all(b.guest_address is not None for b in d.bars) for d in devices)


def bar_problem(devices: List[Device], phys_bits: Optional[int]) -> Optional[virt.PassthroughError]:
    """Why a BAR of a device is not usable in the guest, or None: not assigned (the firmware
    found no room) or assigned past the guest's physical address width."""
    for d in devices:
        for check in d.bars:
            if check.ok:
                continue
            bar = check.bar
            bits = readiness.phys_bits_needed([b.bar for b in d.bars]) or readiness.DEFAULT_GUEST_PHYS_BITS
            fix = (f"give the guest a larger MMIO window: hostdev vm test {d.source.address} --phys-bits {bits}; "
                   f"'hostdev check {d.source.address}' names the setting for KubeVirt or libvirt")
            where = "the guest kernel" if check.source == "guest-kernel" else "the guest firmware"
            if check.guest_address is None:
                return virt.PassthroughError("bar_unassigned", f"{d.source.address} {bar.describe()} is not assigned "
                                                               f"in the guest: {where} found no room for it", fix=fix)
            end = check.guest_address + bar.size - 1
            return virt.PassthroughError(
                "bar_unreachable", f"{d.source.address} {bar.describe()} is at 0x{check.guest_address:x}-0x{end:x}, "
                                   f"past the guest's {phys_bits}-bit physical address space "
                                   f"({readiness.format_size(1 << phys_bits) if phys_bits else '?'})", fix=fix)
    return None


def _wait_for_bars(host: Host, test, devices: List[Device], timeout: float,
                   poll: float = 0.5) -> Tuple[List[Device], Optional[int]]:
    """Each device's BARs as the guest has them, waiting up to ``timeout`` seconds for the
    firmware to program them (SeaBIOS/OVMF enable decoding after sizing every BAR; under TCG
    that takes seconds). Also the guest CPU's physical address bits."""
    if test.guest_bars() is None:
        return devices, None        # no QEMU monitor (test driver): nothing to check
    live = test.live_xml()
    alias = domainxml.aliases(live)
    # QEMU's own answer; else what the domain asked for, else QEMU's default for a CPU that is
    # not host-passthrough (the test domain has none): 40 bits
    phys_bits = test.guest_phys_bits() or domainxml.phys_bits(live) or readiness.DEFAULT_GUEST_PHYS_BITS
    deadline = time.monotonic() + timeout
    while True:
        guest = test.guest_bars() or {}
        devices = [d._replace(bars=guest_bar_checks(host_bars(host, d),
                                                    guest.get(alias.get((d.source.kind, d.source.address), "")),
                                                    phys_bits)) for d in devices]
        if bars_settled(devices) or time.monotonic() >= deadline or not test.is_active():
            return devices, phys_bits
        time.sleep(poll)


def guest_kernel_bars(host: Host, devices: List[Device], report: guestinit.GuestReport,
                      phys_bits: Optional[int]) -> List[Device]:
    """Each device's BARs as the booted guest kernel reported them (its sysfs ``resource``):
    a BAR the kernel could not place shows start 0 or IORESOURCE_UNSET. Devices the report has
    no resources for keep QEMU's view."""
    out = []
    for d in devices:
        wanted = expected_guest_id(host, d)
        address = next((a for a, i in sorted(report.pci.items()) if i == wanted), None)
        lines = report.resources.get(address) if address else None
        if not lines:
            out.append(d)
            continue
        guest = {index: readiness.Bar(index, start, end, flags) for index, start, end, flags in lines}
        checks = []
        for bar in host_bars(host, d):
            seen = guest.get(bar.index)
            assigned = seen is not None and seen.assigned
            checks.append(GuestBarCheck(bar, seen.start if assigned else None,
                                        readiness.reachable(seen.start, bar.size, phys_bits) if assigned else None,
                                        "guest-kernel"))
        out.append(d._replace(bars=tuple(checks)))
    return out


def check_returned(host: Host, devices: List[Device], settle: float = 30.0, poll: float = 0.1) -> List[Device]:
    """After destroy: each device back on the driver it had (libvirt's reattach of managed
    devices reprobes them; waits up to ``settle`` seconds for the driver to show)."""
    deadline = time.monotonic() + settle
    while True:
        after = [d._replace(driver_after=_current_driver(host, d.source)) for d in devices]
        after = [d._replace(returned=d.driver_after == d.driver_before) for d in after]
        if all(d.returned for d in after) or time.monotonic() >= deadline:
            return after
        time.sleep(poll)


def returned_problem(devices: List[Device]) -> Optional[virt.PassthroughError]:
    for d in devices:
        if d.returned is False:
            fix = (f"hostdev restore {d.source.address}" if d.source.kind == "pci" else "hostdev mdev list")
            return virt.PassthroughError(
                "not_returned", f"{d.source.address} is on {d.driver_after or 'no driver'} after the test, "
                                f"not {d.driver_before or 'no driver'} as before", fix=fix)
    return None


def _with_host_facts(host: Host, plan: TestPlan, error: virt.PassthroughError) -> virt.PassthroughError:
    """Make libvirt's explanation concrete with what sysfs and /proc/iomem say: the devices
    that keep a group from being viable, a BAR the firmware framebuffer holds."""
    if error.reason == "group_not_viable":
        match = re.search(r"group (\d+)", error.message)
        group = int(match.group(1)) if match else None
        members = [m for m in (pci.read_device(host, a) for a in pci.group_members(host, group)) if m] \
            if group is not None else []
        blocking = [f"{m.address} (on {m.driver})"
                    for m in rules.group_blockers(members, [d.source.address for d in plan.devices])]
        if blocking:
            names = " ".join(b.split()[0] for b in blocking)
            error.message = f"{error.message}: {', '.join(blocking)}"
            error.fix = f"hostdev bind {names} (or test with a device whose group it owns); {virt.CHECK_FIX}"
    elif error.reason == "busy":
        use = hostuse.host_use(host)
        for d in plan.devices:
            dev = pci.read_device(host, d.source.address) if d.source.kind == "pci" else None
            held = [r for r in (hostuse.interlocks(host, dev, use) if dev else []) if "BAR" in r]
            if held:
                return virt.PassthroughError("bar_reserve", held[0].split(" (")[0], fix=virt.BAR_FIX,
                                             libvirt_message=error.libvirt_message)
    return error


# Where the reporting guest's files go: libvirt's own directories, which QEMU may read/write
# whatever the security driver (libvirt labels them), and which a root shell can read back.
INITRD = "/var/lib/libvirt/boot/hostdev-test-initrd.img"


def console_log(name: str) -> str:
    return f"/var/log/libvirt/qemu/{name}-console.log"


BOOT_KERNEL = "/var/lib/libvirt/boot/hostdev-test-vmlinux"


class BootKernel(NamedTuple):
    """The kernel the reporting guest boots: ``image`` as given, or (``direct``) the uncompressed
    PVH kernel hostdev takes out of it and writes to ``path`` before the boot."""

    image: str
    path: str
    direct: Optional[bytes] = None


def boot_kernel(host: Host, image: str) -> BootKernel:
    """Boot the uncompressed kernel when ``image`` holds one QEMU can boot directly (PVH): the
    guest then skips its own decompression, most of a TCG boot (guestinit.direct_boot_kernel)."""
    data = host.read_bytes(image)
    direct = guestinit.direct_boot_kernel(data) if data else None
    return BootKernel(image, BOOT_KERNEL if direct is not None else image, direct)


def prepare_boot(host: Host, console: str, kernel: Optional[BootKernel] = None) -> None:
    """Write hostdev's reporting initramfs (from the host's static busybox) and, for a direct
    boot, the uncompressed kernel; clear the old console log. Raises HostEnvironmentError without
    a static busybox."""
    from .errors import HostEnvironmentError

    for path in guestinit.BUSYBOX_PATHS:
        data = host.read_bytes(path)
        if data and guestinit.is_static_elf(data):
            break
    else:
        raise HostEnvironmentError("no statically linked busybox for the test guest's initramfs",
                                   fix="install it (Debian/Ubuntu: apt install busybox-static), or pass --initrd")
    host.require_mutable("hostdev vm test --boot (writes the test initramfs)")
    host.write_bytes(INITRD, guestinit.build_initramfs(data))
    if kernel is not None and kernel.direct is not None:
        host.write_bytes(kernel.path, kernel.direct)
    if host.exists(console):
        host.remove_file(console)


class Outcome(NamedTuple):
    ok: bool
    devices: List[Device]
    seconds: float
    kept: bool
    error: Optional[virt.PassthroughError]
    guest: Optional[guestinit.GuestReport] = None   # what a booted guest reported (--boot)
    guest_phys_bits: Optional[int] = None            # the guest CPU's physical address bits


def expected_guest_id(host: Host, device: Device) -> Optional[str]:
    """The vendor:device the guest kernel must enumerate for ``device``: what QEMU showed the
    guest (query-pci), else the host's ID of a PCI function."""
    if device.guest_pci_id:
        return device.guest_pci_id
    if device.source.kind == "pci":
        dev = pci.read_device(host, device.source.address)
        return dev.pci_id if dev else None
    return None


def guest_problem(host: Host, devices: List[Device], report: guestinit.GuestReport,
                  console: str) -> Optional[virt.PassthroughError]:
    """Why the booted guest's report does not show every device, or None."""
    if not report.done:
        if not report.console_seen:
            # seen in the real-kernel guest: with --memory 64 a Debian kernel dies before its console
            return virt.PassthroughError("no_guest_report", f"the guest wrote nothing on its console ({console})",
                                         fix="give it more memory (--memory 256 boots a distribution kernel), and "
                                             "a kernel with a built-in serial console (--kernel)")
        return virt.PassthroughError("no_guest_report", "the guest kernel booted but printed no complete PCI report "
                                                        f"on its console ({console})",
                                     fix="read the console log; the kernel needs gzip initramfs support and the "
                                         "initramfs a static busybox")
    seen = report.ids()
    for d in devices:
        wanted = expected_guest_id(host, d)
        if wanted and wanted not in seen:
            return virt.PassthroughError("not_seen_by_guest", f"the guest kernel does not see {d.source.address} "
                                                              f"({wanted}); it saw {', '.join(seen) or 'nothing'}",
                                         fix=f"read the console log {console}; " + virt.CHECK_FIX)
    return None


def run(host: Host, conn, plan: TestPlan, xml: str, *, timeout: float = 60.0, keep: bool = False,
        step: Callable[[str], None] = lambda text: None, console: Optional[str] = None,
        boot_timeout: float = 600.0) -> Outcome:
    """Create the domain, wait until it runs, check the devices, destroy it (unless ``keep``)
    and check they came back. With ``console`` (the serial log of a guest booted with hostdev's
    initramfs) also wait until the guest powers itself off and check its PCI report names every
    device. A failure of the test is the Outcome's ``error``; the domain is destroyed on every
    path, KeyboardInterrupt included (virt.TestDomain)."""
    facts = {"iommu_enabled": any(n.isdigit() for n in host.listdir("/sys/kernel/iommu_groups")),
             "vfio_loaded": host.exists("/dev/vfio/vfio")}
    started = time.monotonic()
    devices = list(plan.devices)
    error: Optional[virt.PassthroughError] = None
    kept = False
    report: Optional[guestinit.GuestReport] = None
    phys_bits: Optional[int] = None
    test = virt.TestDomain(conn, plan.name, xml, keep=keep, explain_facts=facts)
    try:
        with test:
            step(f"starting {plan.name}")
            test.create()
            test.wait_running(timeout)
            step(f"checking {', '.join(d.source.address for d in devices)} in the running domain")
            guest_pci = test.guest_pci()
            devices = check_running(host, plan, test.live_xml(), guest_pci)
            error = running_problem(devices, guest_pci is not None)
            if error is not None:
                raise error
            step("checking every BAR is assigned in the guest")
            devices, phys_bits = _wait_for_bars(host, test, devices, timeout)
            error = bar_problem(devices, phys_bits)
            if error is not None:
                raise error
            if console is not None:
                step("waiting for the guest kernel's PCI report (it powers off after)")
                if not test.wait_stopped(boot_timeout):
                    raise virt.PassthroughError("guest_timeout", f"the guest did not finish its report within "
                                                                 f"{boot_timeout:g} s (console: {console})",
                                                fix="read the console log; a TCG guest boots slowly: raise --timeout")
                text = host.read_text(console) or ""
                report = guestinit.parse_report(text)
                error = guest_problem(host, devices, report, console)
                if error is not None:
                    raise error
                devices = guest_kernel_bars(host, devices, report, phys_bits)
                error = bar_problem(devices, phys_bits)
                if error is not None:
                    raise error
            kept = keep
            if not keep:
                step(f"destroying {plan.name}")
                test.destroy()
    except virt.PassthroughError as exc:
        error = _with_host_facts(host, plan, exc)
    if not kept:
        # also after a failed start: libvirt moved managed devices to vfio-pci before QEMU ran
        step("checking the devices went back to their drivers")
        devices = check_returned(host, devices)
        if error is None:
            error = returned_problem(devices)
    return Outcome(error is None, devices, round(time.monotonic() - started, 2), kept, error, report, phys_bits)
