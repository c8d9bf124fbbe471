"""A picture of a job: a map whose tasks wait, run, fail and are retried, drawn on a time axis.

    pip install 'aksrun[plot]'
    python examples/timeline.py [FILE.png|.svg|.html]   # default: docs/img/timeline.png

It runs on the local backend (it marks a call's first run in a local folder): 12 calls in 6
tasks of 2, at most 3 at once, so the last tasks wait for a free slot. Task 2's runner is
stopped on its first attempt, as a drained node stops a pod: the task runs again. Call 7
raises (its task still completes: a raised call is an outcome), and call 9 fails once and
succeeds when retries=1 runs it again. Then `aksrun jobs show ID --timeline FILE` draws it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aksrun

MARKS = tempfile.mkdtemp(prefix="aksrun-timeline-")


def first_run(name: str) -> bool:
    path = os.path.join(MARKS, name)
    if os.path.exists(path):
        return False
    Path(path).touch()
    return True


@aksrun.function(cpu="500m", memory="256Mi", retries=1)
def simulate(step: int) -> float:
    time.sleep(0.4 + (step % 4) * 0.3)
    if step == 4 and first_run("node-drained"):
        os.kill(os.getppid(), signal.SIGTERM)  # the runner (this call runs in its worker)
        time.sleep(30)  # stopped before this ends
    if step == 7:
        raise ValueError(f"step {step}: no convergence")
    if step == 9 and first_run("flaky"):
        raise ConnectionError(f"step {step}: a flaky download")
    return step * 1.5


def aksrun_cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "aksrun.cli", *args], check=True,
                          capture_output=True, text=True).stdout


def main() -> None:
    os.environ.setdefault("AKSRUN_BACKEND", "local")
    target = sys.argv[1] if len(sys.argv) > 1 else str(
        Path(__file__).resolve().parent.parent / "docs" / "img" / "timeline.png")
    results = list(simulate.map(range(12), chunksize=2, max_parallel=3,
                                return_exceptions=True))
    print("results:", results)
    job_id = json.loads(aksrun_cli("jobs", "ls", "--json", "--limit", "1"))[0]["job_id"]
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    aksrun_cli("jobs", "show", job_id, "--timeline", target)
    print(f"timeline of {job_id}: {target}")


if __name__ == "__main__":
    main()
