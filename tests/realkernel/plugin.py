"""pytest plugin: run ``@pytest.mark.realkernel`` tests in a throwaway QEMU guest, replay the outcomes.

On the host, every selected realkernel item is replaced by a proxy item that never runs the test
or its fixtures. When the first proxy is about to run, the guest is booted ONCE for the session
(tests/realkernel/vm.py) and runs

    <this python> -m pytest -p no:cacheprovider -p tests.realkernel.plugin -m realkernel <nodeids>

from the repository root (repo and venv are visible read-only at the same paths). Inside the guest
(``hostdev.testguest=1`` on the kernel command line) this plugin only writes one JSON line per
finished test to /run/vmout/report.jsonl. Back on the host each proxy replays its guest outcome:
passed, failed (with the guest's failure text), error, skipped (with reason), xfailed; with
HOSTDEV_REQUIRE_REALKERNEL=1 a guest skip or xfail fails, and so does any test without a passed
call phase (tests/strict.py). A test the guest did not report fails; a failed or timed-out boot
fails every realkernel item with the console tail. Missing QEMU / kernel / busybox skips them, or
fails them with HOSTDEV_REQUIRE_REALKERNEL=1.

Env: HOSTDEV_VM_TIMEOUT (s: a cap on the whole guest run; by default there is none, and the watchdog
of tests/realkernel/speed.py kills a guest that makes no progress within an allowance measured from
this machine's speed), HOSTDEV_VM_MEM (default 2G), HOSTDEV_VM_STREAM=1 (echo the
guest console live; also with -vv), HOSTDEV_VM_APPEND (extra kernel parameters, e.g. "loglevel=7"),
HOSTDEV_REQUIRE_REALKERNEL=1 (never skip).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Iterable, Optional, Sequence

import pytest

from . import speed, vm
from .guest import MDEV_DIR_ENV, MDEV_ERROR_ENV, REQUIRE_ENV, in_test_guest

pytest_plugins = ["tests.realkernel.fixtures"]

MARK = "realkernel"
REPORT_ENV = "HOSTDEV_REALKERNEL_REPORT"
TIMEOUT_ENV = "HOSTDEV_VM_TIMEOUT"
MEM_ENV = "HOSTDEV_VM_MEM"
STREAM_ENV = "HOSTDEV_VM_STREAM"
APPEND_ENV = "HOSTDEV_VM_APPEND"
GUEST_REPORT = "/run/vmout/report.jsonl"
GUEST_JUNIT = "/run/vmout/junit.xml"
GUEST_BASETEMP = "/tmp/pytest-guest"
RUNS_KEPT = 5
# Marks the HOST must not evaluate on a proxy: the guest evaluates them and reports the outcome.
GUEST_ONLY_MARKS = frozenset({"skip", "skipif", "xfail", "usefixtures"})


# ======================================================================================== config
def vm_timeout(environ=os.environ) -> Optional[float]:
    """HOSTDEV_VM_TIMEOUT's cap in seconds, or None (no cap: the calibrated watchdog alone)."""
    raw = environ.get(TIMEOUT_ENV, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise pytest.UsageError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def vm_mem(environ=os.environ) -> str:
    raw = environ.get(MEM_ENV, "") or vm.DEFAULT_MEM
    if not re.fullmatch(r"[1-9][0-9]*[MG]?", raw):
        raise pytest.UsageError(f"{MEM_ENV}={raw!r}: expected a QEMU memory size such as 2G or 3072M")
    return raw


def vm_append(environ=os.environ) -> list:
    tokens = shlex.split(environ.get(APPEND_ENV, ""))
    if any(t.startswith("hostdev.testguest") for t in tokens):
        raise pytest.UsageError(f"{APPEND_ENV} must not change {vm.GUEST_TOKEN}")
    return tokens


def require_realkernel(environ=os.environ) -> bool:
    return environ.get(REQUIRE_ENV) == "1"


# ======================================================================================== report (guest side)
def summarize_phases(reports: Sequence) -> dict:
    """One test's outcome from its setup/call/teardown TestReports (or look-alikes).

    Fails closed: a test passes only on a passed call phase; no reports, or phases none of which
    is a passed call (an unknown outcome, a lost report), make it "failed"."""
    entry = {"outcome": None, "when": "call", "message": "", "duration": 0.0}
    for rep in reports:
        entry["duration"] += float(getattr(rep, "duration", 0.0) or 0.0)
    for rep in reports:
        wasxfail = getattr(rep, "wasxfail", None)
        if rep.outcome == "failed":
            entry.update(outcome="failed" if rep.when == "call" else "error", when=rep.when,
                         message=getattr(rep, "longreprtext", "") or str(rep.longrepr))
            return entry
        if rep.outcome == "skipped":
            if wasxfail is not None:
                entry.update(outcome="xfailed", when=rep.when, message=wasxfail)
            else:
                longrepr = rep.longrepr
                # (path, lineno, "Skipped: reason"): the host reports it at the test's own location
                message = str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)
                if message.startswith("Skipped: "):
                    message = message[len("Skipped: "):]
                entry.update(outcome="skipped", when=rep.when, message=message)
            return entry
        if rep.when == "call" and rep.outcome == "passed":
            entry.update(outcome="passed" if wasxfail is None else "xpassed",
                         message="" if wasxfail is None else wasxfail)
        elif rep.outcome != "passed":
            entry.update(outcome="failed", when=rep.when,
                         message=f"unknown outcome {rep.outcome!r} in the {rep.when} phase")
            return entry
    if entry["outcome"] is None:
        seen = ", ".join(f"{rep.when} {rep.outcome}" for rep in reports) or "none"
        entry.update(outcome="failed", message=f"no passed call phase was reported (phases: {seen})")
    return entry


class GuestReporter:
    """Inside the guest: append one JSON line per finished test (and per collection error)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._phases: dict = {}
        self._unit_s: Optional[float] = None
        self._measured_at = 0.0

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        # the host's watchdog allows each test the default allowance; a test that waits longer
        # announces its own (speed.allow). The unit is re-measured now and then: load changes.
        now = time.monotonic()
        if self._unit_s is None or now - self._measured_at > speed.REMEASURE_S:
            self._unit_s = speed.measure()
            self._measured_at = time.monotonic()
            with open(os.path.join(os.path.dirname(self.path), "speed.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"nodeid": nodeid, "unit_s": round(self._unit_s, 4)}) + "\n")
        speed.announce(speed.allowance(speed.TEST_GUEST_UNITS, self._unit_s))

    def _write(self, entry: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # a test that crashes the guest must not lose earlier lines

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self._write({"nodeid": report.nodeid, "outcome": "error", "when": "collect",
                         "message": str(report.longrepr), "duration": 0.0})

    def pytest_runtest_logreport(self, report) -> None:
        self._phases.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        entry = summarize_phases(self._phases.pop(nodeid, []))
        entry["nodeid"] = nodeid
        self._write(entry)


def parse_report(text: str) -> tuple:
    """(results by nodeid, collection errors) from report.jsonl; a torn last line is ignored."""
    results: dict = {}
    collect_errors: list = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or "nodeid" not in entry or "outcome" not in entry:
            continue
        if entry.get("when") == "collect":
            collect_errors.append(entry)
        else:
            results[entry["nodeid"]] = entry
    return results, collect_errors


# ======================================================================================== verdicts (host side)
@dataclasses.dataclass(frozen=True)
class Verdict:
    phase: str    # "setup" | "call" | "teardown": where the host raises it
    kind: str     # "pass" | "fail" | "skip" | "xfail"
    message: str = ""


def unavailable_verdict(missing: Sequence, require: bool) -> Verdict:
    """QEMU/kernel/... missing: skip with what and how to install, or fail when it is required."""
    lines = [f"  - {m.what}\n      fix: {m.fix}" for m in missing]
    text = "realkernel guest unavailable:\n" + "\n".join(lines)
    if require:
        return Verdict("call", "fail", text + f"\n({REQUIRE_ENV}=1: realkernel tests must not be skipped)")
    return Verdict("setup", "skip", "realkernel guest unavailable: " + "; ".join(str(m) for m in missing))


def boot_failure_verdict(error: str, console_tail: str) -> Verdict:
    return Verdict("call", "fail", f"realkernel guest failed: {error}\n--- guest console (tail) ---\n{console_tail}")


def entry_verdict(entry: Optional[dict], collect_errors: Iterable[dict] = (), *,
                  nodeid: str = "", fallback: str = "", require: bool = False) -> Verdict:
    """The replay of one guest result (``entry`` None: the guest did not report the test).

    With ``require`` (HOSTDEV_REQUIRE_REALKERNEL=1) a guest skip, xfail or xpass fails."""
    if entry is None:
        for err in collect_errors:
            parent = err.get("nodeid", "")
            if parent and (nodeid == parent or nodeid.startswith(parent + "::")
                           or nodeid.startswith(parent.rstrip("/") + "/")):
                return Verdict("setup", "fail", f"[guest] collection of {parent} failed:\n{err.get('message', '')}")
        return Verdict("call", "fail", f"[guest] {nodeid or 'this test'} was not reported by the guest's pytest "
                                       f"session{': ' + fallback if fallback else ''}")
    outcome = entry.get("outcome")
    message = entry.get("message", "")
    when = entry.get("when", "call")
    if require and outcome in ("skipped", "xfailed", "xpassed"):
        return Verdict("call", "fail", f"[guest] {outcome} under {REQUIRE_ENV}=1 (nothing may skip or xfail): "
                                       f"{message}")
    if outcome in ("passed", "xpassed"):
        return Verdict("call", "pass")
    if outcome == "failed":
        return Verdict("call", "fail", f"[guest] {message}")
    if outcome == "error":
        return Verdict(when if when in ("setup", "teardown") else "setup", "fail",
                       f"[guest] error in {when}:\n{message}")
    if outcome == "skipped":
        return Verdict(when if when in ("setup", "call") else "setup", "skip", f"[guest] {message}")
    if outcome == "xfailed":
        return Verdict("call", "xfail", f"[guest] {message}")
    return Verdict("call", "fail", f"[guest] unknown outcome {outcome!r}")


def apply_verdict(verdict: Verdict, phase: str) -> None:
    if verdict.phase != phase or verdict.kind == "pass":
        return
    if verdict.kind == "fail":
        pytest.fail(verdict.message, pytrace=False)
    if verdict.kind == "xfail":
        pytest.xfail(verdict.message)
    try:  # report the skip at the test's own location, not at this line (pytest >= 7)
        raise pytest.skip.Exception(verdict.message, _use_item_location=True)
    except TypeError:
        pytest.skip(verdict.message)


# ======================================================================================== guest command
def guest_pytest_argv(python: str, nodeids: Sequence[str], *, rootdir: str,
                      inifile: Optional[str] = None, tbstyle: Optional[str] = None) -> list:
    # no hypothesis plugin in the guest: no realkernel test uses it, and its example database
    # would be in the read-only checkout (a warning at every start)
    argv = [python, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
            "-p", "tests.realkernel.plugin",
            "-m", MARK, f"--rootdir={rootdir}", f"--basetemp={GUEST_BASETEMP}",
            f"--junitxml={GUEST_JUNIT}", "-v", "-ra"]
    if inifile:
        argv += ["-c", inifile]
    if tbstyle and tbstyle != "auto":
        argv.append(f"--tb={tbstyle}")
    return argv + list(nodeids)


def guest_commands(argv: Sequence[str], *, rootdir: str, env: dict, path_prefix: Optional[str] = None) -> list:
    """Shell lines for the guest's cmd.sh: cd, environment, pytest with timing markers, its rc."""
    up = "$(cut -d' ' -f1 /proc/uptime)"
    used = "$(awk '/^MemTotal/{t=$2} /^MemAvailable/{a=$2} END{print int((t-a)/1024)}' /proc/meminfo)"
    lines = [f"cd {shlex.quote(rootdir)} || exit 97"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
    if path_prefix:
        lines.append(f"export PATH={shlex.quote(path_prefix)}:\"$PATH\"")
    lines += [
        f"echo \"{vm.MARKER} pytest-start={up}\"",
        shlex.join(argv),
        "rc=$?",
        f"echo \"{vm.MARKER} pytest-end={up} pytest-rc=$rc guest-mem-used-mib={used}\"",
        "exit $rc",
    ]
    return lines


# ======================================================================================== proxy item
class GuestProxyItem(pytest.Item):
    """Stands in on the host for a realkernel test; its outcome is the guest's."""

    def __init__(self, *, original: pytest.Item, harness: HostHarness, **kwargs) -> None:
        super().__init__(**kwargs)
        self._original = original
        self._harness = harness
        for mark in original.own_markers:
            if mark.name not in GUEST_ONLY_MARKS:
                self.own_markers.append(mark)
                self.keywords[mark.name] = mark
        self.extra_keyword_matches.update(original.extra_keyword_matches)

    @classmethod
    def wrap(cls, original: pytest.Item, harness: HostHarness) -> GuestProxyItem:
        return cls.from_parent(original.parent, name=original.name, nodeid=original.nodeid,
                               original=original, harness=harness)

    def iter_markers_with_node(self, name=None):
        for node, mark in super().iter_markers_with_node(name):
            if mark.name not in GUEST_ONLY_MARKS:
                yield node, mark

    def reportinfo(self):
        return self._original.reportinfo()

    def setup(self) -> None:
        apply_verdict(self._harness.verdict(self), "setup")

    def runtest(self) -> None:
        apply_verdict(self._harness.verdict(self), "call")

    def teardown(self) -> None:
        apply_verdict(self._harness.verdict(self), "teardown")


# ======================================================================================== host harness
@dataclasses.dataclass
class GuestRun:
    nodeids: list
    missing: list = dataclasses.field(default_factory=list)
    result: Optional[vm.BootResult] = None
    error: Optional[str] = None           # harness error before/while booting
    results: dict = dataclasses.field(default_factory=dict)
    collect_errors: list = dataclasses.field(default_factory=list)
    kernel: Optional[vm.Kernel] = None
    mdev: Optional[vm.MdevBuild] = None
    prepare_s: float = 0.0


def _make_run_dir() -> Path:
    runs = vm.CACHE_DIR / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    old = sorted((p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: p.name)
    for stale in old[:max(0, len(old) - (RUNS_KEPT - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    run_dir = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run_dir.mkdir()
    latest = runs / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(run_dir.name)
    except OSError:
        pass
    return run_dir


class HostHarness:
    """On the host: swaps realkernel items for proxies and runs the guest session once, lazily."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run: Optional[GuestRun] = None
        self.timeout = vm_timeout()
        self.mem = vm_mem()
        self.append = vm_append()
        self.require = require_realkernel()

    # ---- collection
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        for index, item in enumerate(items):
            # fullsystem tests (tests/fullsystem) are realkernel too, but run on the host: they boot their own VM
            if (not isinstance(item, GuestProxyItem) and item.get_closest_marker(MARK) is not None
                    and item.get_closest_marker("fullsystem") is None):
                items[index] = GuestProxyItem.wrap(item, self)

    # ---- run
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if isinstance(item, GuestProxyItem) and self.run is None:
            self.run = self._run_guest(item.session)
        return None

    def verdict(self, item: GuestProxyItem) -> Verdict:
        if self.run is None:  # not through pytest_runtest_protocol (another runner): run now
            self.run = self._run_guest(item.session)
        run = self.run
        if run.missing:
            return unavailable_verdict(run.missing, self.require)
        entry = run.results.get(item.nodeid)
        if run.error and entry is None:  # tests the guest reported before it died/hung keep their outcome
            tail = run.result.console_tail() if run.result else ""
            return boot_failure_verdict(run.error, tail)
        result = run.result
        fallback = ""
        if result is not None and not run.results:
            fallback = (f"guest pytest exited with rc {result.rc}\n--- guest console (tail) ---\n"
                        f"{result.console_tail()}")
        elif result is not None:
            fallback = f"guest pytest exited with rc {result.rc}; see {result.outdir}/console.log"
        return entry_verdict(entry, run.collect_errors, nodeid=item.nodeid, fallback=fallback,
                             require=self.require)

    def _say(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(text)

    def _run_guest(self, session) -> GuestRun:
        proxies = [i for i in session.items if isinstance(i, GuestProxyItem)]
        run = GuestRun(nodeids=[p.nodeid for p in proxies])
        try:
            self._prepare_and_boot(run, proxies)
        except vm.HarnessError as exc:
            run.error = str(exc)
        except Exception:  # a harness bug must fail the realkernel tests, not crash the session
            run.error = "internal error of the realkernel harness:\n" + traceback.format_exc()
        return run

    def _prepare_and_boot(self, run: GuestRun, proxies: list) -> None:
        kernel, missing = vm.check_prerequisites()
        if missing:
            run.missing = missing
            return
        run.kernel = kernel
        started = time.monotonic()
        env = {"PYTHONDONTWRITEBYTECODE": "1", REPORT_ENV: GUEST_REPORT}
        for key in (REQUIRE_ENV, "HOSTDEV_TEST_GUARD"):
            if key in os.environ:
                env[key] = os.environ[key]
        if any("mdev_samples" in getattr(p._original, "fixturenames", ()) for p in proxies):
            self._say(f"realkernel: sample mdev drivers for {kernel.version} (built once, then cached) ...")
            run.mdev = vm.build_mdev_samples(kernel)
            env[MDEV_DIR_ENV] = str(run.mdev.directory)
            if not run.mdev.ok:
                env[MDEV_ERROR_ENV] = run.mdev.detail
        rootdir = str(self.config.rootpath)
        inifile = str(self.config.inipath) if getattr(self.config, "inipath", None) else None
        python = sys.executable
        argv = guest_pytest_argv(python, run.nodeids, rootdir=rootdir, inifile=inifile,
                                 tbstyle=getattr(self.config.option, "tbstyle", None))
        commands = guest_commands(argv, rootdir=rootdir, env=env, path_prefix=str(Path(python).parent))
        stream = os.environ.get(STREAM_ENV) == "1" or self.config.option.verbose >= 2
        vm.build_initramfs(kernel)
        outdir = _make_run_dir()
        run.prepare_s = time.monotonic() - started
        self._say(f"realkernel: booting the QEMU guest (TCG, kernel {kernel.version}) for "
                  f"{len(run.nodeids)} test(s); output in {outdir}")
        result = vm.boot(commands, outdir, self.timeout, mem=self.mem, kernel=kernel, append=self.append,
                         on_console=(lambda line: self._say("guest| " + line)) if stream else None)
        run.result = result
        report = result.outdir / "vmout" / "report.jsonl"
        if report.is_file():
            run.results, run.collect_errors = parse_report(report.read_text(encoding="utf-8", errors="replace"))
        if result.error:
            run.error = result.error
        self._say(f"realkernel: guest finished in {result.wall:.1f} s (rc {result.rc})")

    # ---- summary
    def pytest_terminal_summary(self, terminalreporter) -> None:
        run = self.run
        if run is None:
            return
        tr = terminalreporter
        tr.section("realkernel guest")
        if run.missing:
            verdict = unavailable_verdict(run.missing, self.require)
            tr.write_line(verdict.message)
            return
        if run.kernel:
            tr.write_line(f"kernel {run.kernel.version}; {len(run.nodeids)} test(s) selected; "
                          f"host preparation {run.prepare_s:.1f} s")
        if run.mdev:
            tr.write_line(f"sample mdev drivers: {'ok' if run.mdev.ok else 'NOT AVAILABLE'} ({run.mdev.detail})"
                          + (f", log {run.mdev.log}" if run.mdev.log and not run.mdev.ok else ""))
        if run.error:
            tr.write_line(f"ERROR: {run.error}", red=True)
        result = run.result
        if result is None:
            return
        if result.qemu:
            tr.write_line(result.qemu)
        tr.write_line(timing_line(result))
        tr.write_line(speed_line(result))
        counts: dict = {}
        for entry in run.results.values():
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        reported = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
        tr.write_line(f"guest reported: {reported}; artifacts: {result.outdir} "
                      "(console.log, vmout/junit.xml, vmout/report.jsonl)")
        tr.write_line("--- guest console (tail) ---")
        for line in result.console_tail(40).splitlines():
            tr.write_line("guest| " + line)


def speed_line(result: vm.BootResult) -> str:
    """The speed units measured on both sides, from which every allowance was derived."""
    units = []
    path = result.outdir / "vmout" / "speed.jsonl"
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                units.append(float(json.loads(line)["unit_s"]))
            except (ValueError, KeyError, TypeError):
                continue
    guest = (f"guest unit {min(units):.3f}-{max(units):.3f} s over {len(units)} measurement(s)" if units
             else "no guest measurement")
    return (f"speed (tests/realkernel/speed.py): host unit {result.host_unit_s:.4f} s, boot allowed "
            f"{result.boot_allowance:.0f} s; {guest}")


def timing_line(result: vm.BootResult) -> str:
    m = result.markers

    def num(key: str) -> Optional[float]:
        try:
            return float(m[key])
        except (KeyError, ValueError):
            return None

    parts = []
    if num("cmd-start") is not None:
        parts.append(f"boot {num('cmd-start'):.1f} s to first command")
    if num("coldplug-done") is not None and num("cmd-start") is not None:
        parts.append(f"coldplug {num('coldplug-done') - num('cmd-start'):.1f} s")
    if num("pytest-start") is not None and num("pytest-end") is not None:
        parts.append(f"guest pytest {num('pytest-end') - num('pytest-start'):.1f} s")
    parts.append(f"QEMU wall {result.wall:.1f} s")
    if result.peak_rss_kib:
        parts.append(f"QEMU peak RSS {result.peak_rss_kib / 1024:.0f} MiB")
    if "guest-mem-used-mib" in m:
        parts.append(f"guest memory used {m['guest-mem-used-mib']} MiB")
    return "timings: " + ", ".join(parts)


# ======================================================================================== registration
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: runs against a real Linux kernel inside the QEMU guest "
                                       "(tests/realkernel)")
    if config.pluginmanager.has_plugin("hostdev-realkernel"):
        return
    if in_test_guest():
        path = os.environ.get(REPORT_ENV)
        if path:
            config.pluginmanager.register(GuestReporter(path), "hostdev-realkernel")
        return
    config.pluginmanager.register(HostHarness(config), "hostdev-realkernel")
