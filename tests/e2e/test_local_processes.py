"""The local backend rehearses a pod's end: every process a task started is gone when the
task ends, as Kubernetes kills a pod's containers and everything in them."""

from __future__ import annotations

import os
import subprocess
import time

import aksrun


def start_sleeper() -> int:
    """Leaves a child behind, as a joblib worker pool or a forgotten Popen does."""
    return subprocess.Popen(["sleep", "300"]).pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_a_process_the_call_started_ends_with_its_task():
    pid = aksrun.function()(start_sleeper)()
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not alive(pid), "the call's child outlived its task"
    finally:
        if alive(pid):
            os.kill(pid, 9)
