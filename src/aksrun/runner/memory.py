"""`memory=` inside the task: the runner stops a call that reaches its limit, so it fails as
itself (CallOutOfMemoryError, naming the call and the limit) and the task's other calls keep
their values.

Left to the kernel, a call over the limit of a cgroup v2 container (AKS) takes the whole
container with it: the kubelet sets memory.oom.group, so the OOM killer ends every process of
the container, the runner too, and every finished outcome of the task is lost. Like
systemd-oomd, the runner acts a little before the kernel would (AKSRUN_MEMORY_STOP_AT, a
fraction of the limit), sampling its process group every SAMPLE_INTERVAL; a burst faster
than that still meets the kernel (the task then fails as OOMKilled, naming the running call).
"""

from __future__ import annotations

import os
import signal
import threading

from ..core.process_memory import group_usage

SAMPLE_INTERVAL = 0.1


class MemoryWatch:
    """Kills the worker when the group (runner, worker and whatever the call started) holds
    more than the limit; `fired` says so to the runner, which sees the worker SIGKILLed."""

    def __init__(self, limit: int, stop_at: float) -> None:
        self.threshold = int(limit * stop_at)
        self.group = os.getpgid(0)
        self.worker: int | None = None
        self.fired: int | None = None  # bytes the group held when the worker was killed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aksrun-memory", daemon=True)

    @classmethod
    def from_env(cls) -> MemoryWatch | None:
        try:
            limit = int(os.environ.get("AKSRUN_MEMORY_LIMIT", "0"))
            stop_at = float(os.environ.get("AKSRUN_MEMORY_STOP_AT", "1"))
        except ValueError:
            return None
        if limit <= 0 or not 0 < stop_at <= 1:
            return None
        watch = cls(limit, stop_at)
        watch._thread.start()
        return watch

    def watch(self, pid: int) -> None:
        """The worker now running (its predecessor is gone): a fresh verdict."""
        self.worker, self.fired = pid, None

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            worker = self.worker
            if worker is None or self.fired is not None:
                continue
            used = sum(group_usage({self.group}).get(self.group, {}).values())
            if used > self.threshold and worker == self.worker:
                self.fired = used
                try:
                    os.kill(worker, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        self._stop.set()
