"""What a check is and what it says: the vocabulary shared by the engine, the checks and the
report, so each of them can change without the others."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"  # did not run: a check it needs failed, or it does not apply here

    @property
    def mark(self) -> str:
        return {"ok": "✓", "fail": "✗", "skip": "-"}[self.value]


@dataclass(frozen=True)
class Outcome:
    """What one check found: a one-line summary, and when it failed, the fix in one sentence.

    `details` carries what a script may want (`--json`): versions, ids, the missing verbs.
    """

    status: Status
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, summary: str, **details: Any) -> Outcome:
        return cls(Status.OK, summary, None, details)

    @classmethod
    def fail(cls, summary: str, fix: str, **details: Any) -> Outcome:
        return cls(Status.FAIL, summary, fix, details)

    @classmethod
    def skip(cls, summary: str, **details: Any) -> Outcome:
        return cls(Status.SKIP, summary, None, details)


CheckFunction = Callable[["Context"], Outcome]


@dataclass(frozen=True)
class Check:
    """One question doctor asks. `needs` names the checks whose success it builds on (their
    findings are in the context); a check whose need failed is skipped and says which.
    `on_timeout` is the fix shown when it does not answer in time."""

    id: str
    title: str
    run: CheckFunction
    needs: tuple[str, ...] = ()
    on_timeout: str = "check your network connection, then run `aksrun doctor` again."


@dataclass(frozen=True)
class Result:
    """A check's outcome as reported: which check, what it found, how long it took."""

    id: str
    title: str
    outcome: Outcome
    seconds: float

    @property
    def status(self) -> Status:
        return self.outcome.status

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status.value,
                "summary": self.outcome.summary, "fix": self.outcome.fix,
                "seconds": round(self.seconds, 3), "details": dict(self.outcome.details)}


@dataclass(frozen=True)
class Report:
    """Everything doctor found, in the order the checks were planned."""

    backend: str
    results: tuple[Result, ...]
    seconds: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return all(r.status is not Status.FAIL for r in self.results)

    def result(self, check_id: str) -> Result:
        for result in self.results:
            if result.id == check_id:
                return result
        raise KeyError(check_id)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "backend": self.backend, "note": self.note,
                "seconds": round(self.seconds, 3),
                "checks": [r.as_dict() for r in self.results]}
