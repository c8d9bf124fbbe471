"""A warm fork server that starts local supervisors.

A supervisor started as a new interpreter costs an interpreter start plus the runner stack's
imports (~70 ms of CPU). The pre-warmed standby this replaces paid that during every job, on
the cores the job's runners needed: a quarter of the CPU of a 10,000-call map. So each client
process keeps one fork server instead, as multiprocessing's forkserver: started with the
first local job, it imports what supervisors and runners need once, then forks a supervisor
per job (about a millisecond), in its own session, handed the job folder and this process's
environment over a socket (never through disk), and reaps it when it ends. It exits when the
client does (EOF on its socket) or after sitting idle, and is only used while the
interpreter, working directory and PYTHONPATH it was started with are still this process's.
When it can't be used, a supervisor is started directly, as before it existed.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

IDLE_SECONDS = 300  # a server nobody used exits after this (the server enforces it)
# How long a launch waits for the server's reply: it warms up first (tenths of a second on a
# busy machine, a few seconds when the store's SDK is imported cold). Past it, the server is
# taken for hung, killed, and the supervisor started directly (the job folder's lock keeps a
# late fork from running the job twice).
REPLY_TIMEOUT = 60.0
SERVE_FLAG = "--forkserver"

_lock = threading.Lock()  # one request at a time on the socket; guards _server
_server: _Server | None = None


@dataclasses.dataclass
class _Server:
    proc: subprocess.Popen
    sock: socket.socket
    key: tuple[str, str, str]
    replies: bytes = b""


def start_supervisor(folder: Path) -> tuple[int, int, subprocess.Popen | None]:
    """A supervisor running the job in `folder`: its pid, the read end of its wake-up pipe,
    and its Popen when this process started it itself (to reap; the server reaps its own)."""
    global _server
    with _lock:
        for _ in range(2):  # a server found gone (idle exit, killed) is replaced once
            if _server is None or _server.key != _key() or _server.proc.poll() is not None:
                _discard()
                _server = _spawn_server()
                if _server is None:
                    break
            started = _request(_server, folder)
            if started is not None:
                return (*started, None)
            _discard()
    proc, wake_r = _spawn_supervisor(folder)
    return proc.pid, wake_r, proc


def _request(server: _Server, folder: Path) -> tuple[int, int] | None:
    """Have the server fork the job's supervisor: (pid, wake-up read end), None if it can't."""
    wake_r, wake_w = os.pipe()  # the supervisor writes a byte per event: no polling
    try:
        message = json.dumps({"folder": str(folder), "environ": dict(os.environ)}).encode()
        message += b"\n"
        try:
            sent = socket.send_fds(server.sock, [message], [wake_w])
            if sent < len(message):
                server.sock.sendall(message[sent:])
        finally:
            os.close(wake_w)
        reply = _reply(server)
    except TimeoutError:  # hung: killed (the job folder's lock stops a late fork's supervisor)
        server.proc.kill()
        reply = None
    except OSError:  # gone (EPIPE)
        reply = None
    if reply is None or not reply.isdigit():
        os.close(wake_r)
        return None
    return int(reply), wake_r


def _reply(server: _Server) -> bytes | None:
    server.sock.settimeout(REPLY_TIMEOUT)
    while b"\n" not in server.replies:
        data = server.sock.recv(4096)
        if not data:
            return None
        server.replies += data
    line, server.replies = server.replies.split(b"\n", 1)
    return line.strip()


def _spawn_server() -> _Server | None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aksrun.adapters.local_supervisor", SERVE_FLAG],
            stdin=theirs.fileno(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives the client's Ctrl+C
            close_fds=True,
        )
    except OSError:
        ours.close()
        return None
    finally:
        theirs.close()
    return _Server(proc, ours, _key())


def _spawn_supervisor(folder: Path) -> tuple[subprocess.Popen, int]:
    """A supervisor of its own interpreter, for when no server can be used."""
    wake_r, wake_w = os.pipe()
    with open(folder / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aksrun.adapters.local_supervisor", str(folder), str(wake_w)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the client's Ctrl+C and exit
            close_fds=True,
            pass_fds=(wake_w,),
        )
    os.close(wake_w)
    return proc, wake_r


def _discard() -> None:
    """Let the current server go: EOF on its socket ends it (its supervisors run on)."""
    global _server
    server, _server = _server, None
    if server is None:
        return
    server.sock.close()
    threading.Thread(target=server.proc.wait, daemon=True).start()


def _key() -> tuple[str, str, str]:
    return (sys.executable, os.getcwd(), os.environ.get("PYTHONPATH", ""))


@atexit.register
def _close() -> None:
    with _lock:
        _discard()
