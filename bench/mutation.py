#!/usr/bin/env python3
"""Mutation testing of hostdev's core modules with mutmut 3 (not run in CI; CPU-heavy).

    .venv/bin/python bench/mutation.py                          # every core module, whole unit suite
    .venv/bin/python bench/mutation.py --modules host --tests tests/test_host.py tests/test_survivors.py
    .venv/bin/python bench/mutation.py --max-children 2 --names 'hostdev.kubevirt.x_kubevirt_pci_name*'

mutmut is a bench-only tool: this script installs it into the running interpreter's environment
when it is missing (``pip install mutmut==3.*``); it is in none of hostdev's dependency lists.

The work happens in a copy (``--workdir``, default a directory under the system temporary
directory, where the test suite's write guard allows writes): hostdev/, tests/ and pyproject.toml
with a ``[tool.mutmut]`` section appended, so the checkout gets no ``mutants/`` folder and no
mutmut configuration. mutmut runs the tests that cover each mutated function (its own per-test
coverage), always with ``-m "not realkernel"``, at ``nice -n 19``.

Core modules (issue 19): host, binding and the modules split out of it when present (journal,
interlocks, rules), bootloader, and kubevirt's resource naming (only the naming functions of
kubevirt.py, selected by mutant name). The report — per module: mutants, killed, survived,
timeouts, kill rate, and the surviving mutants' names — is printed and written to
``<workdir>/report.md``; ``mutmut show NAME`` in the workdir prints a mutant's diff.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = ["host", "binding", "journal", "hostuse", "interlocks", "rules", "bootloader", "kubevirt"]
# kubevirt.py is mostly rendering; the naming rules are what issue 19 asks to cover
KUBEVIRT_NAMING = ["resource_name_problem", "check_resource_name", "nvidia_pci_name", "nvidia_legacy_pci_name",
                   "nvidia_mdev_name", "kubevirt_pci_name", "kubevirt_mdev_name", "env_var", "normalize"]
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


def prepare(workdir: Path, modules: list, tests: list) -> list:
    """Copy the project into ``workdir`` with a mutmut configuration; returns the module files."""
    files = [f"hostdev/{m}.py" for m in modules if (REPO / "hostdev" / f"{m}.py").is_file()]
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(REPO / "hostdev", workdir / "hostdev", ignore=ignore, symlinks=True)
    shutil.copytree(REPO / "tests", workdir / "tests", ignore=ignore, symlinks=True)
    selection = tests or ["tests"]
    settings = {  # TOML arrays of strings are JSON arrays
        "source_paths": ["hostdev"],
        "only_mutate": files,
        "pytest_add_cli_args": ["-m", "not realkernel", "-p", "no:randomly", "-p", "no:cacheprovider"],
        "pytest_add_cli_args_test_selection": selection,
    }
    conf = "\n[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (workdir / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + conf)
    return files


def parse_results(text: str) -> dict:
    """``mutmut results --all true`` lines ``    name: status`` → {name: status}."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(hostdev\.[\w.]+__mutmut_\d+):\s*(.+?)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def report(results: dict, files: list, names: list) -> str:
    by_module: dict = collections.defaultdict(collections.Counter)
    survivors: dict = collections.defaultdict(list)
    for name, status in sorted(results.items()):
        module = ".".join(name.split(".")[:2])  # hostdev.host.xǁHostǁwrite_file__mutmut_3 → hostdev.host
        by_module[module][status] += 1
        if status == "survived":
            survivors[module].append(name)
    lines = ["| module | mutants | killed | survived | timeout | other | kill rate |", "|---|---|---|---|---|---|---|"]
    total = collections.Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        lines.append(_row(module, counts))
    lines.append(_row("**all**", total))
    out = ["# Mutation testing (mutmut)", "", f"files: {', '.join(files)}"]
    if names:
        out.append(f"mutant names: {', '.join(names)}")
    out += ["", *lines, ""]
    for module, names_ in sorted(survivors.items()):
        out.append(f"## surviving in {module} ({len(names_)})")
        out += [f"- `{n}`" for n in names_]
        out.append("")
    return "\n".join(out)


def _row(module: str, counts: collections.Counter) -> str:
    n = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]  # a mutant the tests hang on is detected
    other = n - counts["killed"] - counts["survived"] - counts["timeout"]
    rate = f"{100.0 * killed / n:.1f}%" if n else "-"
    return f"| {module} | {n} | {counts['killed']} | {counts['survived']} | {counts['timeout']} | {other} | {rate} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", default=CORE, help="hostdev modules (default: the core ones)")
    parser.add_argument("--tests", nargs="*", default=[], help="test files/dirs mutmut may run (default: tests)")
    parser.add_argument("--names", nargs="*", default=None,
                        help="mutant name globs (default: everything in --modules, kubevirt's naming functions only)")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hostdev-mutation")
    parser.add_argument("--report-only", action="store_true", help="only read the results of an earlier run")
    args = parser.parse_args(argv)
    mutmut = ensure_mutmut()
    names = args.names
    if names is None and "kubevirt" in args.modules:
        names = [f"hostdev.{m}.*" for m in args.modules if m != "kubevirt"]
        names += [f"hostdev.kubevirt.x_{f}__mutmut_*" for f in KUBEVIRT_NAMING]
    files = [f"hostdev/{m}.py" for m in args.modules if (REPO / "hostdev" / f"{m}.py").is_file()]
    if not args.report_only:
        files = prepare(args.workdir, args.modules, args.tests)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("HOSTDEV_REQUIRE_REALKERNEL", None)  # unit tests only: nothing to boot here
        cmd = ["nice", "-n", "19", *mutmut, "run", "--max-children", str(args.max_children), *(names or [])]
        print(f"$ (cd {args.workdir} && nice -n 19 mutmut run --max-children {args.max_children} "
              f"{' '.join(names or [])})", flush=True)
        subprocess.run(cmd, cwd=args.workdir, env=env, check=False)
    listing = subprocess.run([*mutmut, "results", "--all", "true"], cwd=args.workdir, capture_output=True,
                             text=True, check=False)
    results = parse_results(listing.stdout)
    if names:
        import fnmatch

        results = {k: v for k, v in results.items() if any(fnmatch.fnmatch(k, n) for n in names)}
    text = report(results, files, names or [])
    (args.workdir / "report.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
