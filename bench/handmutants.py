#!/usr/bin/env python3
"""The hand-made bugs of issue 19, one at a time: apply each mutation to the checkout, run the
test of tests/test_survivors.py meant to kill it, report KILLED or SURVIVED, put the file back.

    .venv/bin/python bench/handmutants.py                 # all
    .venv/bin/python bench/handmutants.py journal-late    # one

A pattern that no longer matches the code (it moved) is reported, not skipped silently: update it.
Run it on a clean checkout only (it rewrites files in place and restores them).
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# name: (file, text, replaced by, -k selection of tests/test_survivors.py that must fail)
MUTANTS = {
    'verify-no-devnode': (
        'hostdev/binding.py',
        'and not host.exists(f"/dev/vfio/{group}")',
        'and False',
        'vfio_group_node'),
    'pcieport-blocks': (
        'hostdev/rules.py',
        'GROUP_SAFE_DRIVERS = ("pci-stub", "pcieport")',
        'GROUP_SAFE_DRIVERS = ("pci-stub",)',
        'pcieport or host_driver_member'),
    'journal-overwrite': (
        'hostdev/journal.py',
        'if entry is None:  # keep the FIRST',
        'if True:  # keep the FIRST',
        'two_binds'),
    'restore-forgets-override': (
        'hostdev/binding.py',
        '_rebind(addr, original, override)',
        '_rebind(addr, original, None)',
        'override_set_before'),
    'rollback-forgets-override': (
        'hostdev/binding.py',
        '_write_override(addr, driver), _write_override(addr, dev.driver_override), addr)',
        '_write_override(addr, driver), _write_override(addr, None), addr)',
        'rollback_gives_back'),
    'unbind-forgets-override': (
        'hostdev/binding.py',
        'run, undo = journal.record(dev.address, dev.driver, dev.driver_override, None)',
        'run, undo = journal.record(dev.address, dev.driver, None, None)',
        'unbind_then_restore'),
    'no-fsync': (
        'hostdev/host.py',
        '                os.fsync(handle.fileno())\n',
        '',
        'temp_fsync_rename or atomically'),
    'in-place': (
        'hostdev/host.py',
        '        fd, tmp = tempfile.mkstemp(prefix=".hostdev-", dir=os.path.dirname(real))',
        '        tmp = real; fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)',
        'temp_fsync_rename or atomically'),
    'sort-text-resolve': (
        'hostdev/binding.py',
        'return [wanted[a] for a in sorted(wanted, key=PciAddress.parse)]',
        'return [wanted[a] for a in sorted(wanted)]',
        'numeric_address_order'),
    'sort-text-group': (
        'hostdev/binding.py',
        'return [chosen[a] for a in sorted(chosen, key=PciAddress.parse)]',
        'return [chosen[a] for a in sorted(chosen)]',
        'numeric_address_order'),
    'sort-text-changes': (
        'hostdev/binding.py',
        'changes.sort(key=lambda c: PciAddress.parse(c.address))',
        'changes.sort(key=lambda c: c.address)',
        'numeric_address_order'),
    'sort-text-restore': (
        'hostdev/binding.py',
        'targets = sorted(recorded.devices, key=PciAddress.parse)',
        'targets = sorted(recorded.devices)',
        'numeric_address_order'),
    'journal-late': (
        'hostdev/binding.py',
        '        plan.add(f"record {addr}\'s driver ({dev.driver or \'none\'}) in {journal.JOURNAL}", run, undo, addr)\n        plan.add(f"write {driver} to {pci.PCI_DEVICES}/{addr}/driver_override",\n                 _write_override(addr, driver), _write_override(addr, dev.driver_override), addr)',  # noqa: E501
        '        plan.add(f"write {driver} to {pci.PCI_DEVICES}/{addr}/driver_override",\n                 _write_override(addr, driver), _write_override(addr, dev.driver_override), addr)\n        plan.add(f"record {addr}\'s driver ({dev.driver or \'none\'}) in {journal.JOURNAL}", run, undo, addr)',  # noqa: E501
        'journal_is_on_disk'),
}


def main() -> int:
    names = sys.argv[1:] or list(MUTANTS)
    survived = 0
    for name in names:
        survived += run_one(name)
    return 1 if survived else 0


def run_one(name: str) -> int:
    """1 when the mutant survived (or its pattern no longer matches), else 0."""
    path, old, new, selection = MUTANTS[name]
    target = ROOT / path
    text = target.read_text()
    if text.count(old) != 1:
        print(f"{name}: PATTERN NOT FOUND in {path} ({text.count(old)} matches): update bench/handmutants.py")
        return 1
    target.write_text(text.replace(old, new))
    try:
        proc = subprocess.run(["nice", "-n", "19", sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                               "-p", "no:cacheprovider", "tests/test_survivors.py", "-k", selection],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{name}: {'KILLED' if proc.returncode else 'SURVIVED'} ({last})", flush=True)
        return 0 if proc.returncode else 1
    finally:
        target.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
