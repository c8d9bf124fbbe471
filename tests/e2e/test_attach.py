"""Re-attaching: aksrun.get works from any process, while the job runs or after it ended."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import aksrun

from . import funcs

SUBMIT_AND_DIE = textwrap.dedent("""
    import os, sys, aksrun
    from tests.e2e import funcs
    fut = aksrun.function()(funcs.sleep_for).submit(float(sys.argv[1]))
    print(fut.job_id, flush=True)
    os._exit(0)  # the client dies without waiting, cleaning up or saying goodbye
""")


def _submit_in_dying_process(seconds: float) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SUBMIT_AND_DIE, str(seconds)],
        capture_output=True, text=True, timeout=120, cwd=os.getcwd(),
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_get_after_the_submitting_process_died_while_running(backend):
    job_id = _submit_in_dying_process(1.5)
    fut = aksrun.get(job_id)
    assert fut.job_id == job_id
    assert fut.result(timeout=120) == 1.5


def test_get_after_the_job_finished(backend):
    job_id = _submit_in_dying_process(0.1)
    client = aksrun.api.session.default_client()
    for _ in range(600):
        if client.status(job_id).state == "succeeded":
            break
        time.sleep(0.1)
    assert aksrun.get(job_id).result(timeout=60) == 0.1


def test_get_of_a_map_returns_all_values_in_order(backend):
    remote = aksrun.function()(funcs.square)
    job_id = None
    results = remote.map(range(5))
    first = next(results)
    job_id = aksrun.api.session.default_client().list()[0].job_id
    assert first == 0 and list(results) == [1, 4, 9, 16]
    assert aksrun.get(job_id).result(timeout=60) == [0, 1, 4, 9, 16]


def test_get_of_a_failed_call_raises_its_exception(backend):
    fut = aksrun.function()(funcs.fail_on).submit(3)
    with pytest.raises(funcs.CustomError):
        fut.result(timeout=60)
    with pytest.raises(funcs.CustomError):
        aksrun.get(fut.job_id).result(timeout=60)


def test_get_unknown_job_names_it(backend):
    with pytest.raises(aksrun.AksrunError, match="square-20200101-000000-zzzzz"):
        aksrun.get("square-20200101-000000-zzzzz")
    with pytest.raises(aksrun.AksrunError, match="not an aksrun job id"):
        aksrun.get("../etc/passwd")
