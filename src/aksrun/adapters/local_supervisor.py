"""The local Job controller: `python -m aksrun.adapters.local_supervisor JOB_FOLDER`.

Runs each task's runner as a subprocess in its own process group, at most `parallelism` at
once and, unless the job asked for its own parallelism, within the machine-wide slots shared
by every local job (one flock'ed file per slot). Mirrors the Kubernetes Job semantics the
client relies on: infrastructure faults are retried per index (backoffLimitPerIndex), the
runner's integrity and version exit codes fail the job at once (podFailurePolicy FailJob),
and a deadline backstops the whole job (activeDeadlineSeconds).
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..ports.compute import EXIT_OK, EXIT_TIMEOUT, FATAL_EXIT_CODES

_FATAL_REASON = {10: "IntegrityError", 11: "VersionMismatch", 12: "RunnerUsage"}


class Supervisor:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec = json.loads((folder / "launch.json").read_text())
        self.events = open(folder / "events.jsonl", "ab", buffering=0)  # noqa: SIM115 (lives as long as the process)
        self.exits: queue.Queue = queue.Queue()
        self.running: dict[int, tuple[subprocess.Popen, int, Path, int | None]] = {}
        self.cancelled = False
        self.slots = _Slots(
            Path(self.spec["slots"]), max(self.spec["slot_count"], self.spec["parallelism"])
        )

    def emit(self, kind: str, **fields) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        line = json.dumps({"kind": kind, "time": time.time(), **fields}) + "\n"
        self.events.write(line.encode())

    def run(self) -> int:
        spec = self.spec
        pending = list(range(spec["tasks"]))
        attempts = dict.fromkeys(pending, 0)
        failed: set[int] = set()
        limit = spec["backoff_limit_per_index"]
        deadline = spec["deadline_seconds"]
        started = time.monotonic()
        while pending or self.running:
            if self.cancelled or (self.folder / "cancel").exists():
                return self.stop("job_cancelled", "Cancelled", "the job was cancelled")
            starved = False
            while pending and len(self.running) < spec["parallelism"]:
                slot = self.slots.acquire()
                if slot is None:
                    starved = True
                    break
                index = pending.pop(0)
                self.start(index, attempts[index], slot)
            wait = 0.02 if starved else None
            if deadline is not None:
                left = max(0.0, deadline - (time.monotonic() - started))
                wait = left if wait is None else min(wait, left)
            try:
                index, code = self.exits.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() - started >= deadline:
                    return self.stop(
                        "job_failed", "DeadlineExceeded",
                        f"the job ran longer than its deadline ({deadline:g}s) and was stopped",
                    )
                continue
            if index is None:  # cancel signal
                continue
            _proc, attempt, task_dir, slot = self.running.pop(index)
            self.slots.release(slot)
            message = _termination(task_dir)
            if code == EXIT_OK and message.get("digest"):
                self.emit("succeeded", index=index, attempt=attempt, digest=message["digest"],
                          errors=message.get("errors", 0))
                continue
            if code in FATAL_EXIT_CODES:
                reason = _FATAL_REASON.get(code, "Fatal")
                self.emit("failed", index=index, attempt=attempt, reason=reason,
                          message=message.get("message"))
                return self.stop("job_failed", reason, message.get("message") or reason)
            if code == EXIT_TIMEOUT:
                self.emit("failed", index=index, attempt=attempt, reason="DeadlineExceeded",
                          message=message.get("message"))
                failed.add(index)
                continue
            reason, text = _describe_exit(code, message, task_dir)
            if attempts[index] < limit:
                attempts[index] += 1
                self.emit("retrying", index=index, attempt=attempt, reason=reason, message=text)
                pending.insert(0, index)
            else:
                self.emit("failed", index=index, attempt=attempt, reason=reason, message=text)
                failed.add(index)
        if failed:
            return self.stop(
                "job_failed", "FailedIndexes",
                f"{len(failed)} of {spec['tasks']} tasks failed: "
                + ",".join(str(i) for i in sorted(failed)),
            )
        self.emit("job_succeeded")
        return 0

    def start(self, index: int, attempt: int, slot: int | None) -> None:
        task_dir = self.folder / "tasks" / f"{index:05d}-{attempt}"
        task_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.spec["env"])
        env.update(
            AKSRUN_STORE=self.spec["store_url"],
            AKSRUN_JOB_ID=self.spec["job_id"],
            AKSRUN_JOB_DIGEST=self.spec["job_digest"],
            JOB_COMPLETION_INDEX=str(index),
            AKSRUN_TERMINATION_LOG=str(task_dir / "termination-log"),
            PYTHONUNBUFFERED="1",
        )
        with open(task_dir / "output.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aksrun.runner"],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        self.running[index] = (proc, attempt, task_dir, slot)
        self.emit("started", index=index, attempt=attempt, pid=proc.pid)
        threading.Thread(target=self._wait, args=(index, proc), daemon=True).start()

    def _wait(self, index: int, proc: subprocess.Popen) -> None:
        self.exits.put((index, proc.wait()))

    def stop(self, kind: str, reason: str, message: str) -> int:
        for proc, *_ in self.running.values():
            _kill_group(proc)
        for proc, _attempt, _dir, slot in self.running.values():
            proc.wait()
            self.slots.release(slot)
        self.running.clear()
        self.emit(kind, reason=reason, message=message)
        return 0 if kind != "job_failed" else 1

    def on_sigterm(self, signum, frame) -> None:
        self.cancelled = True
        self.exits.put((None, None))


class _Slots:
    """Machine-wide runner slots: flock'ed files, released automatically if a process dies."""

    def __init__(self, folder: Path, count: int) -> None:
        self.folder, self.count = folder, max(1, count)
        folder.mkdir(parents=True, exist_ok=True)
        self.held: dict[int, int] = {}

    def acquire(self) -> int | None:
        for slot in range(self.count):
            if slot in self.held:
                continue
            fd = os.open(self.folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.held[slot] = fd
            return slot
        return None

    def release(self, slot: int | None) -> None:
        fd = self.held.pop(slot, None) if slot is not None else None
        if fd is not None:
            os.close(fd)


def _termination(task_dir: Path) -> dict:
    try:
        return json.loads((task_dir / "termination-log").read_text() or "{}")
    except (FileNotFoundError, ValueError):
        return {}


def _describe_exit(code: int, message: dict, task_dir: Path) -> tuple[str, str]:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        return "Killed", f"the runner was killed by signal {name}"
    if message.get("error"):
        return message["error"], message.get("message") or message["error"]
    tail = ""
    try:
        tail = (task_dir / "output.log").read_text(errors="replace")[-1500:]
    except OSError:
        pass
    return "Error", f"the runner exited with code {code}" + (f":\n{tail}" if tail else "")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> int:
    folder = Path(sys.argv[1])
    supervisor = Supervisor(folder)
    signal.signal(signal.SIGTERM, supervisor.on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
