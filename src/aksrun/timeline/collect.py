"""What a job's picture shows, gathered from what the store and the compute already record.

The store's record gives the job's rows (one per task, with the calls each holds) and the
moment it was submitted; the compute gives every attempt of every task with its times
(Compute.timeline). Nothing here depends on the client having watched the job: a job
submitted from another machine, or long finished, draws the same.
"""

from __future__ import annotations

import dataclasses
import time

from ..core.lifecycle import Client
from ..errors import UnknownJobError
from ..ports.compute import TaskSpan


@dataclasses.dataclass(frozen=True)
class TaskRow:
    """One task (a chunk of consecutive calls) and its attempts, oldest first."""

    index: int
    first_call: int
    calls: int
    spans: tuple[TaskSpan, ...]


@dataclasses.dataclass(frozen=True)
class Timeline:
    job_id: str
    function: str
    backend: str
    submitted: float  # the record's creation (epoch seconds): the picture's time zero
    state: str
    reason: str | None
    message: str | None
    finished: float | None
    drawn_at: float  # where attempts still open end on the picture
    rows: tuple[TaskRow, ...]

    @property
    def calls(self) -> int:
        return sum(row.calls for row in self.rows)

    @property
    def spans(self) -> list[TaskSpan]:
        return [span for row in self.rows for span in row.spans]

    @property
    def retries(self) -> int:
        """Attempts that ended in a fault after which the task ran again."""
        return sum(span.outcome == "retried" for span in self.spans)

    @property
    def raised(self) -> int:
        return sum(span.raised or 0 for span in self.spans if span.outcome == "succeeded")

    @property
    def calls_retried(self) -> int:
        return sum(span.retried or 0 for span in self.spans if span.outcome == "succeeded")

    @property
    def end(self) -> float:
        """The right edge of the picture: the job's end, or now while it runs."""
        ends = [t for s in self.spans for t in (s.created, s.started, s.finished) if t]
        return max([self.finished or self.drawn_at, *ends])


def collect(client: Client, job_id: str) -> Timeline:
    """The timeline of `job_id`: UnknownJobError when the store has no such job, or compute
    no longer has it (the times of its tasks were recorded there, and only there)."""
    record = client.record(job_id)
    compute = client.compute
    try:
        handle = compute.attach(job_id)
        status = compute.status(handle)
        spans = compute.timeline(handle)
    except UnknownJobError as exc:
        raise UnknownJobError(
            f"job {job_id} is in the store, but no longer on {compute.name} compute ({exc}); "
            "the times of its tasks were recorded there, so its timeline can no longer be "
            "drawn. Draw it before the job is removed (`aksrun jobs rm`, `aksrun gc`, or the "
            "Job's ttlSecondsAfterFinished)."
        ) from None
    by_index: dict[int, list[TaskSpan]] = {}
    for span in spans:
        by_index.setdefault(span.index, []).append(span)
    rows = tuple(
        TaskRow(chunk.index, chunk.start, chunk.calls,
                tuple(sorted(by_index.get(chunk.index, ()), key=lambda s: s.attempt)))
        for chunk in record.chunks
    )
    return Timeline(
        job_id=job_id, function=record.function_name, backend=compute.name,
        submitted=record.created, state=status.state, reason=status.reason,
        message=status.message, finished=status.finished, drawn_at=time.time(), rows=rows,
    )
