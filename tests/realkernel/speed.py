"""Timeouts of the real-kernel tests, derived from the speed measured during the run.

The guest runs under TCG on a shared 2-core CI machine: how fast it goes depends on what else the
machine is doing, and a fixed number of seconds that holds on an idle machine fails on a busy one
(a fixed 300 s on the nested ``vm test --boot`` did). So no timeout here is a number of seconds:
it is a number of *units*, one unit being the time a fixed piece of pure-Python CPU work takes on
the machine that waits, measured right before the wait (``measure``). When the machine is three
times slower, every allowance is three times longer, and a hung guest is still caught.

The guest tells the host how long the current step may take without progress by writing
``/run/vmout/budget`` (``announce``): a new content is progress; the host's watchdog
(tests/realkernel/vm.py ``boot``) kills QEMU only when no new content arrived within the allowance
last announced. The guest plugin announces a default allowance at the start of every test; a test
that waits longer (a nested boot) announces its own with ``allow``.

The unit counts are the idle durations measured on a 2-core CI machine (docs/testing.md, "Timeouts"),
divided by the unit measured in the same run, times a safety factor.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

# One unit: this many iterations of ``_work``; about 0.03 s natively and 0.3-0.5 s in the idle TCG
# guest on the CI machine kind (docs/testing.md).
WORK_ITERATIONS = 300_000
SAFETY = 3.0

# Idle durations expressed in units of the same run (docs/testing.md, "Timeouts"), before SAFETY:
# the guest's boot until the plugin's first announcement, measured in host units (the host measures
# before it starts QEMU: the guest cannot announce before it has booted);
BOOT_HOST_UNITS = 4000.0
# one ordinary guest test (grub-mkconfig's run, the longest, takes ~120 s idle), in guest units;
TEST_GUEST_UNITS = 400.0
# the guest's re-measure interval for the per-test default, in seconds of guest time.
REMEASURE_S = 120.0

GUEST_BUDGET = "/run/vmout/budget"


def _work(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total = (total * 31 + i) % 1_000_003
    return total


def measure(runs: int = 3, iterations: int = WORK_ITERATIONS) -> float:
    """Seconds one unit of work takes here now: the median of ``runs`` timed runs."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        _work(iterations)
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2]


def allowance(units: float, unit_s: Optional[float] = None) -> float:
    """Seconds allowed for a step of ``units`` idle units, on this machine now, with the safety factor."""
    return units * (unit_s if unit_s is not None else measure()) * SAFETY


def announce(seconds: float, path: str = GUEST_BUDGET) -> None:
    """Tell the host's watchdog: the next progress may take up to ``seconds`` (guest side)."""
    target = Path(path)
    if not target.parent.is_dir():
        return  # not in the harness's guest (a guest test run by hand): nobody watches
    tmp = target.with_name(target.name + ".tmp")
    # the content must change at every announcement: the host sees progress as new content
    tmp.write_text(f"{time.monotonic_ns()} {seconds:.1f}\n")
    os.replace(tmp, target)


def allow(units: float) -> float:
    """Measure now, announce the allowance for a step of ``units`` to the watchdog, return it (s)."""
    seconds = allowance(units)
    announce(seconds)
    return seconds


def read_announcement(path: Path) -> Optional[tuple]:
    """(token, seconds) from a budget file the guest wrote, or None when absent or torn."""
    try:
        token, seconds = path.read_text().split()
        return token, float(seconds)
    except (OSError, ValueError):
        return None
