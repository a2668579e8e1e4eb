#!/usr/bin/env python3
"""Record this machine's PCI-relevant sysfs/procfs into a directory that is a valid fake root.

What is recorded is hostdev.recording's (the same as ``hostdev record FILE``, which writes one
archive instead of a directory); this script only writes those members out as a tree.

Strictly read-only towards the source: it only lists directories, reads small attributes and
reads links (never ``config``: on real hardware each config read can be trapped and slow, and
hostdev never reads it). Links are written RELATIVE, as sysfs stores them, so the recording
works with hostdev's ``--root`` and with tests/fakesys.SimKernel.

    scripts/record-sysfs.py --out tests/data/NAME            # record / (this machine)
    scripts/record-sysfs.py --source-root FAKE --out DIR     # record a fake root (tests)

Recorded: /sys/bus/pci/devices/* with their /sys/devices directories (vendor device
subsystem_* class revision numa_node driver_override boot_vga uevent modalias enable
sriov_* reset_method and the write-only attributes as empty files), the driver / iommu_group /
physfn / virtfnN / subsystem links, mdev_supported_types, /sys/bus/pci/drivers/* (with bind,
unbind, new_id, remove_id and module links), /sys/kernel/iommu_groups, /sys/class/iommu,
/sys/module/* (initstate), ACPI DMAR/IVRS presence (empty marker files), /proc/cmdline,
/proc/cpuinfo (first processor, identification and flags only), /proc/sys/kernel/osrelease,
/lib/modules/<release>/modules.{dep,builtin} when present (module names only, paths kept).
Refuses to write inside /sys, /proc or /dev, or inside the source root's sys, proc or dev.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FORBIDDEN = ("/sys", "/proc", "/dev")


def write_tree(members, out: str) -> None:
    """The recording's members as a directory tree under ``out`` (links relative, as recorded)."""
    for path, member in sorted(members.items(), key=lambda item: item[1].kind == "link"):
        real = os.path.normpath(os.path.join(out, path.lstrip("/")))
        if not real.startswith(out.rstrip("/") + "/"):
            raise SystemExit(f"record-sysfs: refusing to write {real} outside {out}")
        if member.kind == "dir":
            os.makedirs(real, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(real), exist_ok=True)
        if member.kind == "link":
            os.symlink(member.target, real)
            continue
        with open(real, "wb") as handle:
            handle.write(member.data)
        os.chmod(real, member.mode)


def refuse(out: str, source: str) -> Optional[str]:
    real = os.path.realpath(out)
    src = os.path.realpath(source)
    for forbidden in FORBIDDEN:
        for base in {forbidden, os.path.join(src, forbidden.lstrip("/"))}:
            if real == base or real.startswith(base.rstrip("/") + "/"):
                return f"refusing to write into {base}"
    if real == src or src.startswith(real + "/"):
        return "refusing to write over the source root"
    if os.path.exists(real) and os.listdir(real):
        return f"{out} exists and is not empty"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", required=True, help="new or empty directory for the recording")
    parser.add_argument("--source-root", default="/", help="the tree to record (default: this machine)")
    args = parser.parse_args(argv)
    problem = refuse(args.out, args.source_root)
    if problem:
        print(f"record-sysfs: {problem}", file=sys.stderr)
        return 2
    from hostdev import recording
    from hostdev.host import Host

    members = recording.record(Host(os.path.realpath(args.source_root)))
    write_tree(members, os.path.realpath(args.out))
    count = recording.functions(members)
    print(f"recorded {count} PCI functions from {args.source_root} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
