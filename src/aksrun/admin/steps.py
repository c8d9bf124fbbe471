"""The record of what a command did, one entry per resource: found, created, changed,
removed, and their dry-run forms.

Commands report steps as they go (the CLI prints each at once, so a long run shows where it
is) and return the whole list (`--json`). A step says what is true afterwards, so a re-run
that prints only "found" proves there was nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

FOUND, CREATED, CHANGED, REMOVED = "found", "created", "changed", "removed"
WOULD_CREATE, WOULD_CHANGE, WOULD_REMOVE = "would create", "would change", "would remove"
ABSENT = "absent"  # removal: there was nothing of this kind
MISSING = "missing"  # a check failed and was not fixed (the detail says how to fix it)
READY = "ready"  # a wait ended: the thing works
SKIPPED = "skipped"

CHANGES = frozenset({CREATED, CHANGED, REMOVED})
PLANNED = frozenset({WOULD_CREATE, WOULD_CHANGE, WOULD_REMOVE})


@dataclass(frozen=True)
class Step:
    """One resource's outcome: `kind` (what sort of thing), `name`, `state`, `detail`."""

    kind: str
    name: str
    state: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class StepLog:
    """Collects steps and hands each to `on_step` as it happens."""

    def __init__(self, on_step: Callable[[Step], None] | None = None) -> None:
        self.steps: list[Step] = []
        self._on_step = on_step or (lambda step: None)

    def add(self, kind: str, name: str, state: str, detail: str = "") -> Step:
        step = Step(kind, name, state, detail)
        self.steps.append(step)
        self._on_step(step)
        return step

    @property
    def changed(self) -> bool:
        return any(s.state in CHANGES for s in self.steps)

    @property
    def missing(self) -> list[Step]:
        return [s for s in self.steps if s.state == MISSING]
