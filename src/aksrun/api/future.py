"""aksrun.Future: a `concurrent.futures.Future` that knows its job and can cancel it."""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED
from typing import TYPE_CHECKING

from ..core.lifecycle import settle

if TYPE_CHECKING:
    from ..core.lifecycle import JobRun


class Future(cf.Future):
    """The result of a remote call, or (from `aksrun.get` of a map) of a whole job.

    `job_id` is set at once, so a caller can print it and re-attach later with
    `aksrun.get(job_id)`. `cancel()` stops the remote job, not only the local wait.
    """

    def __init__(self, run: JobRun) -> None:
        super().__init__()
        self.job_id = run.job_id
        self._run = run
        self.set_running_or_notify_cancel()
        pending = [len(run.chunks)]

        def on_chunk(_: cf.Future) -> None:
            pending[0] -= 1
            if pending[0] == 0:
                self._finish()

        for chunk in run.chunks:
            chunk.add_done_callback(on_chunk)

    def _finish(self) -> None:
        try:
            value = self._run.result()
        except BaseException as exc:
            settle(self, None, exc)
        else:
            settle(self, value, None)

    def cancel(self) -> bool:
        with self._condition:
            if self._state == FINISHED:
                return False
            if self._state == CANCELLED_AND_NOTIFIED:
                return True
            self._state = CANCELLED_AND_NOTIFIED  # before the remote cancel reports back
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        self._run.cancel()
        return True

    def __repr__(self) -> str:
        return f"<aksrun.Future job_id={self.job_id!r} state={self._state.lower()}>"

