#!/usr/bin/env python3
"""Mutation testing with mutmut 3's mutants but one pytest collection per run (not run in CI).

    .venv/bin/python bench/mutation_fork.py bootloader                       # every mutant of the suite
    .venv/bin/python bench/mutation_fork.py journal --names 'hostdev.journal.x_record__mutmut_*'
    .venv/bin/python bench/mutation_fork.py bootloader --resume --tests tests/test_grub_edit.py -k 'not slow'

mutmut's own runner (bench/mutation.py) starts a pytest session and collects the tests again for
every mutant: 15-25 s a mutant on a loaded 2-core machine, hours for a module. This script lets
mutmut generate the mutants (bench/mutation.py's copy of the project and its configuration, in
``<workdir>/<suite>``), then runs them itself in ``<workdir>/<suite>/mutants``: one collection; a
coverage pass that maps each test to the trampolined functions it calls (mutmut's "stats" mode)
and checks that every test passes unmutated; then, per mutant, a forked child that switches the
mutant on (MUTANT_UNDER_TEST) and runs the tests covering its function, cheapest first, stopping
at the first failure. Verdicts: killed (a test failed), survived, timeout (a test went over 3x
its unmutated CPU time plus 3 s: RLIMIT_CPU), no tests. Results go to a JSON file
(``<workdir>/<suite>.json``; a rerun with --resume skips the mutants already there), the
survivors' diffs are printed at the end. Everything runs at ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import ast
import collections
import difflib
import fnmatch
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutation  # noqa: E402  (bench/mutation.py: SUITES, prepare, ensure_mutmut)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=sorted(mutation.SUITES))
    parser.add_argument("--names", nargs="+", default=None, help="mutant name globs, run in this order")
    parser.add_argument("--tests", nargs="+", default=None, help="the test files (default: the suite's own)")
    parser.add_argument("-k", default=None, help="pytest -k expression over those tests")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hostdev-mutation-fork")
    parser.add_argument("--resume", action="store_true", help="keep the generated mutants and the results so far")
    args = parser.parse_args(argv)
    suite = mutation.SUITES[args.suite]
    mutation.ensure_mutmut()
    workdir = args.workdir / args.suite
    out = args.workdir / f"{args.suite}.json"
    tests = [t for t in (args.tests or suite.tests) if (mutation.REPO / t).exists()]
    globs = args.names or list(suite.names) or [f"hostdev.{Path(f).stem}.*" for f in suite.files]
    if not (args.resume and (workdir / "mutants").is_dir()):
        mutation.prepare(workdir, suite)
        out.unlink(missing_ok=True)
        subprocess.run(["nice", "-n", "10", sys.executable, __file__, "--generate"], cwd=workdir, check=True)
    command = ["nice", "-n", "10", sys.executable, __file__, "--child", str(out), *globs, "--", *tests,
               *(["-k", args.k] if args.k else [])]
    subprocess.run(command, cwd=workdir / "mutants", check=False)
    results = json.loads(out.read_text()) if out.exists() else {}
    print(dict(collections.Counter(results.values())), f"of {len(results)}; survivors:")
    for name in sorted(n for n, verdict in results.items() if verdict not in ("killed", "timeout")):
        print(f"== {name}: {results[name]}\n{show(workdir, name)}")
    return 0


def generate() -> None:
    """In a prepared suite directory: mutmut's own mutant generation, nothing else."""
    import shutil

    copytree = shutil.copytree
    shutil.copytree = lambda src, dst, *a, **kw: copytree(src, dst, *a, **({"symlinks": True, **kw} if not a else kw))
    from mutmut.__main__ import create_mutants, set_mutant_under_test
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    set_mutant_under_test("mutant_generation")
    os.makedirs("mutants", exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    create_mutants(1)


def show(workdir: Path, name: str) -> str:
    """The changed lines of mutant ``name`` against its original (from the generated module)."""
    module, _, function = name.rpartition(".")
    path = workdir / "mutants" / (module.replace(".", "/") + ".py")
    source = path.read_text()
    lines = source.splitlines()
    found = {node.name: lines[node.lineno - 1:node.end_lineno] for node in ast.walk(ast.parse(source))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    original = found.get(function.rpartition("__mutmut_")[0] + "__mutmut_orig", [])
    changed = difflib.unified_diff(original, found.get(function, []), lineterm="", n=0)
    return "\n".join("  " + line for line in changed
                     if line[:1] in "+-" and line[:3] not in ("+++", "---")
                     and not line[1:].lstrip().startswith("def "))


def child(argv) -> int:
    """In ``<suite>/mutants``: OUT GLOB... -- TEST-ARGS...: the runner itself."""
    here = os.getcwd()
    sys.path.insert(0, here)
    os.environ.update(MUTANT_UNDER_TEST="", PYTHONDONTWRITEBYTECODE="1")
    # hostdev run by a test in a child process (python -m hostdev) imports the mutants' copy too;
    # such a test still runs for a mutant only if the coverage pass saw it call the function in process
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    os.environ.pop("HOSTDEV_REQUIRE_REALKERNEL", None)  # unit tests only: nothing to boot here
    import mutmut.mutation.trampoline as trampoline
    import pytest
    from _pytest.runner import runtestprotocol

    hits = set()
    trampoline.record_trampoline_hit = lambda name, caller=None: hits.add(name)
    sep = argv.index("--")
    out, globs, test_args = argv[0], argv[1:sep], argv[sep + 1:]

    def passed(reports) -> bool:
        return all(r.passed or r.skipped for r in reports) and any(r.when == "call" and r.passed for r in reports)

    def mutants():
        names = []
        for base, _, files in os.walk("hostdev"):
            for name in files:
                if name.endswith(".py.meta"):
                    names += list(json.loads(Path(base, name).read_text())["exit_code_by_key"])

        def rank(name):
            first = next(i for i, g in enumerate(globs) if fnmatch.fnmatch(name, g))
            return first, name.partition("__mutmut_")[0], int(name.rpartition("_")[2])
        return sorted((n for n in names if any(fnmatch.fnmatch(n, g) for g in globs)), key=rank)

    def run_one(items, mutant, tests, cost) -> str:
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                trampoline.set_mutant_under_test(mutant)
                for index in tests:
                    # each test may take 3x its unmutated CPU time + 3 s: a hang costs seconds
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    limit = int(usage.ru_utime + usage.ru_stime + 3 * cost[index] + 3)
                    resource.setrlimit(resource.RLIMIT_CPU, (limit, resource.RLIM_INFINITY))
                    if not passed(runtestprotocol(items[index], log=False, nextitem=None)):
                        os._exit(1)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            return "timeout" if signum in (signal.SIGXCPU, signal.SIGKILL) else f"signal {signum}"
        return {0: "survived", 1: "killed"}.get(os.WEXITSTATUS(status), f"exit {os.WEXITSTATUS(status)}")

    class Runner:
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtestloop(self, session):
            import hostdev
            assert hostdev.__file__.startswith(here), f"hostdev imported from {hostdev.__file__}, not the mutants"
            items, cover, cost = session.items, collections.defaultdict(list), []
            trampoline.set_mutant_under_test("stats")
            for index, item in enumerate(items):
                hits.clear()
                start = time.process_time()
                if not passed(runtestprotocol(item, log=False, nextitem=None)):
                    raise SystemExit(f"{item.nodeid} fails without a mutant: fix the tests first")
                cost.append(time.process_time() - start)
                for name in hits:
                    cover[name].append(index)
            trampoline.set_mutant_under_test("")
            results = json.loads(Path(out).read_text()) if os.path.exists(out) else {}
            todo = [m for m in mutants() if m not in results]
            print(f"coverage pass: {len(items)} tests, {sum(cost):.1f} s CPU; {len(todo)} mutants to run", flush=True)
            started = time.time()
            for count, mutant in enumerate(todo, 1):
                tests = sorted(cover.get(mutant.partition("__mutmut_")[0], []), key=lambda i: cost[i])
                results[mutant] = run_one(items, mutant, tests, cost) if tests else "no tests"
                Path(out + ".tmp").write_text(json.dumps(results, indent=0, sort_keys=True))
                os.replace(out + ".tmp", out)
                if count % 20 == 0 or results[mutant] != "killed":
                    print(f"[{count}/{len(todo)} {time.time() - started:.0f}s] {mutant}: {results[mutant]}", flush=True)
            return True

    return int(pytest.main(["--rootdir=.", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-m", "not realkernel",
                            *test_args], plugins=[Runner()]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--generate"]:
        generate()
    elif sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2:]))
    else:
        sys.exit(main())
