"""``hostdev check``: is this host ready for passthrough? A verdict from evidence.

virt-host-validate checks the CPU flag, the ACPI table and that iommu_groups is non-empty;
we also read the command line against the boot configuration, vfio, interrupt remapping and
group viability, and tell a VM without a virtual IOMMU from a host with VT-d off
(../shared/ANCHORS.md).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from . import bootloader, kernel, pci, rules
from .host import Host
from .model import FAIL, PASS, SKIP, WARN, Check, CheckReport, PciDevice

# Arguments that decide IOMMU behaviour; the rest of the command line is not our business.
IOMMU_ARGS = ("intel_iommu", "amd_iommu", "iommu", "vfio_pci.ids", "vfio_iommu_type1.allow_unsafe_interrupts")

def _enable_fix(vendor: Optional[str]) -> str:
    if vendor == "intel":
        return ("run 'hostdev iommu enable' (adds intel_iommu=on to GRUB_CMDLINE_LINUX and regenerates "
                "grub.cfg), then reboot")
    return "run 'hostdev iommu enable', then reboot"


def check_cpu(host: Host, cpu: kernel.CpuInfo) -> Check:
    ext = cpu.virtualization
    kvm = host.exists("/dev/kvm")
    detail = (f"CPU vendor {cpu.vendor or 'unknown'}; extension {ext or 'none'}; "
              f"/dev/kvm {'present' if kvm else 'absent'}")
    if ext and kvm:
        return Check("cpu-virtualization", PASS, f"{ext} is on and /dev/kvm exists", detail)
    if kvm:
        return Check("cpu-virtualization", WARN, "/dev/kvm exists but the CPU shows no vmx/svm flag", detail,
                     "a hypervisor may hide the flag (nested virtualization); VMs may still run under KVM")
    if ext:
        return Check("cpu-virtualization", FAIL, f"{ext} is on but /dev/kvm is missing", detail,
                     f"load the KVM module: modprobe {'kvm_intel' if ext == 'vmx' else 'kvm_amd'}")
    fix = ("enable nested virtualization for this VM on its hypervisor" if cpu.is_guest
           else "enable Intel VT-x / AMD-V (SVM) in the firmware setup")
    return Check("cpu-virtualization", FAIL, "no hardware virtualization (vmx/svm) and no /dev/kvm", detail, fix)


def check_iommu(cpu: kernel.CpuInfo, facts: kernel.IommuFacts, cmdline: List[str],
                boot: bootloader.BootConfig, config: Dict[str, str]) -> Check:
    detail = (f"ACPI table {facts.acpi_table or 'none'}; IOMMU units {', '.join(facts.units) or 'none'}; "
              f"{facts.group_count} IOMMU groups")
    if facts.active:
        return Check("iommu", PASS, f"IOMMU active with {facts.group_count} groups", detail)
    if facts.acpi_table is None and not facts.units:
        if kernel.vm_without_viommu(cpu, facts):
            return Check("iommu", FAIL, "this is a virtual machine without a virtual IOMMU", detail,
                         "add a vIOMMU on the hypervisor (QEMU: -machine q35,kernel-irqchip=split "
                         "-device intel-iommu,intremap=on; libvirt: <iommu model='intel'>); grub cannot fix this")
        return Check("iommu", FAIL, "the firmware reports no IOMMU (no DMAR or IVRS ACPI table)", detail,
                     "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup, then boot again")
    vendor = kernel.iommu_vendor(cpu, facts)
    intel = vendor == "intel"
    off = [a for a in cmdline if a in ("intel_iommu=off", "amd_iommu=off", "iommu=off")]
    if off:
        return Check("iommu", FAIL, f"the IOMMU is switched off on the command line ({' '.join(off)})", detail,
                     f"remove {' '.join(off)} from the boot configuration, then reboot")
    if intel and kernel.arg_value(cmdline, "intel_iommu") != "on" \
            and not kernel.intel_iommu_default_on(config):
        pending = "intel_iommu=on" in boot.args
        summary = ("VT-d is present but off: intel_iommu=on is configured and waits for a reboot" if pending
                   else "VT-d is present but off: this kernel needs intel_iommu=on")
        return Check("iommu", FAIL, summary, detail, "reboot" if pending else _enable_fix(vendor))
    return Check("iommu", FAIL, f"{facts.acpi_table or 'an IOMMU'} is present but the kernel created no IOMMU groups",
                 detail, "check dmesg for DMAR/AMD-Vi errors; a firmware update or enabling the IOMMU "
                         "in setup may help")


def check_kernel_args(cpu: kernel.CpuInfo, facts: kernel.IommuFacts, cmdline: List[str],
                      boot: bootloader.BootConfig, config: Dict[str, str]) -> Check:
    running = [a for a in cmdline if kernel.arg_key(a) in IOMMU_ARGS]
    configured = [a for a in boot.args if kernel.arg_key(a) in IOMMU_ARGS]
    detail = (f"running: {' '.join(running) or '(none)'}; next boot ({boot.source or 'unknown'}): "
              f"{' '.join(configured) or '(none)'}")
    notes = []
    status = PASS
    fix = None
    if kernel.arg_value(cmdline, "amd_iommu") == "on" or kernel.arg_value(list(boot.args), "amd_iommu") == "on":
        # Documentation/admin-guide/kernel-parameters.txt: amd_iommu takes fullflush, off,
        # force_isolation, …; "on" is not a value: the kernel logs "AMD-Vi: Unknown option - 'on'".
        status, fix = WARN, "remove amd_iommu=on: it is not a valid value and is ignored; AMD-Vi is on by default"
        notes.append("amd_iommu=on is not a valid value (the kernel ignores it)")
    if kernel.arg_value(cmdline, "iommu") == "pt":
        notes.append("iommu=pt: host devices bypass DMA translation (faster host I/O, weaker isolation; "
                     "breaks AMD SEV-SNP)")
    if kernel.iommu_vendor(cpu, facts) == "intel" and facts.active \
            and kernel.arg_value(cmdline, "intel_iommu") != "on":
        notes.append("intel_iommu=on is not needed: this kernel turns VT-d on by default"
                     if kernel.intel_iommu_default_on(config) else
                     "VT-d is active without intel_iommu=on")
    if boot.known and sorted(running) != sorted(configured):
        added = sorted(set(configured) - set(running))
        removed = sorted(set(running) - set(configured))
        change = "; ".join(filter(None, [f"adds {' '.join(added)}" if added else "",
                                         f"drops {' '.join(removed)}" if removed else ""]))
        status = WARN if status == PASS else status
        fix = fix or "reboot to apply the boot configuration"
        return Check("kernel-args", status, f"reboot pending: the next boot {change}", detail + "; " + "; ".join(notes),
                     fix)
    if not boot.known:
        status = SKIP if status == PASS else status
        notes.insert(0, "no boot configuration found (/etc/default/grub, BLS entries, /etc/kernel/cmdline)")
    summary = notes[0] if notes and status != PASS else "the running and configured IOMMU arguments agree"
    return Check("kernel-args", status, summary, "; ".join([detail] + notes), fix)


def check_vfio(host: Host) -> Check:
    index = kernel.read_module_index(host)
    state = kernel.module_state(host, "vfio_pci", index)
    detail = f"vfio-pci is {state} (kernel {index.release or 'unknown'})"
    if state in (kernel.LOADED, kernel.BUILTIN):
        return Check("vfio", PASS, f"vfio-pci is {state}", detail)
    if state == kernel.AVAILABLE:
        return Check("vfio", WARN, "vfio-pci is available but not loaded", detail,
                     "modprobe vfio-pci (hostdev bind loads it when needed)")
    if not index.has_tree:
        detail += f"; /lib/modules/{index.release} does not exist"
    return Check("vfio", FAIL, "vfio-pci is neither loaded, built in, nor installed for the running kernel", detail,
                 "install the kernel's modules package (Debian: linux-image-$(uname -r); it ships vfio-pci)")


def check_groups(devices: List[PciDevice]) -> List[Check]:
    """Devices on vfio-pci, and groups that mix them with host drivers (not viable)."""
    by_group: Dict[int, List[PciDevice]] = defaultdict(list)
    for dev in devices:
        if dev.iommu_group is not None:
            by_group[dev.iommu_group].append(dev)
    on_vfio = [d for d in devices if rules.is_vfio_driver(d.driver)]
    checks = []
    if on_vfio:
        checks.append(Check("vfio-devices", PASS, f"{len(on_vfio)} device(s) on a vfio driver",
                            ", ".join(f"{d.address} ({d.pci_id}, group {d.iommu_group})" for d in on_vfio)))
    else:
        checks.append(Check("vfio-devices", SKIP, "no device is bound to vfio-pci yet", "",
                            "hostdev bind ADDR (or see 'hostdev devices')"))
    broken = []
    for group, members in sorted(by_group.items()):
        if not any(rules.is_vfio_driver(d.driver) for d in members):
            continue
        blockers = rules.group_blockers(members)
        if blockers:
            broken.append((group, blockers))
    if broken:
        text = "; ".join(f"group {g}: " + ", ".join(f"{d.address} on {d.driver}" for d in b) for g, b in broken)
        first = broken[0][1][0]
        checks.append(Check("group-viability", FAIL, f"{len(broken)} IOMMU group(s) not viable for VFIO", text,
                            f"bind the other functions too, e.g. 'hostdev bind {first.address}' "
                            "(a group is assigned whole)"))
    elif on_vfio:
        checks.append(Check("group-viability", PASS, "every group with a vfio device is viable", ""))
    return checks


def check_mdevctl(host: Host) -> Optional[Check]:
    """Can mdevctl's udev rule start persistent mdevs at boot (mdev.mdevctl_rule)? None when
    mdevctl's rule is not installed."""
    from . import mdev

    rule = mdev.mdevctl_rule(host)
    if rule is None:
        return None
    if rule.missing:
        fix = (f"ln -s {rule.present} {rule.missing[0]}" if rule.present else "install mdevctl")
        return Check("mdevctl-autostart", WARN, f"mdevctl's udev rule calls {rule.missing[0]}, which does not exist",
                     f"{rule.path} runs {', '.join(rule.called)}; persistent mdevs (/etc/mdevctl.d) will not start at "
                     f"boot ('hostdev mdev create --persist' writes {mdev.MDEVCTL_RULE_OVERRIDE} calling "
                     f"{rule.present or 'mdevctl'})", fix)
    return Check("mdevctl-autostart", PASS, "mdevctl's udev rule can start persistent mdevs at boot",
                 f"{rule.path} runs {', '.join(rule.called) or 'nothing'}")


def vfio_readiness(host: Host, stack: str = "kubevirt") -> Tuple[Optional[Check], list]:
    """The readiness of the devices already on a vfio driver (hostdev/readiness.py), summed up
    in one row: warn when any of them has a warn or fail row (the host itself is not less ready:
    the exit code stays the host's), None when no device is on vfio."""
    from . import readiness

    on_vfio = [d for d in pci.list_devices(host) if rules.is_vfio_driver(d.driver)]
    if not on_vfio:
        return None, []
    results = readiness.assess(host, on_vfio, stack)
    problems = [f"{r.address}: " + ", ".join(f"{c.id} {c.status}" for c in r.checks if c.status in (WARN, FAIL))
                for r in results if r.worst in (WARN, FAIL)]
    if not problems:
        return Check("vfio-readiness", PASS, f"{len(results)} device(s) on vfio ready for a VM", ""), results
    return (Check("vfio-readiness", WARN, f"{len(problems)} of {len(results)} device(s) on vfio need attention "
                                          "before a VM can use them", "; ".join(problems),
                  "hostdev check " + " ".join(r.address for r in results if r.worst in (WARN, FAIL))), results)


def run_checks(host: Host) -> CheckReport:
    """All checks, in the order a person would fix them."""
    cpu = kernel.read_cpuinfo(host)
    facts = kernel.read_iommu_facts(host)
    cmdline = kernel.read_cmdline(host)
    release = kernel.kernel_release(host)
    boot = bootloader.read_boot_config(host, release)
    config = kernel.kernel_config(host)
    checks = [
        check_cpu(host, cpu),
        check_iommu(cpu, facts, cmdline, boot, config),
        check_kernel_args(cpu, facts, cmdline, boot, config),
    ]
    if facts.active:
        if facts.interrupt_remapping is True:
            checks.append(Check("interrupt-remapping", PASS, "MSI interrupts are remapped (IR-PCI-MSI)", ""))
        elif facts.interrupt_remapping is False:
            checks.append(Check("interrupt-remapping", WARN, "interrupt remapping is off",
                                "/proc/interrupts shows PCI-MSI without IR-",
                                "VFIO refuses MSI passthrough without it unless "
                                "vfio_iommu_type1.allow_unsafe_interrupts=1; enable x2APIC/IR in firmware"))
        else:
            checks.append(Check("interrupt-remapping", SKIP, "cannot tell whether interrupts are remapped",
                                "no MSI interrupts in /proc/interrupts"))
    checks.append(check_vfio(host))
    checks.extend(check_groups(pci.list_devices(host)))
    mdevctl = check_mdevctl(host)
    if mdevctl is not None:
        checks.append(mdevctl)
    return CheckReport(tuple(checks))
