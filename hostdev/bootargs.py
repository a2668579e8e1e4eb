"""IOMMU kernel arguments in the boot configuration: decide them from the evidence, edit the
boot stack with its own tool, record what hostdev added, and take exactly that back.

The boot stack is detected, not guessed from the distribution's name:

* GRUB (/etc/default/grub): a drop-in of our own, /etc/default/grub.d/hostdev.cfg, where the
  directory exists (Debian's grub-mkconfig sources it; curtin and cloud images do the same),
  else GRUB_CMDLINE_LINUX in /etc/default/grub (GRUB_CMDLINE_LINUX_DEFAULT is the
  administrator's and only applies to normal entries). Regenerated with ``update-grub`` or
  ``grub2-mkconfig``/``grub-mkconfig -o`` the grub.cfg actually in use.
* BLS entries with grubby (Fedora, RHEL 8+): ``grubby --update-kernel=ALL --args`` for the
  installed kernels, and /etc/default/grub kept consistent for future kernels.
* systemd-boot/UKI (/etc/kernel/cmdline) and rpm-ostree/bootc: hostdev prints the exact
  command instead of editing (HostEnvironmentError, exit 4).

What hostdev added is recorded in STATE so that ``disable`` removes exactly that (tuned's
bootloader plugin keeps ``$tuned_params`` for the same reason).
"""

from __future__ import annotations

import difflib
import json
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import bootloader, kernel
from .errors import HostEnvironmentError, RefusedError, UsageError
from .host import Host
from .plan import Action, Plan

STATE = "/var/lib/hostdev/boot-args.json"
DROPIN = f"{bootloader.GRUB_DROPIN_DIR}/hostdev.cfg"
VAR = "GRUB_CMDLINE_LINUX"
OSTREE_BOOTED = "/run/ostree-booted"
DROPIN_HEADER = ("# Kernel arguments added by hostdev (hostdev iommu enable).\n"
                 "# 'hostdev iommu disable' removes this file; edit /etc/default/grub for your own arguments.\n")


class Stack(NamedTuple):
    """The boot stack found on the host and how hostdev changes it."""

    kind: str                      # "grub", "bls", "kernel-cmdline", "ostree"
    edit_file: Optional[str]       # the GRUB file hostdev edits (drop-in or /etc/default/grub)
    regenerate: Tuple[str, ...]    # argv that regenerates grub.cfg; () for none
    grubby: Optional[str]          # path of grubby for BLS


def grub_cfg_in_use(host: Host) -> str:
    """The grub.cfg that grub(2)-mkconfig must write.

    EL9+/Fedora 34+: the ESP's grub.cfg is a stub that ``configfile``s /boot/grub2/grub.cfg, so
    the latter is the one (Red Hat's "unified grub.cfg"); EL8 on UEFI: the ESP file is the real
    config; BIOS and Debian-family: /boot/grub2 or /boot/grub.
    """
    if host.exists("/sys/firmware/efi"):
        for vendor in host.listdir("/boot/efi/EFI"):
            path = f"/boot/efi/EFI/{vendor}/grub.cfg"
            text = host.read_text(path)
            if text is not None and "configfile" not in text:
                return path
    if host.is_dir("/boot/grub2"):
        return "/boot/grub2/grub.cfg"
    return "/boot/grub/grub.cfg"


def detect_stack(host: Host, args: Sequence[str] = (), removing: bool = False) -> Stack:
    """Raises HostEnvironmentError naming the exact command for stacks hostdev does not edit: the
    command that adds ``args``, or with ``removing`` the one that takes them out (iommu disable)."""
    shown = " ".join(args) or "ARGS"
    add, to = ("remove", "from") if removing else ("add", "to")
    if host.exists(OSTREE_BOOTED):
        option = "--delete-if-present" if removing else "--append-if-missing"
        changes = " ".join(f"{option}={a}" for a in args) or f"{option}=ARG"
        raise HostEnvironmentError("rpm-ostree/bootc host: kernel arguments are managed by rpm-ostree, not edited "
                                   "in place", fix=f"run: rpm-ostree kargs {changes} && systemctl reboot")
    grub = host.exists(bootloader.GRUB_DEFAULT)
    grubby = host.which("grubby")
    has_bls = any(n.endswith(".conf") for n in host.listdir(bootloader.BLS_DIR))
    if has_bls and grubby:
        return Stack("bls", bootloader.GRUB_DEFAULT if grub else None, (), grubby)
    if grub:
        edit = DROPIN if host.is_dir(bootloader.GRUB_DROPIN_DIR) else bootloader.GRUB_DEFAULT
        if host.which("update-grub"):
            regen: Tuple[str, ...] = ("update-grub",)
        else:
            tool = next((t for t in ("grub2-mkconfig", "grub-mkconfig") if host.which(t)), None)
            if tool is None:
                raise HostEnvironmentError("/etc/default/grub exists but neither update-grub, grub2-mkconfig "
                                           "nor grub-mkconfig is installed",
                                           fix="install GRUB's tools (Debian: grub2-common)")
            regen = (tool, "-o", grub_cfg_in_use(host))
            script = host.read_text(host.which(tool) or "") or ""
            if has_bls and "--update-bls-cmdline" in script:
                # EL 9.3+: without it grub2-mkconfig leaves the BLS entries' options alone, and
                # the new arguments never reach a kernel (RHEL 9.3 release notes, grub2 2.06-70)
                regen += ("--update-bls-cmdline",)
        return Stack("grub", edit, regen, None)
    if host.exists(bootloader.KERNEL_CMDLINE) or has_bls:
        raise HostEnvironmentError(
            "systemd-boot/UKI host (/etc/kernel/cmdline): hostdev does not edit it",
            fix=f"{add} '{shown}' {to} /etc/kernel/cmdline, then run: kernel-install add \"$(uname -r)\" "
                "\"/usr/lib/modules/$(uname -r)/vmlinuz\" (or your UKI builder), and reboot")
    raise HostEnvironmentError("no boot configuration found (/etc/default/grub, BLS entries, /etc/kernel/cmdline)",
                               fix=f"{add} '{shown}' {to} your boot loader's kernel command line and reboot")


# ---------------------------------------------------------------- which arguments
VM_WITHOUT_VIOMMU = ("this is a virtual machine without a virtual IOMMU (hypervisor CPU flag; no DMAR or IVRS "
                     "ACPI table, no IOMMU unit or group): kernel arguments cannot create one; add it on the "
                     "hypervisor (QEMU -device intel-iommu,intremap=on; libvirt <iommu model='intel'>)")


def decide_args(host: Host, passthrough: bool = False, extra: Sequence[str] = (),
                force: bool = False) -> Tuple[List[str], List[str]]:
    """The arguments to add and the notes that explain the choice. On a virtual machine without
    a virtual IOMMU (kernel.vm_without_viommu) none, unless ``force``: writing them would only
    make a playbook reboot for nothing. Raises UsageError."""
    cpu = kernel.read_cpuinfo(host)
    config = kernel.kernel_config(host)
    args: List[str] = []
    notes: List[str] = []
    facts = kernel.read_iommu_facts(host)
    no_viommu = kernel.vm_without_viommu(cpu, facts)
    if no_viommu:
        notes.append(VM_WITHOUT_VIOMMU)
    vendor = kernel.iommu_vendor(cpu, facts)
    if vendor == "intel":
        default_on = kernel.intel_iommu_default_on(config)
        if default_on:
            notes.append(f"intel_iommu=on is not needed: this kernel turns VT-d on by default ({default_on}=y)")
        else:
            args.append("intel_iommu=on")
    elif vendor == "amd":
        notes.append("AMD-Vi needs no argument: the kernel turns it on when the firmware enables it "
                     "(amd_iommu=on is not a valid value and is ignored)")
    else:
        notes.append(f"CPU vendor {cpu.vendor or 'unknown'} and no DMAR or IVRS table: no IOMMU argument "
                     "is known to be needed")
    if passthrough:
        args.append("iommu=pt")
        notes.append("iommu=pt: the host's own devices skip DMA translation (VMs keep full isolation)"
                     + ("; it is incompatible with AMD SEV-SNP hosts" if cpu.vendor == "amd" else ""))
    for arg in extra:
        if not arg or not bootloader.is_plain_arg(arg) or not kernel.arg_key(arg) or arg.startswith("="):
            raise UsageError(f"invalid kernel argument {arg!r}",
                             fix="one word, KEY or KEY=VALUE, without blanks, quotes, $ or shell characters")
        if kernel.arg_key(arg) == "amd_iommu" and arg.split("=", 1)[-1] == "on":
            raise UsageError("amd_iommu=on is not a valid value (the kernel ignores it; AMD-Vi is on by default)",
                             fix="leave it out; valid values are off, force_isolation, fullflush, pgtbl_v1/v2 …")
        if arg not in args:
            args.append(arg)
    if no_viommu and args and not force:
        notes.append(f"nothing written: {', '.join(args)} would change nothing until the hypervisor gives this VM "
                     "an IOMMU (no reboot needed); --force writes them anyway")
        return [], notes
    return args, notes


# ---------------------------------------------------------------- what is configured now
def _load_state(host: Host) -> dict:
    """What hostdev recorded. Raises DocumentError (exit 2) naming the file and the problem."""
    from .documents import DocumentError, load_json

    text = host.read_config(STATE)
    if not text:
        return {"args": [], "replaced": [], "files": []}
    fix = f"inspect it, or move it aside ({STATE}.broken)"
    data = load_json(text, STATE, fix=fix)
    if not isinstance(data, dict):
        raise DocumentError(STATE, "expected an object", fix=fix)
    for key in ("args", "replaced"):
        value = data.get(key, [])
        if not (isinstance(value, list) and all(isinstance(a, str) and a for a in value)):
            raise DocumentError(STATE, f"{key}: expected a list of kernel arguments (strings)", fix=fix)
    for key in ("stack", "file"):
        if not isinstance(data.get(key), (str, type(None))):
            raise DocumentError(STATE, f"{key}: expected a string or null", fix=fix)
    files = data.get("files", [data["file"]] if data.get("file") else [])  # "file": one, before 1 Dec 2026
    if not (isinstance(files, list) and all(isinstance(f, str) and f.startswith("/") for f in files)):
        raise DocumentError(STATE, "files: expected a list of absolute paths", fix=fix)
    return {"args": list(data.get("args", [])), "replaced": list(data.get("replaced", [])),
            "stack": data.get("stack"), "files": list(files)}


def configured_args(host: Host, stack: Stack) -> List[str]:
    """The arguments the next boot gets from this stack (BLS: the entries; GRUB: both variables)."""
    release = kernel.kernel_release(host)
    if stack.kind == "bls":
        bls = bootloader.read_bls(host, release)
        return list(bls.args) if bls else []
    grub = bootloader.read_grub(host)
    return list(grub.args) if grub else []


# ---------------------------------------------------------------- plans
class BootPlan(NamedTuple):
    plan: Plan
    stack: str
    added: List[str]
    removed: List[str]
    present: List[str]           # wanted and already configured (nothing to do)
    files: Dict[str, Tuple[Optional[str], Optional[str]]]  # path → (old text, new text); None: absent
    commands: List[List[str]]
    reboot_required: bool

    @property
    def changed(self) -> bool:
        return self.plan.changes

    def diff(self) -> str:
        """A unified diff of the planned edits, exactly: a CRLF line shows its ``\\r`` (as
        ``diff`` does), bytes that are not UTF-8 show as ``\\xNN``."""
        out = []
        for path, (old, new) in self.files.items():
            out.extend(difflib.unified_diff(_lines(old), _lines(new),
                                            f"a{path}" if old is not None else "/dev/null",
                                            f"b{path}" if new is not None else "/dev/null"))
        text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

    def to_dict(self, dry_run: bool) -> dict:
        return self.plan.result(dry_run, changed=self.changed, reboot_required=self.reboot_required,
                                stack=self.stack, added=self.added, removed=self.removed, present=self.present,
                                files=sorted(self.files), commands=self.commands, diff=self.diff())


def _lines(text: Optional[str]) -> List[str]:
    """Lines split at "\\n" only, each keeping its end (a "\\r" before it stays in the line)."""
    if not text:
        return []
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _state_step(plan: Plan, host: Host, state: dict) -> None:
    text = json.dumps({"version": 1, **state}, indent=2) + "\n" if state["args"] or state["replaced"] else None
    plan.add_file(host, STATE, text, description=(f"record the arguments hostdev added in {STATE}" if text else
                                                  f"forget the recorded arguments ({STATE})"))


def dropin_text(args: Sequence[str]) -> str:
    return f'{DROPIN_HEADER}{VAR}="${VAR} {" ".join(args)}"\n'


def _dropin_args(text: Optional[str]) -> List[str]:
    if not text:
        return []
    value = bootloader.parse_shell_assignments(text, {VAR: ""}).get(VAR, "")
    return kernel.split_cmdline(value)


def _remove_from_grub(host: Host, files: Dict[str, Tuple[Optional[str], Optional[str]]], args: Sequence[str],
                      only: Optional[str] = None, skip: Sequence[str] = ()) -> List[str]:
    """Remove ``args`` wherever they are written literally in the GRUB files (main file, then
    drop-ins in the order grub-mkconfig sources them), or with ``only`` just the last occurrence
    in that one file, in GRUB_CMDLINE_LINUX (what hostdev appended); edits go into ``files``."""
    removed: List[str] = []
    inherited: Dict[str, str] = {}
    for path in bootloader.grub_files(host):
        old = _current(host, files, path)
        text = old or ""
        if path not in skip and only in (None, path):
            bootloader.check_parses(text, path)
            for var in ((VAR,) if only else bootloader.CMDLINE_VARS):
                text, gone = bootloader.remove_args(text, var, args, inherited, last_only=only is not None)
                removed.extend(gone)
            if text != old:
                files[path] = (files[path][0] if path in files else old, text)
        inherited = bootloader.parse_shell_assignments(text, inherited)
    return removed


def _current(host: Host, files: Dict[str, Tuple[Optional[str], Optional[str]]], path: str) -> Optional[str]:
    """The text of ``path`` with the edits already planned in ``files``."""
    return files[path][1] if path in files else host.read_config(path)


def _append(host: Host, files: Dict[str, Tuple[Optional[str], Optional[str]]], path: str,
            args: Sequence[str]) -> None:
    """Append ``args`` to GRUB_CMDLINE_LINUX in ``path`` (after any edit already in ``files``)."""
    current = _current(host, files, path)
    bootloader.check_parses(current or "", path)
    files[path] = (host.read_config(path), bootloader.append_args(current or "", VAR, args))


def plan_enable(host: Host, args: Sequence[str], replace: bool = False, notes: Sequence[str] = ()) -> BootPlan:
    """Add ``args`` to the boot configuration. An argument present with another value (for the
    same key) is a RefusedError unless ``replace``; then that one is removed first. No
    arguments (AMD without --passthrough): nothing to do, on any boot stack."""
    if not args:
        return BootPlan(Plan(notes=list(notes)), "none", [], [], [], {}, [], False)
    stack = detect_stack(host, args)
    state = _load_state(host)
    plan = Plan(notes=list(notes))
    configured = configured_args(host, stack)
    present = [a for a in args if a in configured]
    wanted_keys = {kernel.arg_key(a): a for a in args}
    conflicts = [c for c in configured if kernel.arg_key(c) in wanted_keys and c not in args]
    if conflicts and not replace:
        pairs = ", ".join(f"{c} (wanted {wanted_keys[kernel.arg_key(c)]})" for c in conflicts)
        raise RefusedError(f"the boot configuration already has {pairs}",
                           fix="pass --replace to replace it, or leave that argument out")
    to_add = [a for a in args if a not in configured]
    conflict_keys = {kernel.arg_key(c) for c in conflicts}
    owned = [a for a in state["args"] if kernel.arg_key(a) not in conflict_keys]
    replaced = [c for c in conflicts if c not in state["args"]]
    files: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    commands: List[List[str]] = []
    removed: List[str] = []
    if stack.kind == "grub":
        if conflicts:
            removed = _remove_from_grub(host, files, conflicts, skip=[DROPIN] if stack.edit_file == DROPIN else [])
        if stack.edit_file == DROPIN:
            old = host.read_config(DROPIN)
            mine = [a for a in _dropin_args(old) if kernel.arg_key(a) not in conflict_keys]
            removed += [a for a in _dropin_args(old) if a not in mine]
            new_args = mine + [a for a in to_add if a not in mine]
            new = dropin_text(new_args) if new_args else None
            if new != old:
                files[DROPIN] = (old, new)
        elif to_add:
            _append(host, files, stack.edit_file, to_add)
        leftover = [c for c in conflicts if c not in removed]
        if leftover:
            raise RefusedError(f"cannot remove {', '.join(leftover)}: it is not written literally in a GRUB file",
                               fix="remove it by hand from the file that sets it, then run again")
    else:  # bls + grubby
        if stack.edit_file:
            if conflicts:
                removed = _remove_from_grub(host, files, conflicts)
            if to_add:
                _append(host, files, stack.edit_file, to_add)
        if conflicts:
            commands.append([stack.grubby, "--update-kernel=ALL", f"--remove-args={' '.join(conflicts)}"])
            removed = sorted(set(removed) | set(conflicts), key=conflicts.index)
        if to_add:
            commands.append([stack.grubby, "--update-kernel=ALL", f"--args={' '.join(to_add)}"])
    # every file hostdev appended to, in order: a host that gains /etc/default/grub.d after a first
    # enable keeps that enable's arguments in /etc/default/grub, and disable must find them there
    written = state["files"] + ([stack.edit_file] if stack.edit_file and to_add else [])
    new_state = {"stack": stack.kind, "files": list(dict.fromkeys(written)),
                 "args": owned + [a for a in to_add if a not in owned],
                 "replaced": state["replaced"] + [c for c in replaced if c not in state["replaced"]]}
    all_commands = _steps(plan, host, stack, files, commands, new_state if files or commands else None)
    running = kernel.read_cmdline(host)
    reboot = any(a not in running for a in args) or any(c in running for c in conflicts)
    if replaced:
        plan.notes.append(f"replaced {', '.join(replaced)} (the administrator's); 'hostdev iommu disable' "
                          "will not put it back")
    return BootPlan(plan, stack.kind, to_add, removed, present, files, all_commands, reboot)


def _runner(argv: List[str]):
    def run(host: Host) -> None:
        host.run(argv)
    return run


def _steps(plan: Plan, host: Host, stack: Stack, files: Dict[str, Tuple[Optional[str], Optional[str]]],
           commands: List[List[str]], state: Optional[dict]) -> List[List[str]]:
    """The actions of an enable or disable, in order: the file edits, the record of what hostdev
    added (``state``; None: unchanged), the commands, the regeneration. Returns every command run."""
    for path, (_, new) in files.items():
        plan.add_file(host, path, new, backup=path != DROPIN)
    if state is not None:
        _state_step(plan, host, state)
    _command_steps(plan, stack, commands, files)
    return commands + ([list(stack.regenerate)] if files and stack.regenerate else [])


def _command_steps(plan: Plan, stack: Stack, commands: List[List[str]], files: dict) -> None:
    for argv in commands:
        undo = None
        if "--update-kernel=ALL" in argv:  # grubby: the reverse edit
            flag, _, value = argv[-1].partition("=")
            reverse = "--remove-args" if flag == "--args" else "--args"
            undo = _runner([*argv[:-1], f"{reverse}={value}"])
        plan.add(f"run {' '.join(argv)}", _runner(argv), undo)
    if files and stack.regenerate:
        # Last: when it fails, the file edits before it are rolled back (grub-mkconfig writes
        # grub.cfg.new and renames it only on success). When a LATER step fails (hostdev apply
        # plans more after this), grub.cfg must be regenerated again once the files are back:
        # the first action's undo does that, as rollback runs in reverse order.
        regenerated = []

        def regenerate(h: Host) -> None:
            h.run(list(stack.regenerate))
            regenerated.append(True)

        def regenerate_again(h: Host) -> None:
            if regenerated:
                h.run(list(stack.regenerate))

        plan.actions.insert(0, Action("(on rollback: regenerate grub.cfg from the restored files)", _noop,
                                      regenerate_again))
        plan.add(f"regenerate grub.cfg ({' '.join(stack.regenerate)})", regenerate)


def _noop(host: Host) -> None:
    return None


def plan_disable(host: Host) -> BootPlan:
    """Remove exactly the arguments hostdev recorded; nothing the administrator wrote."""
    state = _load_state(host)
    owned = list(state["args"])
    plan = Plan()
    if not owned:
        plan.notes.append("hostdev has added no kernel arguments here (nothing recorded in " + STATE + ")")
        return BootPlan(plan, state.get("stack") or "none", [], [], [], {}, [], False)
    stack = detect_stack(host, owned, removing=True)
    files: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    commands: List[List[str]] = []
    removed: List[str] = []
    if stack.kind == "grub" or stack.edit_file:
        dropin = host.read_config(DROPIN)
        if dropin is not None:
            files[DROPIN] = (dropin, None)
            removed += [a for a in _dropin_args(dropin) if a in owned]
        for recorded in state["files"] or [bootloader.GRUB_DEFAULT]:
            if recorded != DROPIN:
                removed += _remove_from_grub(host, files, owned, only=recorded)
    if stack.kind == "bls":
        commands.append([stack.grubby, "--update-kernel=ALL", f"--remove-args={' '.join(owned)}"])
        removed = owned
    removed = [a for a in owned if a in removed]
    all_commands = _steps(plan, host, stack, files, commands, {"args": [], "replaced": []})
    missing = [a for a in owned if a not in removed]
    if missing:
        plan.notes.append(f"{', '.join(missing)} recorded as hostdev's but no longer in the boot configuration")
    running = kernel.read_cmdline(host)
    return BootPlan(plan, stack.kind, [], removed, [], files, all_commands, any(a in running for a in removed))
