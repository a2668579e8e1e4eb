"""pytest plugin: end the terminal summary with the time each phase of scripts/test.sh took.

scripts/test.sh records its phases before pytest (apt packages, the venv, lint) in
HOSTDEV_PHASE_TIMES as ``name=seconds;`` pairs; this session is the last phase. Printed last, so
that a CI log shows where the time went (docs/testing.md, "Timings measured")."""
from __future__ import annotations

import os
import time

import pytest

PHASES_ENV = "HOSTDEV_PHASE_TIMES"


def parse_phases(raw: str) -> list:
    """[(name, seconds)] from ``name=seconds;`` pairs; malformed pairs are left out."""
    phases = []
    for pair in raw.split(";"):
        name, sep, seconds = pair.rpartition("=")
        if sep and name.strip() and seconds.strip().isdigit():
            phases.append((name.strip(), int(seconds)))
    return phases


class PhaseTimes:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        raw = os.environ.get(PHASES_ENV)
        if raw is None:  # not under scripts/test.sh
            return
        tr = terminalreporter
        tr.section("phase times")
        phases = parse_phases(raw) + [("pytest (unit + real kernel)", round(time.monotonic() - self.started))]
        for name, seconds in phases:
            tr.write_line(f"{name:<60} {seconds:>6d} s")
        tr.write_line(f"{'total':<60} {sum(s for _, s in phases):>6d} s")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(PhaseTimes(), "hostdev-phase-times")
