"""aksrun.Future: a `concurrent.futures.Future` that knows its job and can cancel it."""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.lifecycle import JobRun


class Future(cf.Future):
    """The result of a remote call (or, from `aksrun.get`, of a whole job).

    `job_id` is set at once, so a caller can print it and re-attach later with
    `aksrun.get(job_id)`. `cancel()` stops the remote job, not only the local wait.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self._run: JobRun | None = None

    def cancel(self) -> bool:
        with self._condition:
            if self._state == FINISHED:
                return False
            if self._state == CANCELLED_AND_NOTIFIED:
                return True
        if self._run is not None and self._cancels_job():
            self._run.cancel()
        with self._condition:
            if self._state == FINISHED:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        return True

    def _cancels_job(self) -> bool:
        run = self._run
        return run is not None and all(f is self or f.done() for f in run.futures)

    def __repr__(self) -> str:
        return f"<aksrun.Future job_id={self.job_id!r} state={self._state.lower()}>"


class JobFuture(Future):
    """The future of a whole job from `aksrun.get`: its value is the call's value (a call job)
    or the list of all values in input order (a map job)."""

    def __init__(self, run: JobRun) -> None:
        super().__init__(run.job_id)
        self._run = run
        self.set_running_or_notify_cancel()
        remaining = [len(run.futures)]

        def on_done(_: cf.Future) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                self._finish()

        for fut in run.futures:
            fut.add_done_callback(on_done)

    def _cancels_job(self) -> bool:
        return True

    def _finish(self) -> None:
        if self.done():
            return
        futures = self._run.futures
        try:
            for fut in futures:
                if fut.cancelled():
                    raise cf.CancelledError(f"a call of job {self.job_id} was cancelled")
                if fut.exception() is not None:
                    raise fut.exception()
            values: Any = [f.result() for f in futures]
            if self._run.record.kind == "call":
                values = values[0]
            self.set_result(values)
        except BaseException as exc:
            try:
                self.set_exception(exc)
            except cf.InvalidStateError:
                pass
