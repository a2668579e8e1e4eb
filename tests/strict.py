"""Fail closed under HOSTDEV_REQUIRE_REALKERNEL=1 (CI): nothing may skip, xfail or go unrun.

A pytest plugin (``pytest_plugins = ["tests.strict"]``), loaded on the host and in the QEMU
guest alike. With ``HOSTDEV_REQUIRE_REALKERNEL=1``:

* a test phase that skips (``pytest.skip``, a ``skip``/``skipif`` mark, ``importorskip`` inside a
  test or fixture) or xfails (an ``xfail`` mark, ``pytest.xfail``; an xpass too) is reported as
  failed, with the skip's reason;
* a module or class whose collection skips (``pytest.importorskip`` or ``pytest.skip(...,
  allow_module_level=True)`` at module level) is a collection error;
* at the end, every selected test must have a passed call phase; a test with none (no report,
  a report lost by a plugin) fails the session.

Skips named in ``HOSTDEV_ALLOWED_SKIPS`` (a file of node ids, one a line, ``#`` comments; see
scripts/allowed-skips.txt) stay skips. Without ``HOSTDEV_REQUIRE_REALKERNEL=1`` this plugin does
nothing.
"""

from __future__ import annotations

import os
from typing import FrozenSet

import pytest

REQUIRE_ENV = "HOSTDEV_REQUIRE_REALKERNEL"
ALLOWED_ENV = "HOSTDEV_ALLOWED_SKIPS"
PREFIX = f"{REQUIRE_ENV}=1: nothing may skip or xfail"


def required(environ=os.environ) -> bool:
    return environ.get(REQUIRE_ENV) == "1"


def allowed_skips(environ=os.environ) -> FrozenSet[str]:
    """Node ids allowed to skip, from the file named by HOSTDEV_ALLOWED_SKIPS (empty: none)."""
    path = environ.get(ALLOWED_ENV, "")
    if not path:
        return frozenset()
    with open(path, encoding="utf-8") as handle:
        lines = (line.split("#", 1)[0].strip() for line in handle)
        return frozenset(line for line in lines if line)


def skip_reason(report) -> str:
    """The reason of a skipped report: the text of ``(path, lineno, "Skipped: reason")``."""
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return f"xfail: {wasxfail}" if wasxfail else "xfail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def fail_closed(report, what: str) -> None:
    """Turn a skipped/xfailed/xpassed ``report`` into a failed one that says why."""
    reason = skip_reason(report)
    report.outcome = "failed"
    if hasattr(report, "wasxfail"):
        del report.wasxfail
    report.longrepr = f"{PREFIX} ({what}): {reason}"


class Strict:
    def __init__(self, allowed: FrozenSet[str]) -> None:
        self.allowed = allowed
        self.selected: list = []
        self.passed_call: set = set()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if item.nodeid in self.allowed:
            return
        if report.skipped or getattr(report, "wasxfail", None) is not None:
            fail_closed(report, f"{report.when} of {item.nodeid}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        outcome = yield
        report = outcome.get_result()
        if report.skipped and collector.nodeid not in self.allowed:
            fail_closed(report, f"collection of {collector.nodeid or 'the session'}")

    def pytest_collection_finish(self, session) -> None:
        self.selected = [item.nodeid for item in session.items]

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" and report.passed:
            self.passed_call.add(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if session.config.option.collectonly or exitstatus != 0:
            return
        unrun = [n for n in self.selected if n not in self.passed_call and n not in self.allowed]
        if unrun:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"{PREFIX}: {len(unrun)} selected test(s) have no passed call phase:",
                                    red=True)
                for nodeid in unrun:
                    reporter.write_line(f"  {nodeid}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config) -> None:
    if required() and not config.pluginmanager.has_plugin("hostdev-strict"):
        config.pluginmanager.register(Strict(allowed_skips()), "hostdev-strict")
