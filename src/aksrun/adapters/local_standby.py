"""A pre-warmed local supervisor, handed the next job.

Starting a supervisor costs an interpreter start plus the runner stack's imports (~50 ms),
which dominates short local jobs. So after each launch the client starts one standby
supervisor that warms up and waits on its stdin; the next launch hands it the job folder and
this process's environment (through the pipe, never to disk). One standby per client
process at most: it exits when the client does (EOF on its stdin) or after sitting idle, and
is only used while the interpreter, working directory and PYTHONPATH it was started with
are still this process's.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

IDLE_SECONDS = 120  # a standby nobody used exits after this (the supervisor enforces it)

_lock = threading.Lock()
_standby: _Standby | None = None


@dataclasses.dataclass
class _Standby:
    proc: subprocess.Popen
    wake_fd: int
    key: tuple[str, str, str]


def start_supervisor(folder: Path) -> tuple[subprocess.Popen, int]:
    """A supervisor running the job in `folder`: the standby if it still fits, else a new
    one. Returns the process and the read end of its wake-up pipe."""
    global _standby
    with _lock:
        standby, _standby = _standby, None
    started = _hand_over(standby, folder) if standby is not None else None
    if started is None:
        started = _spawn(folder)
    _refill()
    return started


def _hand_over(standby: _Standby, folder: Path) -> tuple[subprocess.Popen, int] | None:
    if standby.key == _key() and standby.proc.poll() is None:
        message = json.dumps({"folder": str(folder), "environ": dict(os.environ)}) + "\n"
        try:
            standby.proc.stdin.write(message.encode())
            standby.proc.stdin.close()
            return standby.proc, standby.wake_fd
        except OSError:  # it exited meanwhile (idle timeout): start a fresh one
            pass
    _discard(standby)
    return None


def _spawn(folder: Path | None) -> tuple[subprocess.Popen, int]:
    wake_r, wake_w = os.pipe()  # the supervisor writes a byte per event: no polling
    args = [str(folder), str(wake_w)] if folder is not None else ["--standby", str(wake_w)]
    with contextlib.ExitStack() as stack:
        log = (stack.enter_context(open(folder / "supervisor.log", "ab"))
               if folder is not None else subprocess.DEVNULL)
        proc = subprocess.Popen(
            [sys.executable, "-m", "aksrun.adapters.local_supervisor", *args],
            stdin=subprocess.PIPE if folder is None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the client's Ctrl+C and exit
            close_fds=True,
            pass_fds=(wake_w,),
        )
    os.close(wake_w)
    return proc, wake_r


def _refill() -> None:
    global _standby
    try:
        proc, wake_fd = _spawn(None)
    except OSError:
        return  # no standby: the next launch starts its supervisor itself
    with _lock:
        old, _standby = _standby, _Standby(proc, wake_fd, _key())
    if old is not None:
        _discard(old)


def _discard(standby: _Standby) -> None:
    with contextlib.suppress(OSError):
        standby.proc.stdin.close()  # EOF: it exits
    with contextlib.suppress(OSError):
        os.close(standby.wake_fd)
    threading.Thread(target=standby.proc.wait, daemon=True).start()


def _key() -> tuple[str, str, str]:
    return (sys.executable, os.getcwd(), os.environ.get("PYTHONPATH", ""))


@atexit.register
def _close() -> None:
    with _lock:
        standby = _standby
    if standby is not None:
        _discard(standby)
