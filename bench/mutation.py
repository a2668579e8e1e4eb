#!/usr/bin/env python3
"""Mutation testing of hostdev's core modules with mutmut 3 (not run in CI; CPU-heavy).

    .venv/bin/python bench/mutation.py                      # every suite below, one after the other
    .venv/bin/python bench/mutation.py rules journal         # some suites
    .venv/bin/python bench/mutation.py binding --names 'hostdev.binding.x_plan_restore*'
    .venv/bin/python bench/mutation.py --report-only         # the tables of the last runs again

A suite is one core module (bootloader: bootloader.py with bootargs.py, where the GRUB edit
lives; kubevirt-names: only kubevirt.py's resource-name functions, selected by mutant name) and
the test files that exercise it (SUITES): mutmut runs, for each mutant, those of the suite's tests
that cover the mutated function, so a mutant costs seconds, not a whole unit-suite run.

mutmut is a bench-only tool: this script installs it into the running interpreter's environment
when it is missing (``pip install mutmut==3.*``); it is in none of hostdev's dependency lists,
and nothing in CI runs this script.

Each suite works in a copy (``<workdir>/<suite>``; the default workdir is under the system
temporary directory, where the test suite's write guard allows writes): hostdev/, tests/ and
pyproject.toml with a ``[tool.mutmut]`` section appended, so the checkout gets no ``mutants/``
folder and no mutmut configuration. Tests run with ``-m "not realkernel"``, at ``nice -n 10``.
The report — per suite: mutants, killed, survived, timeouts, kill rate, and the surviving
mutants' names — is printed and written to ``<workdir>/report.md``; ``mutmut show NAME`` in a
suite's directory prints a mutant's diff.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, NamedTuple, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]


class Suite(NamedTuple):
    files: Tuple[str, ...]          # the modules mutmut mutates
    tests: Tuple[str, ...]          # the test files mutmut may run for them
    names: Tuple[str, ...] = ()     # mutant-name globs (empty: every mutant of ``files``)


# kubevirt.py is mostly rendering and document merging; issue 19 asks for its resource naming
KUBEVIRT_NAMING = ("_go_upper", "resource_name_problem", "check_resource_name", "nvidia_pci_name",
                   "nvidia_legacy_pci_name", "nvidia_plugin_text", "nvidia_mdev_name", "_sanitise",
                   "kubevirt_pci_name", "kubevirt_mdev_name", "env_var", "normalize", "nvidia_plugin_name",
                   "_pci_resource")
BINDING_TESTS = ("tests/behaviour/test_binding.py", "tests/behaviour/test_binding_faults.py",
                 "tests/test_survivors.py", "tests/test_mutants.py")
SUITES: Dict[str, Suite] = {
    "rules": Suite(("hostdev/rules.py",), ("tests/test_rules.py", "tests/test_survivors.py")),
    "journal": Suite(("hostdev/journal.py",), ("tests/test_journal.py", "tests/test_survivors.py")),
    "binding": Suite(("hostdev/binding.py",), BINDING_TESTS + ("tests/test_rules.py", "tests/test_faults.py")),
    "host": Suite(("hostdev/host.py",), ("tests/test_host.py", "tests/test_host_safety.py", "tests/test_survivors.py",
                                         "tests/test_mutants.py", "tests/test_record.py")),
    "bootloader": Suite(("hostdev/bootloader.py", "hostdev/bootargs.py"),
                        ("tests/test_bootloader.py", "tests/test_grub_edit.py", "tests/test_iommu_enable.py")),
    # the listing's reading and naming (issue 18's speed work changed them)
    "pci": Suite(("hostdev/pci.py", "hostdev/pciids.py"),
                 ("tests/test_pci.py", "tests/test_pciids.py", "tests/test_cli.py", "tests/test_cli_output.py",
                  "tests/test_survivors.py", "tests/test_mutants.py")),
    "kubevirt-names": Suite(("hostdev/kubevirt.py",), ("tests/test_kubevirt_names.py", "tests/test_nvidia_naming.py",
                                                      "tests/test_kubevirt.py"),
                            tuple(f"hostdev.kubevirt.x_{f}__mutmut_*" for f in KUBEVIRT_NAMING)),
}
STATUS_WORDS = ("killed", "survived", "timeout", "suspicious", "no tests", "skipped", "not checked",
                "segfault", "check was interrupted by user", "caught by type check")


# mutmut copies tests/ with shutil.copytree, which follows symlinks: the recorded sysfs trees of
# tests/data (links that loop, as sysfs's do) would be copied without end. Keep links as links.
LAUNCHER = """
import shutil, sys
_copytree = shutil.copytree
def copytree(src, dst, *args, **kwargs):
    if not args:
        kwargs.setdefault("symlinks", True)
    return _copytree(src, dst, *args, **kwargs)
shutil.copytree = copytree
from mutmut.__main__ import cli
sys.argv[0] = "mutmut"
cli()
"""


def ensure_mutmut() -> list:
    """The command that runs mutmut (installed into this environment when missing)."""
    try:
        import mutmut  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mutmut==3.*"], check=True)
    return [sys.executable, "-c", LAUNCHER]


def prepare(workdir: Path, suite: Suite) -> None:
    """Copy the project into ``workdir`` with a mutmut configuration for ``suite``."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(REPO / "hostdev", workdir / "hostdev", ignore=ignore, symlinks=True)
    shutil.copytree(REPO / "tests", workdir / "tests", ignore=ignore, symlinks=True)
    settings = {  # TOML arrays of strings are JSON arrays
        "source_paths": ["hostdev"],
        "only_mutate": list(suite.files),
        "pytest_add_cli_args": ["-m", "not realkernel", "-p", "no:randomly", "-p", "no:cacheprovider"],
        "pytest_add_cli_args_test_selection": [t for t in suite.tests if (REPO / t).exists()],
    }
    conf = "\n[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (workdir / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + conf)


def parse_results(text: str) -> dict:
    """``mutmut results --all true`` lines ``    name: status`` → {name: status}."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(hostdev\.[\w.]+__mutmut_\d+):\s*(.+?)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def report(results: Dict[str, Dict[str, str]]) -> str:
    """The tables: one row per suite, then each suite's surviving mutants by name."""
    lines = ["| suite | mutants | killed | survived | timeout | other | kill rate |",
             "|---|---|---|---|---|---|---|"]
    out = []
    for suite, found in results.items():
        counts = collections.Counter(found.values())
        lines.append(_row(suite, counts))
        survivors = sorted(n for n, status in found.items() if status not in ("killed", "timeout"))
        if survivors:
            out.append(f"## not killed in {suite} ({len(survivors)})")
            out += [f"- `{n}`: {found[n]}" for n in survivors]
            out.append("")
    return "\n".join(["# Mutation testing (mutmut)", "", *lines, "", *out])


def _row(suite: str, counts: collections.Counter) -> str:
    n = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]  # a mutant the tests hang on is detected
    other = n - counts["killed"] - counts["survived"] - counts["timeout"]
    rate = f"{100.0 * killed / n:.1f}%" if n else "-"
    return f"| {suite} | {n} | {counts['killed']} | {counts['survived']} | {counts['timeout']} | {other} | {rate} |"


def results_of(mutmut: list, workdir: Path, globs: Sequence[str]) -> Dict[str, str]:
    listing = subprocess.run([*mutmut, "results", "--all", "true"], cwd=workdir, capture_output=True,
                             text=True, check=False)
    found = parse_results(listing.stdout)
    if globs:
        found = {k: v for k, v in found.items() if any(fnmatch.fnmatch(k, g) for g in globs)}
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"default: all of {', '.join(SUITES)}")
    parser.add_argument("--names", nargs="*", default=None,
                        help="mutant name globs (default: the suite's own: every mutant of its files)")
    parser.add_argument("--tests", nargs="+", default=None,
                        help="the test files mutmut may run (default: the suite's own)")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hostdev-mutation")
    parser.add_argument("--report-only", action="store_true", help="only read the results of the last runs")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; the suites are {', '.join(SUITES)}")
    mutmut = ensure_mutmut()
    results: Dict[str, Dict[str, str]] = {}
    for name in args.suites or list(SUITES):
        suite = SUITES[name]
        workdir = args.workdir / name
        globs = list(args.names) if args.names is not None else list(suite.names)
        if not args.report_only:
            prepare(workdir, suite._replace(tests=tuple(args.tests)) if args.tests else suite)
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            env.pop("HOSTDEV_REQUIRE_REALKERNEL", None)  # unit tests only: nothing to boot here
            print(f"$ (cd {workdir} && nice -n 10 mutmut run --max-children {args.max_children} "
                  f"{' '.join(globs)})", flush=True)
            subprocess.run(["nice", "-n", "10", *mutmut, "run", "--max-children", str(args.max_children), *globs],
                           cwd=workdir, env=env, check=False)
        if workdir.is_dir():
            results[name] = results_of(mutmut, workdir, globs)
    text = report(results)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "report.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
