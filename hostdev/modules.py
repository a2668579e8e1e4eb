"""The vfio kernel modules: their state, loading them with modprobe, loading them at boot
(modules-load.d), and loading vfio-pci before a device's own driver (a modprobe.d softdep)
so that early binding wins the race; the initramfs generator is detected, run only when asked.
Taking the boot-time part back (``modules unpersist``): the files hostdev wrote, and the
initramfs that carries them.
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

from . import kernel
from .errors import HostEnvironmentError, RefusedError
from .host import Host
from .plan import Plan

MODULES_LOAD = "/etc/modules-load.d/hostdev-vfio.conf"
SOFTDEP_FILE = "/etc/modprobe.d/hostdev-vfio.conf"
HEADER = "# Written by hostdev (hostdev modules load --persist/--early); hostdev rewrites this file.\n"


def modules_load_text(names: Sequence[str]) -> str:
    """The text of MODULES_LOAD that loads ``names`` at boot."""
    return HEADER + "".join(f"{n}\n" for n in names)


def softdep_text(drivers: Sequence[str]) -> str:
    """The text of SOFTDEP_FILE that makes each of ``drivers`` (sorted) wait for vfio-pci."""
    return HEADER + "".join(f"softdep {d} pre: vfio-pci\n" for d in drivers)


def _release_tuple(release: Optional[str]) -> Tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def vfio_modules(release: Optional[str]) -> List[str]:
    """vfio-pci and what it needs. vfio_virqfd was merged into vfio in Linux 6.2 (commit
    e2d55709398e); writing it for 6.2+ makes systemd-modules-load fail at every boot."""
    names = ["vfio", "vfio_iommu_type1", "vfio_pci"]
    if release and _release_tuple(release) < (6, 2):
        names.insert(1, "vfio_virqfd")
    return names


class ModuleStatus(NamedTuple):
    name: str
    state: str            # loaded | builtin | available | missing
    persistent: bool      # listed in MODULES_LOAD

    def to_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "persistent": self.persistent}


def _listed(host: Host, path: str) -> List[str]:
    return [line.split("#", 1)[0].strip() for line in (host.read_text(path) or "").splitlines()
            if line.split("#", 1)[0].strip()]


def status(host: Host) -> List[ModuleStatus]:
    index = kernel.read_module_index(host)
    persistent = {n.replace("-", "_") for n in _listed(host, MODULES_LOAD)}
    return [ModuleStatus(n, kernel.module_state(host, n, index), n in persistent) for n in vfio_modules(index.release)]


def softdeps(host: Host) -> List[str]:
    """Drivers that hostdev makes wait for vfio-pci (from SOFTDEP_FILE)."""
    return [line.split()[1] for line in _listed(host, SOFTDEP_FILE) if line.startswith("softdep ")]


def initramfs_command(host: Host, release: Optional[str]) -> Optional[List[str]]:
    """The command that rebuilds the running kernel's initramfs with the host's generator."""
    if host.which("update-initramfs"):
        return ["update-initramfs", "-u", "-k", release or "all"]
    if host.which("dracut"):
        return ["dracut", "-f", "--kver", release] if release else ["dracut", "-f"]
    if host.which("mkinitcpio"):
        return ["mkinitcpio", "-P"]
    return None


class ModulesPlan(NamedTuple):
    plan: Plan
    modules: List[ModuleStatus]    # before
    load: List[str]                # modprobe'd now
    files: List[str]               # written
    initramfs: Optional[List[str]]  # the command to regenerate (run only with run_initramfs)

    @property
    def changed(self) -> bool:
        return self.plan.changes

    def to_dict(self, dry_run: bool) -> dict:
        return self.plan.result(dry_run, changed=self.changed, reboot_required=False,
                                modules=[m.to_dict() for m in self.modules], load=self.load, files=self.files,
                                initramfs_command=self.initramfs)


def _verify_loaded(names: Sequence[str]):
    def run(host: Host) -> None:
        index = kernel.read_module_index(host)
        missing = [n for n in names if kernel.module_state(host, n, index) not in (kernel.LOADED, kernel.BUILTIN)]
        if missing:
            raise HostEnvironmentError(f"modprobe succeeded but {', '.join(missing)} is not loaded",
                                       fix="see dmesg")
    return run


def plan_load(host: Host, persist: bool = False, early_drivers: Sequence[str] = (),
              run_initramfs: bool = False) -> ModulesPlan:
    """Load the vfio modules now; with ``persist`` at every boot; with ``early_drivers`` make
    those drivers wait for vfio-pci (softdep). Raises HostEnvironmentError when a module is missing."""
    before = status(host)
    release = kernel.read_module_index(host).release
    plan = Plan()
    missing = [m.name for m in before if m.state == kernel.MISSING]
    if missing:
        raise HostEnvironmentError(f"{', '.join(missing)} is neither loaded, built in nor installed for kernel "
                                   f"{release or 'unknown'}",
                                   fix="install the kernel's modules package (Debian: linux-image-$(uname -r))")
    load = [m.name for m in before if m.state == kernel.AVAILABLE]
    for m in before:
        if m.state == kernel.BUILTIN:
            plan.notes.append(f"{m.name} is built into the kernel: nothing to load")
    if load:
        # -a: every name is a module (without it the second name would be a parameter of the first)
        plan.add(f"modprobe -a {' '.join(load)}", lambda h: h.run(["modprobe", "-a", *load]),
                 lambda h: h.run(["modprobe", "-r", "-a", *reversed(load)], check=False))
        plan.add(f"verify {', '.join(load)} loaded", _verify_loaded(load))
    files: List[str] = []
    if persist:
        wanted = [m.name for m in before if m.state != kernel.BUILTIN]
        if wanted and plan.add_file(host, MODULES_LOAD, modules_load_text(wanted)):
            files.append(MODULES_LOAD)
    initramfs = None
    vfio_pci = next(m for m in before if m.name == "vfio_pci")
    if early_drivers and vfio_pci.state == kernel.BUILTIN:
        # Ubuntu builds vfio-pci in: there is no module to load first, and modprobe.d is not read
        plan.notes.append("vfio-pci is built into this kernel: a softdep has no effect; bind at boot with "
                          "'hostdev bind --persist', or add vfio-pci.ids=VVVV:DDDD to the kernel command line "
                          "('hostdev iommu enable --arg vfio-pci.ids=…')")
        early_drivers = ()
    if early_drivers:
        drivers = sorted(set(softdeps(host)) | set(early_drivers))
        if plan.add_file(host, SOFTDEP_FILE, softdep_text(drivers)):
            files.append(SOFTDEP_FILE)
        initramfs = initramfs_command(host, release)
        if initramfs is None:
            plan.notes.append("no initramfs generator found (update-initramfs, dracut, mkinitcpio): a driver built "
                              "into the initramfs may still bind first")
        elif run_initramfs and files:
            plan.add(f"regenerate the initramfs ({' '.join(initramfs)})", lambda h: h.run(initramfs))
        elif files:
            plan.notes.append(f"drivers in the initramfs load before the softdep is seen: run "
                              f"'{' '.join(initramfs)}' (or pass --initramfs)")
    return ModulesPlan(plan, before, load, files, initramfs)



# every name some kernel release gets in MODULES_LOAD (vfio_virqfd before 6.2, vfio_modules)
_OWN_MODULES = frozenset(vfio_modules("6.1"))


def written_by_hostdev(path: str, text: str) -> bool:
    """True when ``text`` is, byte for byte, what ``plan_load`` writes to ``path`` (MODULES_LOAD
    or SOFTDEP_FILE): hostdev's header, then only its own lines (vfio module names, once each;
    softdeps on vfio-pci, sorted). An administrator's line, comment or reordering makes it False."""
    entries = [line.split() for line in text.splitlines()[1:]]
    if path == MODULES_LOAD:
        names = [words[0] if words else "" for words in entries]
        return set(names) <= _OWN_MODULES and len(set(names)) == len(names) and text == modules_load_text(names)
    drivers = [words[1] if len(words) > 1 else "" for words in entries]
    return drivers == sorted(set(drivers)) and text == softdep_text(drivers)


def _in_initramfs(path: str, generator: Sequence[str]) -> bool:
    """Whether ``generator`` copies ``path`` into the initramfs it builds: every generator copies
    /etc/modprobe.d (initramfs-tools' hook-functions, dracut, mkinitcpio's modconf hook); only
    dracut copies /etc/modules-load.d (its systemd-modules-load module)."""
    return path == SOFTDEP_FILE or generator[0] == "dracut"


class UnpersistPlan(NamedTuple):
    plan: Plan
    files: List[str]                # removed
    initramfs: Optional[List[str]]  # the command that regenerates it (in the plan when a removed file is in it)

    @property
    def changed(self) -> bool:
        return self.plan.changes

    def to_dict(self, dry_run: bool) -> dict:
        return self.plan.result(dry_run, changed=self.changed, reboot_required=False, files=self.files,
                                initramfs_command=self.initramfs)


def plan_unpersist(host: Host) -> UnpersistPlan:
    """Take back what ``modules load --persist/--early`` wrote: remove MODULES_LOAD and
    SOFTDEP_FILE when they hold hostdev's own text, then regenerate the initramfs when its
    generator copies a removed file into it. The modules stay loaded (devices may use them).
    Any initramfs built since the softdep was written carries it (a kernel update runs the
    generator too), so whether ``load --initramfs`` ran is not the question.
    Raises RefusedError, planning nothing, when either file holds other text than hostdev's."""
    plan = Plan()
    found = [(path, host.read_config(path)) for path in (MODULES_LOAD, SOFTDEP_FILE)]
    for path, text in found:
        if text is not None and not written_by_hostdev(path, text):
            raise RefusedError(f"{path} is not the text hostdev wrote (edited since?): hostdev leaves it alone",
                               fix=f"remove it yourself with rm {path}, or put back hostdev's lines; then run "
                                   "'hostdev modules unpersist' again")
    files = []
    for path, text in found:
        if text is not None and plan.add_file(host, path, None, description=f"remove {path}"):
            files.append(path)
    initramfs = initramfs_command(host, kernel.read_module_index(host).release)
    if initramfs is None:
        if SOFTDEP_FILE in files:
            plan.notes.append("no initramfs generator found (update-initramfs, dracut, mkinitcpio): an initramfs "
                              f"built with {SOFTDEP_FILE} still has it")
    elif any(_in_initramfs(path, initramfs) for path in files):
        plan.add(f"regenerate the initramfs ({' '.join(initramfs)})", lambda h: h.run(initramfs))
    if files:
        plan.notes.append("the vfio modules stay loaded until the next boot (devices may be using them)")
    return UnpersistPlan(plan, files, initramfs)
