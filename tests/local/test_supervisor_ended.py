"""A runner's task counts as ended as soon as the runner says how it ended: the supervisor
doesn't wait for the kernel to tear the process down (milliseconds for a runner that held
a task's inputs), and leaves no zombie behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from aksrun.adapters.local_supervisor import Supervisor

# A runner that says it ended with code 0, then takes its time to go.
TELLS_THEN_LINGERS = ("import os, sys, time; fd = int(sys.argv[1]); "
                      "os.write(fd, b'%d 0\\n' % os.getpid()); time.sleep(120)")


def test_a_task_ends_when_its_runner_says_so_not_when_its_process_is_gone(tmp_path):
    (tmp_path / "launch.json").write_text(json.dumps({
        "slots": str(tmp_path / "slots"), "slot_count": 1, "parallelism": 1}))
    supervisor = Supervisor(tmp_path)
    runner = subprocess.Popen([sys.executable, "-c", TELLS_THEN_LINGERS,
                               str(supervisor.ended_w)], pass_fds=[supervisor.ended_w],
                              start_new_session=True)  # leads its group, as a runner does
    try:
        supervisor.running[runner.pid] = (0, 0, tmp_path, None)
        started = time.monotonic()
        done = []
        while not done and time.monotonic() - started < 30:
            done = supervisor.reap(1.0)
        assert done == [(0, 0)]
        assert not supervisor.running and runner.pid in supervisor.told
        supervisor.reap_told()  # the group was killed with the task: nothing lingers
        assert not supervisor.told
        assert runner.poll() is not None or _gone(runner.pid)
    finally:
        runner.kill()
        runner.wait()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
