"""hostdev vm test: start a transient libvirt domain with the device and prove it is attached."""

import enum
from typing import Optional

import typer

from ..render import Format
from .context import OutputOption, command, complete_address, host, require_live_root, set_output

app = typer.Typer(help="Test VMs: prove device assignment through libvirt.", no_args_is_help=True)


class VirtType(str, enum.Enum):
    auto = "auto"
    kvm = "kvm"
    qemu = "qemu"


@app.command("test")
@command
def test(
    address: Optional[str] = typer.Argument(None, metavar="[ADDR]", autocompletion=complete_address,
                                            help="PCI device to give to the test VM (0000:65:00.0)."),
    mdev: Optional[str] = typer.Option(None, "--mdev", metavar="UUID", help="Test this mdev instead."),
    connect: str = typer.Option("qemu:///system", "--connect", "-c", metavar="URI", help="libvirt URI."),
    memory: int = typer.Option(256, "--memory", min=16, metavar="MiB", help="Guest memory in MiB."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, metavar="S",
                                  help="Seconds to wait for the domain to run."),
    keep: bool = typer.Option(False, "--keep", help="Leave the domain running (virsh destroy it after)."),
    virt_type: VirtType = typer.Option(VirtType.auto, "--virt-type", case_sensitive=False,
                                       help="kvm or qemu (TCG); auto: kvm when /dev/kvm exists."),
    force: bool = typer.Option(False, "--force", help="Let libvirt take a device the interlocks protect."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the domain XML; start nothing."),
    boot: bool = typer.Option(False, "--boot", help="Boot a minimal guest (the host's own kernel, or --kernel, with "
                                                    "an initramfs hostdev builds) that reports the PCI IDs it "
                                                    "sees; the device must be among them."),
    kernel: Optional[str] = typer.Option(None, "--kernel", metavar="PATH",
                                         help="Boot this kernel in the guest (a path libvirt's QEMU can read); "
                                              "without --initrd, hostdev's reporting initramfs."),
    initrd: Optional[str] = typer.Option(None, "--initrd", metavar="PATH",
                                         help="Your own initramfs for --kernel (no report is read from it)."),
    cmdline: Optional[str] = typer.Option(None, "--cmdline", metavar="ARGS",
                                          help="Kernel command line (default: console=ttyS0 panic=-1 loglevel=3 "
                                               "no_timer_check)."),
    boot_timeout: float = typer.Option(600.0, "--boot-timeout", min=1, metavar="S",
                                       help="Seconds for the booted guest to report and power off."),
    phys_bits: Optional[str] = typer.Option(None, "--phys-bits", metavar="N|auto",
                                            help="Give the guest CPU N physical address bits (the firmware's "
                                                 "64-bit MMIO window grows with them); auto: what 'hostdev check "
                                                 "ADDR' recommends for the device's BARs."),
    output: Format = OutputOption,
) -> int:
    """Start a transient libvirt domain with the device (or mdev), check it is attached and on
    vfio-pci, destroy the domain and check the device went back to its driver."""
    import platform

    from .. import domainxml, guestinit, vmtest
    from ..errors import UsageError
    from ..render import emit, message

    set_output(output)
    require_live_root("hostdev vm test")
    if (address is None) == (mdev is None):
        raise UsageError("give a PCI address or --mdev UUID (one of them)",
                         fix="hostdev devices lists addresses, hostdev mdev list the mdevs")
    if initrd and not kernel:
        raise UsageError("--initrd needs --kernel", fix="pass --kernel PATH too")
    reporting = (boot or kernel is not None) and not initrd
    if reporting and keep:
        raise UsageError("--keep does not go with a reporting guest: it powers itself off",
                         fix="drop --keep, or --boot")
    h = host()
    plan = vmtest.plan_mdev(h, mdev) if mdev else vmtest.plan_pci(h, address, force=force)
    bits = _phys_bits(h, plan, phys_bits)
    arch = platform.machine()
    chosen = vmtest.virt_type(h) if virt_type == VirtType.auto else virt_type.value
    why = "/dev/kvm exists" if chosen == "kvm" else "no /dev/kvm, QEMU emulates the CPU (TCG, slower)"

    console = booted = None
    if reporting:
        from .. import kernel as kernel_facts

        kernel = kernel or guestinit.default_kernel(kernel_facts.kernel_release(h), h.exists)
        if kernel is None:
            raise UsageError("no kernel image of the running kernel under /boot to boot the test guest",
                             fix="pass --kernel PATH")
        initrd, console = vmtest.INITRD, vmtest.console_log(plan.name)
        booted = vmtest.boot_kernel(h, kernel)
        if booted.direct is None:
            message(f"note: booting {kernel} as it is (no uncompressed PVH kernel in it): slower under TCG", "warn")
        kernel = booted.path
    boots = kernel is not None

    def build() -> str:
        return domainxml.build(plan.name, chosen, plan.sources, memory_mib=memory, arch=arch, kernel=kernel,
                               initrd=initrd, cmdline=(cmdline or guestinit.CMDLINE) if boots else None,
                               serial_log=console, phys_bits=bits)

    xml = build()
    for note in plan.notes:
        message(f"note: {note}", "warn")
    if dry_run:
        if not emit({"dry_run": True, "uri": connect, "domain": plan.name, "virt_type": chosen,
                     "devices": [d.to_dict() for d in plan.devices], "xml": xml, "phys_bits": bits}, output):
            typer.echo(xml, nl=False)
        return 0
    from .. import virt

    conn = virt.open_connection(connect)
    try:
        if virt_type == VirtType.auto:
            # /dev/kvm can exist where KVM does not work for libvirt (nested without VMX, a
            # kvm module that failed half way): libvirt's capabilities have the last word
            offered = domainxml.guest_domain_types(conn.getCapabilities(), arch)
            if chosen == "kvm" and "kvm" not in offered and "qemu" in offered:
                chosen, why = "qemu", f"/dev/kvm exists but libvirt offers no kvm domains for {arch} (TCG, slower)"
                xml = build()
            message(f"virt type {chosen}: {why}")
        if plan.managed:
            # libvirt will unbind host drivers (managed='yes'): the same rules as hostdev bind
            h.require_mutable("hostdev vm test (libvirt rebinds the device)")
        if console is not None:
            vmtest.prepare_boot(h, console, booted)
        outcome = _run_with_progress(h, conn, plan, xml, timeout, keep, console, boot_timeout)
    finally:
        conn.close()
    result = {"ok": outcome.ok, "uri": connect, "domain": plan.name,
              "devices": [d.to_dict() for d in outcome.devices], "seconds": outcome.seconds,
              "error": outcome.error.to_dict() if outcome.error else None,
              "virt_type": chosen, "kept": outcome.kept,
              "guest": {"console": console, "pci": outcome.guest.pci, "complete": outcome.guest.done,
                        "kernel": booted.image, "direct_boot": booted.direct is not None}
              if outcome.guest else None, "phys_bits": bits, "guest_phys_bits": outcome.guest_phys_bits}
    if not emit(result, output):
        _report(result)
    if outcome.error is not None:
        message(f"hostdev: error: {outcome.error}", "error")
        if outcome.error.libvirt_message:
            message(f"libvirt said: {outcome.error.libvirt_message.strip()}")
        return outcome.error.exit_code
    if outcome.kept:
        message(f"note: {plan.name} is still running; virsh -c {connect} destroy {plan.name} ends it", "warn")
    return 0


def _phys_bits(h, plan, value: Optional[str]) -> Optional[int]:
    """--phys-bits: a number of bits (32-52, what x86-64 page tables can address), or auto."""
    from .. import readiness, vmtest
    from ..errors import UsageError

    if value is None:
        return None
    if value == "auto":
        bars = [b for d in plan.devices for b in vmtest.host_bars(h, d)]
        return readiness.phys_bits_needed(bars)
    if not value.isdigit() or not 32 <= int(value) <= 52:
        raise UsageError(f"invalid --phys-bits {value!r}", fix="use a number from 32 to 52, or auto")
    return int(value)


def _run_with_progress(h, conn, plan, xml, timeout, keep, console, boot_timeout):
    import sys

    from .. import vmtest

    options = {"timeout": timeout, "keep": keep, "console": console, "boot_timeout": boot_timeout}
    if not sys.stderr.isatty():
        return vmtest.run(h, conn, plan, xml, **options)
    from rich.console import Console

    with Console(stderr=True).status(f"starting {plan.name}") as status:
        return vmtest.run(h, conn, plan, xml, step=lambda text: status.update(text), **options)


def _bars(bars: list) -> Optional[str]:
    if not bars:
        return None
    return ", ".join(f"BAR{b['index']} " + (("at " + b["guest_address"]) if b["guest_address"] else "unassigned")
                     + (" (unreachable)" if b["reachable"] is False else "") for b in bars)


def _report(result: dict) -> None:
    from ..render import table

    table(["device", "type", "before", "running", "after", "attached", "held by", "guest sees", "guest BARs",
           "returned"],
          [[d["address"], d["type"], d["driver_before"], d["driver_running"], d["driver_after"], d["attached"],
            ", ".join(d["held_by"]) or None, d["guest_pci_id"], _bars(d["bars"]), d["returned"]]
           for d in result["devices"]],
          title=f"{result['domain']} ({result['virt_type']}, {result['uri']}): "
                f"{'passed' if result['ok'] else 'FAILED'} in {result['seconds']:g} s")
    guest = result.get("guest")
    if guest:
        from ..render import message

        ids = sorted(set(guest["pci"].values()))
        message(f"the guest kernel saw {len(guest['pci'])} PCI function(s): {', '.join(ids) or 'none'} "
                f"(console: {guest['console']})")
