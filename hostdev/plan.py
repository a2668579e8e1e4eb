"""Plans: the whole list of actions first, then apply with rollback, then verify.

``describe()`` is what ``--dry-run`` prints. ``apply(host)`` runs each action; when one fails,
the undo of every action already applied runs in reverse order (dpdk-devbind rebinds the old
driver the same way) and an OperationFailedError (exit 5) says what failed and what was undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from .errors import EXIT_INTERRUPTED, HostdevError, Interrupted
from .host import Host
from .signals import _Signals, signals_roll_back  # noqa: F401 - plan.signals_roll_back, as before


@dataclass
class Action:
    """One step. ``run`` changes the host; ``undo`` (optional) reverts it; ``check`` steps verify."""

    description: str
    run: Callable[[Host], None]
    undo: Optional[Callable[[Host], None]] = None
    device: Optional[str] = None
    # the files it changes on the host, as (change, path): change is write, remove or link
    files: Tuple[Tuple[str, str], ...] = ()

    def to_dict(self) -> dict:
        return {"action": self.description, "device": self.device}


class OperationFailedError(HostdevError):
    """A step failed; everything applied before it was rolled back (exit 5)."""

    def __init__(self, step: str, cause: HostdevError, rolled_back: List[str], rollback_errors: List[str]) -> None:
        undone = f"; rolled back {len(rolled_back)} step(s)" if rolled_back else "; nothing to roll back"
        if rollback_errors:
            undone += f"; ROLLBACK INCOMPLETE: {'; '.join(rollback_errors)}"
        super().__init__(f"{step} failed: {cause.message}{undone}", fix=cause.fix)
        self.step = step
        self.cause = cause
        self.rolled_back = rolled_back
        self.rollback_errors = rollback_errors
        if isinstance(cause, HostdevError) and cause.exit_code in (3, 4) and not rolled_back:
            # nothing changed: keep the cause's meaning (refused, environment)
            self.exit_code = cause.exit_code
        if isinstance(cause, Interrupted):
            self.exit_code = EXIT_INTERRUPTED


@dataclass
class Plan:
    actions: List[Action] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def add(self, description: str, run: Callable[[Host], None], undo: Optional[Callable[[Host], None]] = None,
            device: Optional[str] = None, files: Tuple[Tuple[str, str], ...] = ()) -> None:
        """Add a step; ``files``: what it changes on the host as (write|remove|link, path), so that
        the result can say which files a run wrote (``files_changed``)."""
        self.actions.append(Action(description, run, undo, device, files))

    def add_file(self, host: Host, path: str, new: Optional[str], *, backup: bool = False,
                 description: Optional[str] = None) -> bool:
        """Plan writing ``new`` to a config file (``None``: removing it) with the undo that puts
        the current content back; False, planning nothing, when it is already so. The undo writes
        no backup: it must not replace the backup of the administrator's original with our edit."""
        old = host.read_config(path)  # byte-exact: the undo must give the file back unchanged
        if old == new:
            return False

        def restore(h: Host) -> None:
            if old is None:
                h.remove_file(path)
            else:
                h.write_file(path, old, backup=False)

        if new is None:
            self.add(description or f"remove {path}", lambda h: h.remove_file(path), restore,
                     files=(("remove", path),))
        else:
            self.add(description or f"write {path}", lambda h: h.write_file(path, new, backup=backup), restore,
                     files=(("write", path),))
        return True

    @property
    def changes(self) -> bool:
        return bool(self.actions)

    def files_changed(self) -> List[dict]:
        """Every file the plan writes, removes or links, once, in plan order:
        [{"path", "change"}] (the last change of a path wins)."""
        changes: dict = {}
        for action in self.actions:
            for change, path in action.files:
                changes.pop(path, None)
                changes[path] = change
        return [{"path": path, "change": change} for path, change in changes.items()]

    def result(self, dry_run: bool, *, changed: bool, reboot_required: bool, **details) -> dict:
        """The JSON of a plan result (docs/json.md); the one place its envelope is written:
        changed, dry_run, reboot_required, the result's own ``details`` in order, then the
        actions (what --dry-run would do, or what was done), the files they change and the notes."""
        return {"changed": changed, "dry_run": dry_run, "reboot_required": reboot_required, **details,
                "actions": self.describe(), "files_changed": self.files_changed(), "notes": list(self.notes)}

    def describe(self) -> List[dict]:
        return [a.to_dict() for a in self.actions]

    def apply(self, host: Host, on_step: Optional[Callable[[int, int, Action], None]] = None) -> List[Action]:
        """Run every action; on a HostdevError roll back and raise OperationFailedError.
        ``on_step(index, total, action)`` is called before each action (a progress display)."""
        done: List[Action] = []
        action: Optional[Action] = None
        try:
            for index, action in enumerate(self.actions):
                if on_step is not None:
                    on_step(index, len(self.actions), action)
                action.run(host)
                done.append(action)
        except HostdevError as exc:
            armed, _Signals.armed = _Signals.armed, False  # a signal now must not cut the rollback short
            try:
                rolled, errors = self._roll_back(host, done)
            finally:
                _Signals.armed = armed
            step = action.description if action is not None else "the plan"
            raise OperationFailedError(step, exc, rolled, errors) from None
        return done

    @staticmethod
    def _roll_back(host: Host, done: List[Action]):
        rolled, errors = [], []
        for previous in reversed(done):
            if previous.undo is None:
                continue
            try:
                previous.undo(host)
                rolled.append(previous.description)
            except HostdevError as undo_exc:
                errors.append(f"undo of '{previous.description}': {undo_exc.message}")
        return rolled, errors
