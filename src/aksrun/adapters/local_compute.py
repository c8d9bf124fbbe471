"""LocalCompute: runners as local subprocesses, supervised like a Kubernetes Indexed Job.

`launch` starts a detached supervisor (`python -m aksrun.adapters.local_supervisor`), the
local stand-in for the Job controller and kubelet: it runs the runners, retries
infrastructure faults per task, and appends every state change to `events.jsonl`. The client
only reads that file, so a client that dies loses nothing: the job runs on, and any process
can re-attach by reading the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownJobError
from ..ports.compute import JobHandle, JobStatus, LaunchRequest, TaskEvent, TaskSpan
from .local_forkserver import start_supervisor

TERMINAL = ("job_succeeded", "job_failed", "job_cancelled")
_STATE = {"job_succeeded": "succeeded", "job_failed": "failed", "job_cancelled": "cancelled"}


class LocalCompute:
    name = "local"

    def __init__(self, root: str | os.PathLike[str], max_parallel: int | None = None) -> None:
        self.root = Path(root).expanduser()
        self.jobs = self.root / "jobs"
        self.max_parallel = max_parallel or os.cpu_count() or 1

    # --- launching -------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> JobHandle:
        folder = self.jobs / request.job_id
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except OSError as exc:  # the client rolls the store back; say what to change
            from .local_store import directory_problem

            why = directory_problem(self.jobs) or f"{exc.strerror or exc}: {exc.filename}"
            raise ConfigError(
                f"the local backend can't create its job folder under {self.jobs} ({why}); "
                "set AKSRUN_HOME to a writable directory (local jobs live in "
                "$AKSRUN_HOME/local). Nothing was run.") from exc
        spec = {
            "job_id": request.job_id,
            "job_digest": request.job_digest,
            "store_url": request.store_url,
            "function": request.function_name,
            "tasks": request.tasks,
            "parallelism": max(1, min(request.parallelism, request.tasks)),
            "calls": request.calls,
            "chunksize": request.chunksize,
            "backoff_limit_per_index": request.backoff_limit_per_index,
            "deadline_seconds": request.deadline_seconds,
            "env": dict(request.env),
            "user": request.user,
            "created": time.time(),
            "slots": str(self.root / "slots"),
            "slot_count": self.max_parallel,
            **_memory(request.options),
        }
        _write_json(folder / "launch.json", spec)
        pid, wake_r, proc = start_supervisor(folder)
        (folder / "supervisor.pid").write_text(str(pid))
        if proc is not None:  # started here, not by the fork server (which reaps its own)
            _reap_later(proc)
        return JobHandle(request.job_id, self.name, {"folder": str(folder), "wake_fd": wake_r})

    def attach(self, job_id: str) -> JobHandle:
        folder = self.jobs / job_id
        if not (folder / "launch.json").is_file():
            raise UnknownJobError(f"no local job {job_id!r} under {self.jobs}")
        try:
            digest = json.loads((folder / "launch.json").read_text()).get("job_digest")
        except (OSError, ValueError, AttributeError):
            digest = None
        return JobHandle(job_id, self.name, {"folder": str(folder), "job_digest": digest})

    # --- watching --------------------------------------------------------------------------

    def events(self, handle: JobHandle, stop: threading.Event | None = None
               ) -> Iterator[TaskEvent]:
        """Tail `events.jsonl`. The launching client is woken through a pipe at each event;
        a re-attached client, which has no pipe, re-reads the file with a short backoff."""
        folder = Path(handle.data["folder"])
        wake = _Wake(handle.data.get("wake_fd"), stop)
        try:
            yield from _tail_events(folder, wake)
        finally:
            wake.close()

    def logs(self, handle: JobHandle, index: int = 0, follow: bool = False) -> Iterator[str]:
        folder = Path(handle.data["folder"]) / "tasks"
        attempts = sorted(folder.glob(f"{index:05d}-*"))
        if not attempts:
            return iter(())
        return _read_text(attempts[-1] / "output.log", follow, lambda: _finished(handle))

    def status(self, handle: JobHandle) -> JobStatus:
        return _fold(Path(handle.data["folder"]))

    def timeline(self, handle: JobHandle) -> list[TaskSpan]:
        return _spans(Path(handle.data["folder"]))

    def list(self) -> list[JobStatus]:
        if not self.jobs.is_dir():
            return []
        result = []
        for folder in self.jobs.iterdir():
            if (folder / "launch.json").is_file():
                with contextlib.suppress(Exception):
                    result.append(_fold(folder))
        return sorted(result, key=lambda s: s.started or 0, reverse=True)

    # --- stopping --------------------------------------------------------------------------

    def cancel(self, handle: JobHandle) -> None:
        folder = Path(handle.data["folder"])
        (folder / "cancel").touch()
        pid = _supervisor_pid(folder)
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _supervisor_alive(folder) and time.monotonic() < deadline:
            time.sleep(0.02)

    def delete(self, handle: JobHandle) -> None:
        folder = Path(handle.data["folder"])
        if _supervisor_alive(folder):
            self.cancel(handle)
        shutil.rmtree(folder, ignore_errors=True)


class _Wake:
    """Blocks until the supervisor signals an event (pipe), or a backoff passes."""

    def __init__(self, fd: int | None, stop: threading.Event | None) -> None:
        self.fd, self.idle, self.stop = fd, 0.005, stop

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def wait(self) -> None:
        if self.fd is None:
            time.sleep(self.idle)
            self.idle = min(self.idle * 2, 0.2)
            return
        import select

        readable, _, _ = select.select([self.fd], [], [], 0.2)
        if readable and not os.read(self.fd, 4096):
            self.close()  # the supervisor exited; the file holds the rest

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _tail_events(folder: Path, wake: _Wake) -> Iterator[TaskEvent]:
    path, offset, pending, started = folder / "events.jsonl", 0, b"", time.monotonic()
    while True:
        chunk = _read_from(path, offset)
        if chunk:
            offset += len(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                event = _event(json.loads(line))
                yield event
                if event.kind in TERMINAL:
                    return
            continue
        if not _supervisor_alive(folder) and time.monotonic() - started > 2.0:
            if _read_from(path, offset):  # its last lines, written just before it exited
                continue
            yield TaskEvent(
                "job_failed",
                reason="SupervisorLost",
                message="the local job supervisor died before the job finished "
                f"(see {folder / 'supervisor.log'}); re-submit the job.",
            )
            return
        if wake.stopped():
            return
        wake.wait()


def _read_from(path: Path, offset: int) -> bytes:
    """What a growing file holds past `offset` (nothing if it doesn't exist yet)."""
    try:
        with open(path, "rb") as src:
            src.seek(offset)
            return src.read()
    except FileNotFoundError:
        return b""


def _finished(handle: JobHandle) -> bool:
    return _fold(Path(handle.data["folder"])).state not in ("pending", "running")


def _read_text(path: Path, follow: bool, finished) -> Iterator[str]:
    offset = 0
    while True:
        data = _read_from(path, offset)
        if data:
            offset += len(data)
            yield data.decode("utf-8", "replace")
            continue
        if not follow or finished():
            return
        time.sleep(0.1)


def _event(data: dict) -> TaskEvent:
    return TaskEvent(
        kind=data["kind"],
        index=data.get("index"),
        attempt=data.get("attempt", 0),
        digest=data.get("digest"),
        reason=data.get("reason"),
        message=data.get("message"),
    )


def _fold(folder: Path) -> JobStatus:
    spec = json.loads((folder / "launch.json").read_text())
    done: set[int] = set()
    raised: dict[int, int] = {}
    failed: set[int] = set()
    state, reason, message, finished = "pending", None, None, None
    first_start = None
    path = folder / "events.jsonl"
    lines = path.read_bytes().splitlines() if path.is_file() else []
    for line in lines:
        event = json.loads(line)
        kind = event["kind"]
        if kind == "started":
            state = "running"
            first_start = first_start or event.get("time")
        elif kind == "succeeded":
            done.add(event["index"])
            raised[event["index"]] = event.get("errors", 0)
        elif kind == "failed":
            failed.add(event["index"])
        elif kind in TERMINAL:
            state = _STATE[kind]
            reason, message, finished = event.get("reason"), event.get("message"), event.get("time")
    if state in ("pending", "running") and not _supervisor_alive(folder) and lines:
        state, reason = "failed", "SupervisorLost"
    if state == "succeeded" and sum(raised.values()):
        state, reason = "failed", "CallsRaised"
        message = f"{sum(raised.values())} of {spec['calls']} calls raised an exception"
    return JobStatus(
        job_id=spec["job_id"],
        function=spec["function"],
        state=state,  # type: ignore[arg-type]
        tasks=spec["tasks"],
        calls=spec["calls"],
        chunksize=spec["chunksize"],
        done_indexes=frozenset(done),
        failed_indexes=frozenset(failed),
        calls_raised=sum(raised.values()),
        started=spec["created"],
        finished=finished,
        reason=reason,
        message=message,
    )


def _spans(folder: Path) -> list[TaskSpan]:
    """Every attempt from the supervisor's record. An attempt is queued when the job is
    launched (the first) or when the one before it ended (a retry), and a queued one waits
    for a free slot of `parallelism` and of the machine's cores: that wait is its pending
    time."""
    spec = json.loads((folder / "launch.json").read_text())
    path = folder / "events.jsonl"
    lines = path.read_bytes().splitlines() if path.is_file() else []
    open_: dict[int, dict[str, Any]] = {  # index -> its attempt not yet ended
        i: {"attempt": 0, "created": spec["created"], "started": None}
        for i in range(spec["tasks"])}
    spans: list[TaskSpan] = []
    ended: dict[str, Any] | None = None
    for line in lines:
        event = json.loads(line)
        kind, index, when = event["kind"], event.get("index"), event.get("time")
        if kind in TERMINAL:
            ended = event
            break
        current = open_.get(index)
        if current is None:
            continue
        if kind == "started":
            current.update(attempt=event.get("attempt", current["attempt"]), started=when)
            continue
        if kind not in ("succeeded", "retrying", "failed"):
            continue
        outcome = {"succeeded": "succeeded", "retrying": "retried", "failed": "failed"}[kind]
        spans.append(TaskSpan(
            index, event.get("attempt", current["attempt"]), current["created"],
            current["started"], when, outcome,  # type: ignore[arg-type]
            reason=event.get("reason"), message=event.get("message"), calls=event.get("calls"),
            raised=event.get("errors") if kind == "succeeded" else None,
            retried=event.get("retried")))
        if kind == "retrying":
            open_[index] = {"attempt": spans[-1].attempt + 1, "created": when, "started": None}
        else:
            del open_[index]
    if ended is None and not _supervisor_alive(folder) and lines:
        ended = {"time": None, "reason": "SupervisorLost",
                 "message": "the local job supervisor died before the job finished"}
    for index, current in open_.items():
        if ended is not None:  # the job ended around it
            spans.append(TaskSpan(index, current["attempt"], current["created"],
                                  current["started"], ended.get("time"), "stopped",
                                  reason=ended.get("reason"), message=ended.get("message")))
        else:
            spans.append(TaskSpan(index, current["attempt"], current["created"],
                                  current["started"], None,
                                  "running" if current["started"] is not None else "pending"))
    return sorted(spans, key=lambda s: (s.index, s.attempt))


def _supervisor_pid(folder: Path) -> int | None:
    """The job's supervisor, if that pid still is one (a pid can be reused after exit)."""
    try:
        pid = int((folder / "supervisor.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except OSError:
        return pid  # no /proc: trust the file
    return pid if b"aksrun.adapters.local_supervisor" in cmdline else None


def _supervisor_alive(folder: Path) -> bool:
    pid = _supervisor_pid(folder)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _reap_later(proc: subprocess.Popen) -> None:
    """Collect the supervisor's exit status so it doesn't linger as a zombie in a long-lived
    client (a notebook); a daemon thread, so it never keeps the client alive."""
    import threading

    threading.Thread(target=proc.wait, daemon=True, name="aksrun-reaper").start()


def _memory(options: Any) -> dict[str, Any]:
    """memory= as the supervisor enforces it (local_memory); nothing when unset."""
    from ..core.quantities import memory_bytes

    memory = getattr(options, "memory", None)
    if not memory:
        return {}
    return {"memory": str(memory), "memory_bytes": memory_bytes(str(memory))}
