"""The local Job controller: `python -m aksrun.adapters.local_supervisor JOB_FOLDER`.

Runs each task's runner in its own process group, at most `parallelism` at once and within
the machine-wide slots shared by every local job (one flock'ed file per slot). It mirrors
the Kubernetes Job semantics the client relies on: infrastructure faults are retried per
index (backoffLimitPerIndex), the runner's integrity and version exit codes fail the job at
once (podFailurePolicy FailJob), and a deadline backstops the whole job.

Runners are forked from this process after it has imported the runner and cloudpickle (a
fork server, as multiprocessing's): each runner is a fresh process in its own session that
runs the same entrypoint as `python -m aksrun.runner` in a pod, without paying for an
interpreter start. The supervisor stays single-threaded (signals wake a select loop), so
forking is safe.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from ..ports.compute import EXIT_OK, EXIT_REASONS, EXIT_TIMEOUT, FATAL_EXIT_CODES
from . import local_memory


class Supervisor:
    def __init__(self, folder: Path, notify_fd: int | None = None) -> None:
        self.folder = folder
        self.notify_fd = notify_fd
        self.spec = json.loads((folder / "launch.json").read_text())
        self.events = open(folder / "events.jsonl", "ab", buffering=0)  # noqa: SIM115
        self.running: dict[int, tuple[int, int, Path, int | None]] = {}  # pid -> task
        self.cancelled = False
        self.slots = _Slots(
            Path(self.spec["slots"]), max(self.spec["slot_count"], self.spec["parallelism"])
        )
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        # Each runner says here how it ended, before its process is torn down (which takes
        # milliseconds): its task's outcome is known without waiting for the exit.
        self.ended_r, self.ended_w = os.pipe()
        os.set_blocking(self.ended_r, False)
        self.told: set[int] = set()  # runners that said how they ended, not reaped yet
        # memory=: each runner's process group is held to it (local_memory)
        self.memory_limit: int | None = self.spec.get("memory_bytes")
        self.oom_killed: dict[int, int] = {}  # runner pid -> resident bytes when killed
        self.over_since: dict[int, float] = {}  # runner pid -> when it went over its limit

    def emit(self, kind: str, **fields) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        line = json.dumps({"kind": kind, "time": time.time(), **fields}) + "\n"
        self.events.write(line.encode())
        if self.notify_fd is not None:
            try:
                os.write(self.notify_fd, b".")
            except OSError:  # the client went away: the file is the record
                os.close(self.notify_fd)
                self.notify_fd = None

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
            if deadline is not None and time.monotonic() - started >= deadline:
                return self.stop(
                    "job_failed", "DeadlineExceeded",
                    f"the job ran longer than its deadline ({deadline:g}s) and was stopped",
                )
            starved = False
            self.police_memory()
            started_now = []
            while pending and len(self.running) < spec["parallelism"]:
                slot = self.slots.acquire()
                if slot is None:
                    starved = True
                    break
                index = pending.pop(0)
                started_now.append((index, attempts[index],
                                    self.start(index, attempts[index], slot)))
            for index, attempt, pid in started_now:  # after the forks: the next runner sooner
                self.emit("started", index=index, attempt=attempt, pid=pid)
            for index, code in self.reap(self.wait_time(starved, deadline, started)):
                pid_task = self.finished.pop(index)
                pid, attempt, task_dir, slot = pid_task
                self.slots.release(slot)
                if pid in self.oom_killed:
                    return self.stop_oom(index, attempt, pid)
                outcome = self.judge(index, attempt, task_dir, code, attempts[index] < limit)
                if outcome == "fatal":
                    return self.stop("job_failed", self.fatal[0], self.fatal[1])
                if outcome == "retry":
                    attempts[index] += 1
                    pending.insert(0, index)
                elif outcome == "failed":
                    failed.add(index)
        if failed:
            return self.stop(
                "job_failed", "FailedIndexes",
                f"{len(failed)} of {spec['tasks']} tasks failed: "
                + ",".join(str(i) for i in sorted(failed)),
            )
        self.emit("job_succeeded")
        return 0

    def judge(self, index: int, attempt: int, task_dir: Path, code: int, may_retry: bool) -> str:
        message = _termination(task_dir)
        if code == EXIT_OK and message.get("digest"):
            self.emit("succeeded", index=index, attempt=attempt, digest=message["digest"],
                      errors=message.get("errors", 0), calls=message.get("calls"),
                      retried=message.get("retried"))
            return "ok"
        if code in FATAL_EXIT_CODES:
            reason = EXIT_REASONS[code]
            self.emit("failed", index=index, attempt=attempt, reason=reason,
                      message=message.get("message"))
            self.fatal = (reason, message.get("message") or reason)
            return "fatal"
        if code == EXIT_TIMEOUT:
            self.emit("failed", index=index, attempt=attempt, reason="DeadlineExceeded",
                      message=message.get("message"))
            return "failed"
        reason, text = _describe_exit(code, message, task_dir)
        kind = "retrying" if may_retry else "failed"
        self.emit(kind, index=index, attempt=attempt, reason=reason, message=text)
        return "retry" if may_retry else "failed"

    def police_memory(self) -> None:
        """SIGKILL every runner group that stayed over memory= (local_memory.BACKSTOP_AFTER),
        as the OOM killer would."""
        if not self.memory_limit or not self.running:
            return
        limits = {pid: self.memory_limit for pid in self.running}
        over = local_memory.over_limit(limits)
        now = time.monotonic()
        for pid in list(self.over_since):
            if pid not in over:
                del self.over_since[pid]
        for pid, used in over.items():
            if now - self.over_since.setdefault(pid, now) >= local_memory.BACKSTOP_AFTER:
                self.oom_killed[pid] = used
                _kill_group(pid)

    def stop_oom(self, index: int, attempt: int, pid: int) -> int:
        """Kubernetes would retry it with the same limit, and it would fail again."""
        used = self.oom_killed.pop(pid)
        memory = self.spec.get("memory") or f"{self.memory_limit} bytes"
        running = _termination(self.folder / "tasks" / f"{index:05d}-{attempt}").get(
            "running_call")  # the runner's progress, as the kubelet reads it after a kill
        during = f" while running call {running}" if isinstance(running, int) else ""
        message = (f"the runner was OOMKilled at its memory limit ({memory}; it held "
                   f"{used / 2**20:.0f} MiB){during}; raise memory=")
        self.emit("failed", index=index, attempt=attempt, reason="OOMKilled", message=message)
        return self.stop("job_failed", "OOMKilled", message)

    def wait_time(self, starved: bool, deadline: float | None, started: float) -> float | None:
        wait = 0.02 if starved else None
        if self.memory_limit and self.running:
            wait = local_memory.SAMPLE_INTERVAL if wait is None else min(
                wait, local_memory.SAMPLE_INTERVAL)
        if deadline is not None:
            left = max(0.0, deadline - (time.monotonic() - started))
            wait = left if wait is None else min(wait, left)
        return wait

    def start(self, index: int, attempt: int, slot: int | None) -> int:
        task_dir = self.folder / "tasks" / f"{index:05d}-{attempt}"
        task_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **self.spec["env"],
            "AKSRUN_STORE": self.spec["store_url"],
            "AKSRUN_JOB_ID": self.spec["job_id"],
            "AKSRUN_JOB_DIGEST": self.spec["job_digest"],
            "JOB_COMPLETION_INDEX": str(index),
            "AKSRUN_TERMINATION_LOG": str(task_dir / "termination-log"),
            "PYTHONUNBUFFERED": "1",
        }
        if self.memory_limit:  # the runner stops a call at the limit (runner/memory.py)
            env["AKSRUN_MEMORY_LIMIT"] = str(self.memory_limit)
            env["AKSRUN_MEMORY_STOP_AT"] = "1"
        log_fd = os.open(task_dir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        pid = os.fork()
        if pid == 0:  # the runner
            code = 1
            try:
                os.setsid()
                _reset_signals()
                os.dup2(log_fd, 1)
                os.dup2(log_fd, 2)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                _close_inherited(keep=self.ended_w)  # slot locks above all: only its own
                os.environ.update(env)
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
                from ..runner.main import main

                code = main()
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    _tell_ended(self.ended_w, code)
                finally:
                    os._exit(code)
        os.close(log_fd)
        self.running[pid] = (index, attempt, task_dir, slot)
        return pid

    def reap(self, timeout: float | None) -> list[tuple[int, int]]:
        """Wait (without polling) for a runner to exit or a signal; return (index, code)."""
        done = self._collect()
        if not done and not self.cancelled:
            try:
                select.select([self.wake_r, self.ended_r], [], [], timeout)
            except InterruptedError:
                pass
            _drain(self.wake_r)
            done = self._collect()
        return done

    def _collect(self) -> list[tuple[int, int]]:
        done = []
        self.finished = getattr(self, "finished", {})
        told = _read_ended(self.ended_r)
        reaped = {}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped[pid] = os.waitstatus_to_exitcode(status)
        self.told = (self.told | {pid for pid, _ in told}) - reaped.keys()
        for pid, code in [*told, *reaped.items()]:
            task = self.running.pop(pid, None)
            if task is None:  # reaped after it told how it ended
                continue
            # The runner led its own session: whatever it started and left (a worker pool,
            # a forgotten Popen) is in its process group, and ends with the task, as a pod's
            # processes end with the pod.
            _kill_group(pid)
            index, attempt, task_dir, slot = task
            self.finished[index] = (pid, attempt, task_dir, slot)
            done.append((index, code))
        return done

    def reap_told(self) -> None:
        """Wait for the runners that told how they ended to be gone (no zombie left)."""
        for pid in self.told:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.told.clear()

    def stop(self, kind: str, reason: str, message: str) -> int:
        for pid in list(self.running):
            # A runner forked a moment ago may not lead its own group yet (setsid is its first
            # step): the group kill misses it, and the wait below would last its whole task.
            # Unreaped, its pid can't have been reused.
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _kill_group(pid)
        for pid, (_i, _a, _d, slot) in list(self.running.items()):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self.slots.release(slot)
        self.running.clear()
        self.emit(kind, reason=reason, message=message)
        return 0 if kind != "job_failed" else 1

    def on_signal(self, signum, frame) -> None:
        if signum == signal.SIGTERM:
            self.cancelled = True
        try:
            os.write(self.wake_w, b"x")
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise


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
            os.set_inheritable(fd, False)
            self.held[slot] = fd
            return slot
        return None

    def release(self, slot: int | None) -> None:
        fd = self.held.pop(slot, None) if slot is not None else None
        if fd is not None:
            os.close(fd)


def _close_inherited(keep: int) -> None:
    """Close every descriptor but stdin/stdout/stderr (and `keep`) in a freshly forked
    runner: otherwise it would keep the slot locks (and the events file, the wake-up pipes)
    of its siblings."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _tell_ended(fd: int, code: int) -> None:
    """In a runner, its last act: its pid and exit code to the supervisor (one write, whole:
    less than PIPE_BUF)."""
    try:
        os.write(fd, b"%d %d\n" % (os.getpid(), code))
    except OSError:  # the supervisor is gone: nobody to tell
        pass


def _read_ended(fd: int) -> list[tuple[int, int]]:
    """(pid, exit code) of each runner that told how it ended since the last read."""
    data = b""
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    except BlockingIOError:
        pass
    return [(int(pid), int(code)) for pid, code in
            (line.split() for line in data.decode().splitlines())]


def _reset_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)


def _drain(fd: int) -> None:
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _termination(task_dir: Path) -> dict:
    try:
        return json.loads((task_dir / "termination-log").read_text() or "{}")
    except (FileNotFoundError, ValueError):
        return {}


def _describe_exit(code: int, message: dict, task_dir: Path) -> tuple[str, str]:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return "Killed", f"the runner was killed by signal {name}"
    if message.get("error"):
        return message["error"], message.get("message") or message["error"]
    tail = ""
    try:
        tail = (task_dir / "output.log").read_text(errors="replace")[-1500:]
    except OSError:
        pass
    return "Error", f"the runner exited with code {code}" + (f":\n{tail}" if tail else "")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _warm_up(store_url: str | None) -> None:
    """Import what every runner needs once, before forking them."""
    import cloudpickle  # noqa: F401

    from ..core import options, pickling  # noqa: F401
    from ..core.backends import open_store
    from ..runner import artifacts, chunk, logtee, main, memory, worker  # noqa: F401

    if store_url is not None:
        open_store(store_url)
    tempfile.gettempdir()  # found once (it tries to write in each candidate), not per runner
    gc.freeze()  # what the forks inherit stays out of their collections (and unwritten)


def supervise(folder: Path, notify_fd: int | None) -> int:
    if not _lock_folder(folder):
        return 0  # another supervisor has the job (a fork server's late reply)
    supervisor = Supervisor(folder, notify_fd)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGCHLD, supervisor.on_signal)
    _warm_up(supervisor.spec["store_url"])
    try:
        return supervisor.run()
    finally:
        supervisor.reap_told()


def _lock_folder(folder: Path) -> bool:
    """One supervisor per job, whoever started it: an flock held until the process ends."""
    fd = os.open(folder / "supervisor.lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return True  # the descriptor stays open (runners close it: _close_inherited)


# Longest a server goes without a spare supervisor while the jobs it started still run.
SPARE_AT_THE_LATEST = 1.0


def serve(channel: socket.socket, idle_seconds: float) -> int:
    """The fork server (local_forkserver.py): warm up, then answer each request with the pid
    of a supervisor for it. Single-threaded, so forking is safe; SIGCHLD ignored, so the
    kernel reaps the supervisors as they end.

    The supervisor is forked before the request comes (a spare, waiting for its job): a
    fresh fork pays ~800 page faults (copy-on-write, and the code pages it runs, faulted in
    again) before it does anything, about 4 ms here, and the spare pays them while idle. The
    next spare is forked when the jobs this server started have ended (it watches their
    supervisors through pidfds), so its faults don't take a core from a running job's
    workers: a map's calls on two cores had them."""
    _warm_up(None)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    spare = _fork_spare(channel)
    running: list[int] = []  # pidfds of the supervisors started since the last spare
    since = time.monotonic()
    pending, fds = b"", []
    while True:
        wait = idle_seconds
        if spare is None:
            wait = max(0.0, since + SPARE_AT_THE_LATEST - time.monotonic())
        ready, _, _ = select.select([channel, *running], [], [], wait)
        for fd in [fd for fd in ready if fd in running]:  # a supervisor ended
            running.remove(fd)
            os.close(fd)
        if spare is None and (not running or time.monotonic() >= since + SPARE_AT_THE_LATEST):
            spare = _fork_spare(channel)
        if channel not in ready:
            if not ready and spare is not None and not running:
                return 0  # idle
            continue
        data, more, _, _ = socket.recv_fds(channel, 1 << 16, 4)
        fds += more
        if not data:
            return 0
        pending += data
        while b"\n" in pending and fds:
            line, pending = pending.split(b"\n", 1)
            wake_w = fds.pop(0)
            pid = None
            for _ in range(2):  # a spare found gone is replaced once
                spare = spare or _fork_spare(channel)
                if spare is None:  # can't fork: the client starts a supervisor itself
                    break
                try:
                    _send(spare[1], line + b"\n", wake_w)
                    pid = spare[0]
                    break
                except OSError:
                    pass
                finally:
                    spare[1].close()
                    spare = None
            os.close(wake_w)
            channel.sendall(b"%d\n" % pid if pid is not None else b"failed\n")
            if pid is not None:
                try:
                    running.append(os.pidfd_open(pid))
                except OSError:  # no pidfds here: the next spare at once
                    spare = _fork_spare(channel)
            since = time.monotonic()


def _fork_spare(channel: socket.socket) -> tuple[int, socket.socket] | None:
    """A supervisor forked ahead of its job: (pid, the socket its job comes on)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        code = 1
        try:
            channel.close()
            ours.close()
            code = _spare(theirs)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    return pid, ours


def _spare(job: socket.socket) -> int:
    """Wait for the job (its message and wake-up pipe), then supervise it; leave quietly when
    the server goes (EOF)."""
    data, fds = b"", []
    while b"\n" not in data or not fds:
        chunk, more, _, _ = socket.recv_fds(job, 1 << 16, 4)
        fds += more
        if not chunk:
            return 0
        data += chunk
    job.close()
    return _forked_supervisor(json.loads(data.split(b"\n", 1)[0]), fds[0])


def _send(job: socket.socket, message: bytes, wake_w: int) -> None:
    sent = socket.send_fds(job, [message], [wake_w])
    if sent < len(message):
        job.sendall(message[sent:])


_TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")  # where tempfile looks first


def _forked_supervisor(message: dict, notify_fd: int) -> int:
    """In the child of the fork server: become the job's supervisor, detached from the
    server (its own session), with the client's environment and the job's log."""
    os.setsid()
    if notify_fd <= 2:  # received where stdin was (the spare closed the server's socket)
        moved = fcntl.fcntl(notify_fd, fcntl.F_DUPFD, 3)
        os.close(notify_fd)
        notify_fd = moved
    folder = Path(message["folder"])
    before = [os.environ.get(name) for name in _TEMP_VARIABLES]
    os.environ.clear()
    os.environ.update(message["environ"])
    if [os.environ.get(name) for name in _TEMP_VARIABLES] != before:
        tempfile.tempdir = None  # found again under the job's environment
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log_fd = os.open(folder / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    return supervise(folder, notify_fd)


def main() -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.argv[1] == "--forkserver":
        from .local_forkserver import IDLE_SECONDS

        return serve(socket.socket(fileno=0), IDLE_SECONDS)
    return supervise(Path(sys.argv[1]), int(sys.argv[2]))


if __name__ == "__main__":
    sys.exit(main())
