"""The local backend's pre-warmed standby supervisor: used when it fits, never stale."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import aksrun
from aksrun.adapters import local_standby


def read_env(name):
    return os.environ.get(name)


def where_am_i():
    return os.getcwd()


def _supervisor_cmdline(job_id: str) -> str:
    home = Path(os.environ["AKSRUN_HOME"])
    pid = (home / "local" / "jobs" / job_id / "supervisor.pid").read_text()
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_second_job_runs_on_the_standby_with_the_current_environment(monkeypatch):
    remote = aksrun.function()(read_env)
    assert remote("AKSRUN_TEST_VALUE") is None  # starts a supervisor, then a standby
    monkeypatch.setenv("AKSRUN_TEST_VALUE", "set after the standby started")
    fut = remote.submit("AKSRUN_TEST_VALUE")
    assert "--standby" in _supervisor_cmdline(fut.job_id)
    assert fut.result(timeout=60) == "set after the standby started"


def test_standby_is_not_used_after_a_chdir(tmp_path, monkeypatch):
    remote = aksrun.function()(where_am_i)
    remote()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    fut = remote.submit()
    assert "--standby" not in _supervisor_cmdline(fut.job_id)
    assert fut.result(timeout=60) == str(tmp_path)


def test_standby_exits_with_its_client():
    code = ("import aksrun; from tests.e2e import funcs;"
            "aksrun.function()(funcs.square)(3);"
            "from aksrun.adapters import local_standby as s;"
            "print(s._standby.proc.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.strip())
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"standby {pid} outlived its client")


def _my_standbys() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"--standby" in cmdline and b"local_supervisor" in cmdline:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                found.append(int(entry.name))
    return found


def test_only_one_standby_per_process():
    remote = aksrun.function()(read_env)
    for _ in range(3):
        remote("HOME")
    standby = local_standby._standby
    assert standby is not None and standby.proc.poll() is None
    for _ in range(100):  # discarded ones get EOF and leave
        if _my_standbys() == [standby.proc.pid]:
            break
        time.sleep(0.05)
    assert _my_standbys() == [standby.proc.pid]
