"""The local backend's fork server: supervisors forked warm, with the caller's current
environment, reaped when they end, never from a stale server, and the job still runs when
the server is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aksrun
from aksrun.adapters import local_forkserver


def read_env(name):
    return os.environ.get(name)


def read_env_slowly(name):
    time.sleep(1)  # its supervisor is still there to be looked at
    return os.environ.get(name)


def where_am_i():
    return os.getcwd()


def _supervisor_pid(job_id: str) -> int:
    home = Path(os.environ["AKSRUN_HOME"])
    return int((home / "local" / "jobs" / job_id / "supervisor.pid").read_text())


def _stat(pid: int) -> list[str]:
    """state, ppid, ... of /proc/<pid>/stat (after the command name)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _server_pid() -> int:
    server = local_forkserver._server
    assert server is not None and server.proc.poll() is None
    return server.proc.pid


def test_a_job_runs_in_a_supervisor_forked_by_the_server_with_the_current_environment(
        monkeypatch):
    remote = aksrun.function()(read_env)
    assert remote("AKSRUN_TEST_VALUE") is None  # starts the server
    monkeypatch.setenv("AKSRUN_TEST_VALUE", "set after the server started")
    fut = aksrun.function()(read_env_slowly).submit("AKSRUN_TEST_VALUE")
    pid = _supervisor_pid(fut.job_id)
    assert int(_stat(pid)[1]) == _server_pid()  # its parent: the server, not this process
    assert fut.result(timeout=60) == "set after the server started"


def test_the_supervisor_wakes_its_client_through_the_pipe_it_was_handed(monkeypatch):
    """Each event of the job reaches the client through a pipe handed over twice (client,
    server, supervisor); when the supervisor lost it, the client still worked, by polling
    the events file with a growing backoff (up to 0.2 s a job)."""
    remote = aksrun.function()(read_env_slowly)
    remote("HOME")  # the server and its spare supervisor are there
    fut = remote.submit("HOME")
    wake = os.fstat(fut._run.handle.data["wake_fd"]).st_ino
    pid = _supervisor_pid(fut.job_id)
    # The server names the spare before the spare has read the job's message and its pipe
    deadline, held = time.monotonic() + 10, set()
    while wake not in held and time.monotonic() < deadline:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                held.add(os.stat(fd).st_ino)
            except FileNotFoundError:
                pass
        time.sleep(0.01)
    assert wake in held, "the supervisor does not hold the write end of its client's pipe"
    assert fut.result(timeout=60) == os.environ["HOME"]


def test_the_server_reaps_the_supervisors_it_forked():
    remote = aksrun.function()(read_env)
    remote("HOME")
    pids = [_supervisor_pid(remote.submit("HOME").job_id) for _ in range(3)]
    server = _server_pid()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = []
        for pid in pids:
            try:
                if int(_stat(pid)[1]) == server:  # a zombie still shows its parent
                    left.append(pid)
            except FileNotFoundError:
                pass
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"supervisors {left} were not reaped by the fork server {server}")


def test_a_server_that_died_is_replaced_and_the_job_still_runs():
    remote = aksrun.function()(read_env)
    remote("HOME")
    old = _server_pid()
    os.kill(old, signal.SIGKILL)
    local_forkserver._server.proc.wait(timeout=10)
    assert remote("HOME") == os.environ["HOME"]
    assert _server_pid() != old


def test_a_chdir_starts_a_new_server(tmp_path, monkeypatch):
    remote = aksrun.function()(where_am_i)
    remote()
    old = _server_pid()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    assert remote() == str(tmp_path)
    assert _server_pid() != old


def test_the_server_exits_with_its_client():
    code = ("import aksrun; from tests.e2e import funcs;"
            "aksrun.function()(funcs.square)(3);"
            "from aksrun.adapters import local_forkserver as s;"
            "print(s._server.proc.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.strip())
    for _ in range(100):
        try:
            if _stat(pid)[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError(f"fork server {pid} outlived its client")


def _my_servers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = _stat(int(entry.name))[:2]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if (int(ppid) == os.getpid() and local_forkserver.SERVE_FLAG.encode() in cmdline
                and state != "Z"):
            found.append(int(entry.name))
    return found


def test_one_server_per_process():
    remote = aksrun.function()(read_env)
    for _ in range(3):
        remote("HOME")
    server = _server_pid()
    for _ in range(100):  # servers let go get EOF and leave
        if _my_servers() == [server]:
            break
        time.sleep(0.05)
    assert _my_servers() == [server]


def test_a_second_supervisor_for_the_same_job_leaves_it_alone(tmp_path):
    """The job folder's lock: a fork that comes late (a server taken for hung) must not run
    the job a second time."""
    from aksrun.adapters.local_supervisor import _lock_folder

    assert _lock_folder(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path;"
         "from aksrun.adapters.local_supervisor import supervise;"
         f"sys.exit(supervise(Path({str(tmp_path)!r}), None) + 10)"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 10, out.stderr  # returned at once: no launch.json was even read
