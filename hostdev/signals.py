"""SIGINT and SIGTERM as an Interrupted error (exit 130), so that a plan being applied rolls back
as after any other failure. Kept apart from plan.py, whose imports (dataclasses, inspect) a
read-only command such as the listing need not pay for (docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from .errors import Interrupted


class _Signals:
    """What the SIGINT/SIGTERM handler of ``signals_roll_back`` does: raise Interrupted where
    the program is (armed), or only remember the signal while a rollback runs (disarmed), so
    that a second Ctrl-C cannot stop a rollback half-way."""

    armed = False
    caught: Optional[str] = None


@contextlib.contextmanager
def signals_roll_back() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise Interrupted (a HostdevError), so a plan being
    applied rolls back as after any failure; outside the main thread (no handlers there)
    nothing changes."""
    import signal

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if _Signals.armed and _Signals.caught is None:
            _Signals.caught = name
            raise Interrupted(name)
        _Signals.caught = _Signals.caught or name

    try:
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, handler)}
    except ValueError:  # not the main thread: signal.signal works only there (no threading import)
        previous = {}
    if not previous:
        yield
        return
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, handler)
    _Signals.armed, _Signals.caught = True, None
    try:
        yield
    finally:
        _Signals.armed = False
        for sig, old in previous.items():
            signal.signal(sig, old)
