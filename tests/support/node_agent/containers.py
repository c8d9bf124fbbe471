"""One running container instance: the process (started through the wrapper, in its own
session and process group), its stdout/stderr pumped into the CRI log file, and how it ended.

Exit is noticed through a pidfd, so a daemonized grandchild holding the pipes open cannot
hide it; then, as when a container's init dies, everything left in its process group and
cgroup is SIGKILLed.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from .cgroups import Cgroup
from .logs import ContainerLog

log = logging.getLogger(__name__)


class _Spawner:
    """Forks every container from one long-lived thread: the wrapper sets a parent-death
    signal, which the kernel ties to the forking *thread*; pod workers come and go, this
    thread lives as long as the agent's process, so containers die with it and not before."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="node-agent-spawner", daemon=True).start()

    def _run(self) -> None:
        while True:
            fn, done = self._queue.get()
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

    def run(self, fn: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        done: Future = Future()
        self._queue.put((fn, done))
        return done.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def spawn(fn: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
    return _spawner.run(fn)


class StartError(Exception):
    """The wrapper could not exec the command (the CRI's StartError, exit code 128)."""


class ContainerProcess:
    def __init__(self, argv: list[str], spec_path: Path, log_file: ContainerLog,
                 cgroup: Cgroup | None, on_exit: Callable[[], None]) -> None:
        self.argv = argv
        self.spec_path = spec_path
        self.log = log_file
        self.cgroup = cgroup
        self.on_exit = on_exit
        self.proc: subprocess.Popen | None = None
        self.started_ns = 0
        self.finished_ns = 0
        self.exit_code: int | None = None
        self.oom_killed = False
        self.exited = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The process the agent started (the shim when isolated; its process group id)."""
        return self.proc.pid if self.proc is not None and not self.exited.is_set() else None

    @property
    def init_pid(self) -> int | None:
        """The container's PID 1 as this machine numbers it (the shim's child), else pid."""
        pid = self.pid
        if pid is None:
            return None
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return int(children[0]) if children else pid

    def start(self, write_fd: int, read_fd: int) -> None:
        """Spawn; returns once the command is exec'd, raises StartError if it could not be.

        `write_fd` is the wrapper's error pipe (named in the spec): close-on-exec in the
        child, so EOF with no data means the exec happened.
        """
        try:
            self.proc = spawn(lambda: subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, pass_fds=(write_fd,)))
        except OSError:
            os.close(read_fd)
            self.finished_ns = time.time_ns()
            self.log.close()
            self._cleanup()
            self.exited.set()
            raise
        finally:
            os.close(write_fd)
        self.started_ns = time.time_ns()
        with os.fdopen(read_fd, "rb") as r:
            error = r.read().decode("utf-8", "replace")
        if error:
            self.exit_code = self.proc.wait()
            self.finished_ns = time.time_ns()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            self.log.close()
            self._cleanup()
            self.exited.set()
            raise StartError(error)
        name = f"{threading.current_thread().name} pid {self.proc.pid}"
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        pidfd = -1
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        except OSError:
            pass
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream, selectors.EVENT_READ, name)
        open_streams = 2
        drain_deadline: float | None = None
        try:
            while open_streams or not self.finished_ns:
                timeout = None
                if drain_deadline is not None:
                    timeout = max(0.0, drain_deadline - time.monotonic())
                    if timeout == 0:
                        break
                for key, _ in sel.select(timeout):
                    if key.data == "exit":
                        self._ended(sel, pidfd)
                        drain_deadline = time.monotonic() + 2.0
                        continue
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if data:
                        self.log.write(key.data, data)
                    else:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                if open_streams == 0 and not self.finished_ns and pidfd < 0:
                    proc.wait()
                    self._ended(sel, pidfd)
        except Exception:
            log.exception("log pump of pid %s failed", proc.pid)
        finally:
            sel.close()
            if pidfd >= 0:
                os.close(pidfd)
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            code = proc.wait()
            self.exit_code = 128 - code if code < 0 else code
            if not self.finished_ns:
                self.finished_ns = time.time_ns()
            self.log.close()
            if self.cgroup is not None and self.cgroup.oom_kills() > 0:
                self.oom_killed = True
            self._cleanup()
            self.exited.set()
            try:
                self.on_exit()
            except Exception:
                log.exception("exit callback of pid %s failed", proc.pid)

    def _ended(self, sel: selectors.BaseSelector, pidfd: int) -> None:
        """Init has exited: the rest of the container dies with it."""
        self.finished_ns = self.finished_ns or time.time_ns()
        if pidfd >= 0:
            try:
                sel.unregister(pidfd)
            except (KeyError, ValueError):
                pass
        self._kill_rest()

    def _kill_rest(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _cleanup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()

    def signal(self, sig: int, group: bool = False) -> bool:
        """Signal init (what containerd's StopContainer does) or its whole process group."""
        if self.proc is None or self.exited.is_set():
            return False
        try:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)
            return True
        except OSError:
            return False

    def force_kill(self, timeout: float = 5.0) -> None:
        """SIGKILL everything and wait for the pump to finish (pod force-deleted, stop())."""
        if self.proc is not None and not self.exited.is_set():
            self._kill_rest()
            self.exited.wait(timeout)
