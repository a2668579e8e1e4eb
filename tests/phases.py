"""pytest plugin: end the terminal summary with the time each phase of scripts/test.sh took.

scripts/test.sh records its phases before pytest (apt packages, the venv, lint) in
HOSTDEV_PHASE_TIMES as ``name=seconds;`` pairs; this session is the last phase, named by
HOSTDEV_PYTEST_PHASE. Printed last, so that a CI log shows where the time went (docs/testing.md,
"Timings measured").

The whole suite runs as two sessions side by side; at the end scripts/test.sh prints the whole
run's table with ``python -m tests.phases --part NAME=SECONDS ...``: the sessions are parts of the
last phase (they overlap, so they are not added to the total)."""
from __future__ import annotations

import argparse
import os
import sys
import time

import pytest

PHASES_ENV = "HOSTDEV_PHASE_TIMES"
SESSION_ENV = "HOSTDEV_PYTEST_PHASE"
DEFAULT_SESSION = "pytest (unit + real kernel)"


def parse_phases(raw: str) -> list:
    """[(name, seconds)] from ``name=seconds;`` pairs; malformed pairs are left out."""
    phases = []
    for pair in raw.split(";"):
        name, sep, seconds = pair.rpartition("=")
        if sep and name.strip() and seconds.strip().isdigit():
            phases.append((name.strip(), int(seconds)))
    return phases


def table(phases: list, parts: list = ()) -> list:
    """The lines of the table: each phase and its seconds, the ``parts`` (name, seconds) indented
    under the last phase (they ran side by side within it), then the total of the phases."""
    lines = [f"{name:<60} {seconds:>6d} s" for name, seconds in phases]
    lines += [f"  {name:<58} {seconds:>6d} s" for name, seconds in parts]
    lines.append(f"{'total':<60} {sum(s for _, s in phases):>6d} s")
    return lines


class PhaseTimes:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        raw = os.environ.get(PHASES_ENV)
        if raw is None:  # not under scripts/test.sh
            return
        tr = terminalreporter
        tr.section("phase times")
        session = os.environ.get(SESSION_ENV) or DEFAULT_SESSION
        for line in table(parse_phases(raw) + [(session, round(time.monotonic() - self.started))]):
            tr.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(PhaseTimes(), "hostdev-phase-times")


def main(argv=None) -> int:
    """scripts/test.sh's last word: the whole run's phase times (HOSTDEV_PHASE_TIMES), with the
    sessions that ran side by side as parts of the last phase."""
    parser = argparse.ArgumentParser(prog="python -m tests.phases", description=main.__doc__)
    parser.add_argument("--part", action="append", default=[], metavar="NAME=SECONDS")
    args = parser.parse_args(argv)
    parts = parse_phases(";".join(args.part))
    if len(parts) != len(args.part):
        parser.error(f"--part wants NAME=SECONDS, got {args.part!r}")
    print("=" * 30 + " phase times of the whole run " + "=" * 30)
    for line in table(parse_phases(os.environ.get(PHASES_ENV, "")), parts):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
