#!/usr/bin/env python3
"""Write docs/hostdev.1 (a man page) from the CLI itself: every command, its arguments and options
with their help, from the same typer/click definitions as --help. `--check` exits 1 when stale.

    man ./docs/hostdev.1
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = ROOT / "docs" / "hostdev.1"


def esc(text: str) -> str:
    """Troff-safe text: backslashes doubled, a leading dot or quote protected."""
    text = " ".join((text or "").split()).replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def commands(group, prefix=()):
    """(words, click command) for every leaf command, in the order --help lists them."""
    import click

    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if cmd is None or cmd.hidden:
            continue
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:  # `hostdev devices` lists, `hostdev devices show` shows
                yield prefix + (name,), cmd
            yield from commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def _metavar(argument) -> str:
    """ADDR... or [ADDR...]: spelt here, not by click/typer, whose spelling changes by version."""
    name = (argument.metavar or argument.name.upper()).strip("[]")
    if argument.nargs == -1 and not name.endswith("..."):
        name += "..."
    return name if argument.required else f"[{name}]"


def esc_code(text: str) -> str:
    """A line of a command example: troff-safe, spaces kept."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


# The workflow of docs/getting-started.md, on the host of its sandbox.
EXAMPLES = [
    ("Is the host ready for passthrough (exit 0 ready, 1 not)?", "hostdev check"),
    ("Turn the IOMMU on (and iommu=pt), see the change first, then reboot:",
     "sudo hostdev iommu enable --passthrough --dry-run\nsudo hostdev iommu enable --passthrough"),
    ("Load the vfio modules now and at every boot:", "sudo hostdev modules load --persist"),
    ("The GPUs, with their drivers and IOMMU groups:", "hostdev devices --class gpu"),
    ("Give a device (and the rest of its IOMMU group) to vfio-pci, also after a reboot; give it back:",
     "sudo hostdev bind 0000:17:00.0 --persist\nsudo hostdev restore 0000:17:00.0"),
    ("Two vGPUs of one type on a card, kept by mdevctl:",
     'sudo hostdev mdev create --parent 0000:65:00.0 --name "GRID T4-2A" --count 2 --persist'),
    ("KubeVirt's permittedHostDevices for this node, and the VMI's devices:",
     "hostdev kubevirt permitted\nhostdev kubevirt vmi --gpu nvidia.com/GA102GL_A10"),
    ("Prove the device works in a VM (a transient libvirt domain):", "sudo hostdev vm test 0000:17:00.0"),
    ("Record this host into one file (for a bug report); read it anywhere, read-only:",
     "hostdev record node1.tgz\nhostdev --root node1.tgz kubevirt permitted"),
    ("Machine-readable output, for scripts and Ansible:", "hostdev bind 0000:17:00.0 --dry-run -o json"),
]


def exit_codes():
    """(code, meaning) from the table of docs/exit-codes.md (the one list of exit codes)."""
    rows = []
    for line in (ROOT / "docs" / "exit-codes.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows.append((cells[0], cells[1].replace("`", "")))
    return rows


def written_files():
    """(path, what) for every file hostdev writes, from the constants its writes use."""
    from hostdev import bootargs, bootloader, host, journal, mdev, modules, vmtest

    return [
        (journal.JOURNAL, "the journal: each device's driver before hostdev moved it (restore gives it back)"),
        (f"{journal.PERSIST_DIR}/pci-ADDRESS", "a persistent binding (bind --persist): the driver, re-applied at boot"),
        (journal.UDEV_RULE, "bind --persist: sets driver_override from bindings.d when a device appears"),
        (journal.UNIT, "bind --persist: binds the devices of bindings.d a driver claimed before udev ran"),
        (journal.UNIT_WANTS, "bind --persist: the unit enabled (a symlink, as systemctl enable makes it)"),
        (modules.MODULES_LOAD, "modules load --persist: the vfio modules loaded at boot"),
        (modules.SOFTDEP_FILE, "modules load --early: softdeps that make a device's driver wait for vfio-pci"),
        (f"{mdev.MDEVCTL_DIR}/PARENT/UUID", "mdev create --persist: mdevctl's definition (started at boot)"),
        (mdev.MDEVCTL_RULE_OVERRIDE, "mdev create --persist where the packaged mdevctl rule calls a missing "
         "mdevctl (Debian 12): that rule calling the installed one; removed with the last definition"),
        (bootargs.DROPIN, "iommu enable: hostdev's GRUB drop-in (Debian, Ubuntu)"),
        (f"{bootloader.GRUB_DEFAULT}, {bootloader.GRUB_DROPIN_DIR}/*.cfg",
         "iommu enable/disable where no drop-in is possible, or to remove a conflicting argument: edited in place"),
        (bootargs.STATE, "the kernel arguments hostdev added (iommu disable removes exactly those)"),
        (f"FILE{host.BACKUP_SUFFIX}", "the administrator's original of a config file hostdev edited, kept once"),
        (host.LOCK_FILE, "the lock: one hostdev changes the host at a time"),
        (vmtest.INITRD, "vm test --boot: the reporting initramfs of the test domain"),
        (vmtest.BOOT_KERNEL, "vm test --boot: the uncompressed kernel the test domain boots"),
        ("FILE of hostdev record FILE", "the recording: a new file (never overwritten), the only file record writes"),
        (vmtest.console_log("NAME"), "vm test --boot: removed before the test domain starts (libvirt writes it)"),
    ]


def render() -> str:
    import click
    import typer.main

    from hostdev import __version__
    from hostdev.cli.app import app

    root = typer.main.get_command(app)
    out = [f'.TH HOSTDEV 1 "" "hostdev {__version__}" "User Commands"',
           ".SH NAME", "hostdev \\- prepare Linux hosts for PCI and mediated\\-device passthrough (KubeVirt, libvirt)",
           ".SH SYNOPSIS", ".B hostdev", "[\\-\\-root PATH] COMMAND [OPTIONS] [ARGS]",
           ".SH DESCRIPTION", esc(root.help or ""),
           ".PP", esc("Every command takes -o table|json|yaml; data goes to stdout, messages to stderr. Commands "
                      "that change the host take --dry-run and need root. Exit codes: 0 done, 1 check: not "
                      "ready, 2 bad input, 3 refused by an interlock, 4 environment (not root, tool missing), "
                      "5 failed and rolled back."),
           ".SH GLOBAL OPTIONS"]
    for param in root.params:
        if isinstance(param, click.Option) and not param.hidden and param.help:
            out += [".TP", "\\fB" + esc(", ".join(param.opts)) + "\\fR", esc(param.help)]
    out.append(".SH COMMANDS")
    for words, cmd in commands(root):
        usage = " ".join(words)
        args = " ".join(esc(_metavar(p)) for p in cmd.params if isinstance(p, click.Argument))
        out += [".SS " + esc(f"hostdev {usage}") + (f" {args}" if args else ""), esc(cmd.help or "")]
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden and "--help" not in param.opts:
                value = "" if param.is_flag else " \\fI" + esc(param.metavar or param.type.name.upper()) + "\\fR"
                out += [".TP", "\\fB" + esc(", ".join(param.opts)) + "\\fR" + value, esc(param.help or "")]
    out += [".SH ENVIRONMENT", ".TP", "\\fBHOSTDEV_ROOT\\fR", esc("Act on the tree under this path instead of /."),
            ".TP", "\\fBHOSTDEV_DEBUG\\fR", esc("1: show the traceback of an internal error (exit 70)."),
            ".TP", "\\fBNO_COLOR\\fR", esc("Set: no colour in messages and tables.")]
    out.append(".SH EXIT STATUS")
    for code, meaning in exit_codes():
        out += [".TP", f"\\fB{code}\\fR", esc(meaning)]
    out += [".PP", esc("Errors are one line on stderr (hostdev: error: WHAT (FIX)); with -o json also an object on "
                       "stdout. Details: docs/exit-codes.md.")]
    out.append(".SH EXAMPLES")
    for comment, line in EXAMPLES:
        out += [".PP", esc(comment), ".RS", ".nf", esc_code(line), ".fi", ".RE"]
    out += [".SH FILES", esc("Every file hostdev writes (PARENT, UUID, ADDRESS: of a device; FILE: a config file "
                             "hostdev edits). Nothing else is written; --root PATH writes them under PATH."),
            ".PP"]
    for path, what in written_files():
        out += [".TP", esc(path), esc(what)]
    out += [".SH SEE ALSO", "lspci(8), driverctl(8), mdevctl(8), virsh(1), kubectl(1); docs/ in the source tree"]
    return "\n".join(out) + "\n"


def main() -> int:
    from generated import sync

    return sync({PAGE: render()}, "gen-man.py")


if __name__ == "__main__":
    sys.exit(main())
