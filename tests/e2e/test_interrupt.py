"""Ctrl+C wherever a call is waited on stops its job within a second or two, once, with one
line, and a second Ctrl+C doesn't print a traceback from inside the cancel (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.clirun import aksrun_cli

SCRIPTS = {
    "submit-result": """
f = aksrun.function()(funcs.sleep_for).submit(60)
print(f.job_id, flush=True)
f.result()
""",
    "map": """
results = aksrun.function()(funcs.sleep_for).map([60, 60], progress=False)
print(aksrun.api.session.default_client().list()[0].job_id, flush=True)
list(results)
""",
    "executor": """
with aksrun.Executor() as ex:
    fs = [ex.submit(funcs.sleep_for, 60) for _ in range(2)]
    for f in fs:
        print(f.job_id, flush=True)
    [f.result() for f in fs]
""",
}


def states(job_ids: list[str]) -> list[str]:
    listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    return [row["state"] for row in listing if row["job_id"] in job_ids]


@pytest.mark.parametrize("where", sorted(SCRIPTS))
def test_ctrl_c_cancels_the_jobs_once_with_one_line(where, tmp_path):
    code = "import aksrun, aksrun.api.session\nfrom tests.e2e import funcs\n" + SCRIPTS[where]
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines = [process.stdout.readline().strip() for _ in range(2 if where == "executor" else 1)]
    jobs = sorted(set(lines))  # an Executor's submits made together share one job
    assert all(lines), process.stderr.read()
    time.sleep(1.0)  # running
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # impatient
    start = time.monotonic()
    try:
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert time.monotonic() - start < 5, err
    said = [line for line in err.splitlines() if line.startswith("aksrun: interrupted")]
    assert len(said) == len(jobs), err
    # Python's own report of the KeyboardInterrupt at the wait, and nothing from the cancel
    assert err.count("Traceback") <= 1 and ", in cancel" not in err, err
    deadline = time.monotonic() + 10
    while states(jobs) != ["cancelled"] * len(jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert states(jobs) == ["cancelled"] * len(jobs)
