"""What the caller sees while a map runs: its progress bar and, as they come, the lines its
calls print (each prefixed with its call index by the runner), on stderr above the bar."""

from __future__ import annotations

import threading
from typing import Any

from .progress import Progress

DRAIN_WAIT = 10.0  # seconds a finished map waits for its calls' last lines to be read


class MapOutput:
    def __init__(self, run: Any, description: str, progress: bool | None = None,
                 logs: bool = True) -> None:
        self.run = run
        self.bar = Progress(run.record.calls, description, enabled=progress)
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self._thread: threading.Thread | None = None
        if logs:
            self._thread = threading.Thread(target=self._follow, daemon=True,
                                            name=f"aksrun-output-{run.job_id}")
            self._thread.start()

    def advance(self, count: int) -> None:
        self.bar.advance(count)

    def _follow(self) -> None:
        from ..core.live_logs import RunChanges, follow_tasks

        run = self.run
        try:
            for _, lines in follow_tasks(run.client.store, run.job_id, len(run.record.chunks),
                                         RunChanges(run), self._stop, self._hurry):
                self.bar.print(lines)
        except Exception as exc:  # the map goes on; only its live output stops
            self.bar.print(f"aksrun: stopped showing the output of {run.job_id}: {exc} "
                           f"(see `aksrun jobs logs {run.job_id}`)\n")

    def finish(self) -> None:
        """Every call is done: show their last lines (read without the rate limit), then
        stop."""
        self._hurry.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(DRAIN_WAIT)
        self.close()

    def close(self) -> None:
        """Stop at once (the map failed or its consumer stopped)."""
        self._stop.set()
        self._hurry.set()  # wakes the follower from its wait (it waits on _hurry until set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self.bar.close()

