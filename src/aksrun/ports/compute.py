"""Compute: where runner processes run (local subprocesses, Kubernetes pods).

Modelled on a Kubernetes Indexed Job: one launch per submission with N tasks (chunks), each
task retried on infrastructure faults, and a stream of per-task events the client watches.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

JobState = Literal["pending", "running", "succeeded", "failed", "cancelled"]

# Runner exit codes that mean "retrying cannot help": the job fails at once.
EXIT_OK = 0
EXIT_INTEGRITY = 10
EXIT_VERSION = 11
EXIT_USAGE = 12
EXIT_STORE = 13
EXIT_TIMEOUT = 14
# The pod's identity can't sign in or may not use the store: no retry can fix it.
EXIT_ACCESS = 15
FATAL_EXIT_CODES = (EXIT_INTEGRITY, EXIT_VERSION, EXIT_USAGE, EXIT_ACCESS)
# What each of the runner's own exit codes means, as the reason every adapter reports.
EXIT_REASONS = {EXIT_INTEGRITY: "IntegrityError", EXIT_VERSION: "VersionMismatch",
                EXIT_USAGE: "RunnerUsage", EXIT_TIMEOUT: "DeadlineExceeded",
                EXIT_ACCESS: "StoreAccessDenied"}


@dataclasses.dataclass(frozen=True)
class LaunchRequest:
    """What compute needs to start a job: pointers and resources, never payloads."""

    job_id: str
    job_digest: str  # sha256 of job.json: the runner checks the record it reads against it
    store_url: str
    function_name: str
    tasks: int  # number of chunks (Kubernetes: completions)
    parallelism: int
    calls: int
    chunksize: int
    options: Any  # FunctionOptions
    user: str
    backoff_limit_per_index: int = 3
    deadline_seconds: float | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class JobHandle:
    job_id: str
    backend: str
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TaskEvent:
    """A change of one task (index set) or of the whole job (index None).

    kind: started | succeeded (digest = sha256 of the task's output) | failed | retrying |
    job_succeeded | job_failed | job_cancelled. `reason` is a short machine code (OOMKilled,
    Evicted, DeadlineExceeded, Unschedulable, ImagePullBackOff, IntegrityError, ...), and
    `message` the words a user can act on.
    """

    kind: str
    index: int | None = None
    attempt: int = 0
    digest: str | None = None
    reason: str | None = None
    message: str | None = None


SpanOutcome = Literal["pending", "running", "succeeded", "retried", "failed", "stopped"]


@dataclasses.dataclass(frozen=True)
class TaskSpan:
    """One attempt of one task (a runner process, a pod) as compute recorded it: what a
    picture of the job is drawn from, with nothing the client had to witness itself.

    created: when compute took the attempt on (local: queued by the supervisor; Kubernetes:
    the pod created), started: its runner running, finished: its end (epoch seconds; None
    when it has not happened). outcome: pending | running | succeeded | retried (a fault,
    and the task runs again) | failed (no retry left, or one can't help) | stopped (the job
    ended around it: cancelled, failed elsewhere, past its deadline). `reason` is the short
    code (Killed, OOMKilled, Evicted...) and `message` the words. The counts come from the
    runner's last word, when it had one: calls it ran, calls that raised, and re-runs of a
    call as `retries=` says.
    """

    index: int
    attempt: int
    created: float | None
    started: float | None
    finished: float | None
    outcome: SpanOutcome
    reason: str | None = None
    message: str | None = None
    calls: int | None = None
    raised: int | None = None
    retried: int | None = None


@dataclasses.dataclass
class JobStatus:
    job_id: str
    function: str
    state: JobState
    tasks: int
    calls: int
    chunksize: int
    done_indexes: frozenset[int] = frozenset()
    failed_indexes: frozenset[int] = frozenset()
    calls_raised: int = 0  # calls whose function raised (the job itself still completed)
    started: float | None = None  # epoch seconds
    finished: float | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def calls_done(self) -> int:
        return sum(
            max(0, min(self.chunksize, self.calls - i * self.chunksize)) for i in self.done_indexes
        )


@runtime_checkable
class Compute(Protocol):
    name: str

    def launch(self, request: LaunchRequest) -> JobHandle: ...

    def attach(self, job_id: str) -> JobHandle:
        """A handle for an existing job; raises UnknownJobError."""

    def events(self, handle: JobHandle, stop: threading.Event | None = None
               ) -> Iterator[TaskEvent]:
        """Current state of every task first, then changes as they happen; ends after a
        job-level event, or soon after `stop` is set (the client is exiting). Never
        busy-polls."""

    def logs(self, handle: JobHandle, index: int = 0, follow: bool = False) -> Iterator[str]:
        """Raw process output of one task (the runner's own output is also in the store)."""

    def status(self, handle: JobHandle) -> JobStatus: ...

    def timeline(self, handle: JobHandle) -> list[TaskSpan]:
        """Every attempt of every task compute still knows of, with its times; a task not
        yet taken on has none."""

    def cancel(self, handle: JobHandle) -> None: ...

    def delete(self, handle: JobHandle) -> None:
        """Forget a finished job (and stop it if it still runs)."""

    def list(self) -> list[JobStatus]: ...
