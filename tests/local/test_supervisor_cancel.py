"""Cancelling a local job never waits out a runner that was forked a moment before."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from aksrun.adapters.local_supervisor import Supervisor


def test_stop_kills_a_runner_that_does_not_lead_its_own_group_yet(tmp_path):
    # A runner's first step is setsid(); a cancel that lands before it finds no process group
    # of that pid. Stand in for such a runner with a child still in this process's group.
    (tmp_path / "launch.json").write_text(json.dumps({
        "slots": str(tmp_path / "slots"), "slot_count": 1, "parallelism": 1}))
    supervisor = Supervisor(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        supervisor.running[child.pid] = (0, 0, tmp_path, None)
        stopping = threading.Thread(
            target=supervisor.stop, args=("job_cancelled", "Cancelled", "cancelled"),
            daemon=True)
        stopping.start()
        stopping.join(30)
        assert not stopping.is_alive(), "stop() waited on a runner it never killed"
        events = (tmp_path / "events.jsonl").read_text()
        assert '"job_cancelled"' in events
    finally:
        child.kill()
        child.wait()
