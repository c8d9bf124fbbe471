"""aksrun.Future: a `concurrent.futures.Future` that knows its job and can cancel it."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.lifecycle import settle

if TYPE_CHECKING:
    from ..core.lifecycle import JobRun


class Future(cf.Future):
    """The result of a remote call, or (from `aksrun.get` of a map) of a whole job.

    `job_id` is set at once, so a caller can print it and re-attach later with
    `aksrun.get(job_id)`. `cancel()` stops the remote job, not only the local wait.
    `await fut` waits inside an event loop without blocking it (see api/aio.py).
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

    def result(self, timeout: float | None = None) -> Any:
        """As `concurrent.futures.Future.result`; Ctrl+C while waiting stops the job."""
        try:
            return super().result(timeout)
        except KeyboardInterrupt:
            stop_on_interrupt(self._run)
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        except KeyboardInterrupt:
            stop_on_interrupt(self._run)
            raise

    def artifacts(self, dest: str | os.PathLike[str], call: int | None = None,
                  timeout: float | None = None) -> list[Path]:
        """Download the files the call wrote under `aksrun.output_dir()` into `dest` (for a
        map's job from `aksrun.get`: `dest/<call index>/`, or one call's with `call=`), each
        verified against its recorded sha256 before it appears; returns the paths. Waits for
        the call to finish; a file already in `dest` is never overwritten by a different one."""
        return self._run.artifacts(dest, call, timeout)

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

    def __await__(self):
        from .aio import wait  # asyncio only for code that awaits

        return wait(self).__await__()

    def __repr__(self) -> str:
        return f"<aksrun.Future job_id={self.job_id!r} state={self._state.lower()}>"


CANCEL_WAIT = 10.0  # seconds Ctrl+C waits for the compute to take the cancel


def stop_on_interrupt(run: JobRun) -> None:
    """Ctrl+C while a job is waited on: cancel it, once, saying so in one line. The cancel
    runs in its own thread, so a second Ctrl+C neither cuts it short (the job would run on,
    unwatched) nor prints a traceback from inside it."""
    with _interrupt_lock:
        if run.done.is_set() or run.job_id in _interrupted:
            return
        _interrupted.add(run.job_id)
    print(f"aksrun: interrupted; cancelling job {run.job_id} "
          f"(`aksrun jobs ls` shows it cancelled).", file=sys.stderr, flush=True)
    worker = threading.Thread(target=run.cancel, name="aksrun-cancel", daemon=True)
    worker.start()
    waited = 0.0
    while worker.is_alive() and waited < CANCEL_WAIT:
        try:
            worker.join(0.1)
        except KeyboardInterrupt:
            pass  # already stopping it
        waited += 0.1


_interrupt_lock = threading.Lock()
_interrupted: set[str] = set()
