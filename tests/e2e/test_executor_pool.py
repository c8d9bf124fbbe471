"""aksrun.Executor as a pool (issue 12): submits made together are coalesced into one job,
each call keeps its own Future (its own value or exception, as soon as it is done),
`max_workers` bounds what runs, PENDING calls can be cancelled, and interpreter exit behaves
as with the standard pools. On the local backend: the behaviour is the lifecycle's."""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import time

import pytest

import aksrun
from aksrun.api.session import default_client

from . import funcs


def jobs_made(before: set[str]) -> set[str]:
    return {s.job_id for s in default_client().list()} - before


def test_a_burst_of_submits_is_one_job_with_a_future_per_call():
    before = jobs_made(set())
    with aksrun.Executor() as ex:
        futures = [ex.submit(funcs.fail_on, i, bad=3) for i in range(40)]
        outcomes = [f.exception(timeout=120) or f.result() for f in futures]
    assert isinstance(outcomes[3], funcs.CustomError)  # its own error; the others, values
    assert [o for i, o in enumerate(outcomes) if i != 3] == [i for i in range(40) if i != 3]
    made = jobs_made(before)
    assert len(made) == 1 and {f.job_id for f in futures} == made


def test_a_call_resolves_when_it_is_done_not_when_its_job_is():
    with aksrun.Executor() as ex:
        slow, fast = ex.submit(funcs.sleep_for, 8), ex.submit(funcs.sleep_for, 0.1)
        assert slow.job_id == fast.job_id
        start = time.monotonic()
        assert fast.result(timeout=60) == 0.1
        assert time.monotonic() - start < 6 and not slow.done()
        slow.cancel()  # running: a pool can't cancel it either
        assert slow.result(timeout=60) == 8


def test_max_workers_bounds_what_runs_and_pending_calls_can_be_cancelled():
    with aksrun.Executor(max_workers=1) as ex:
        futures = [ex.submit(funcs.sleep_for, 1.5) for _ in range(3)]
        deadline = time.monotonic() + 30
        while not futures[0].running() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert futures[0].running()
        assert [f.running() for f in futures[1:]] == [False, False]  # PENDING: not started
        assert futures[2].cancel() and futures[2].cancelled()
        assert futures[0].result(timeout=60) == 1.5 and futures[1].result(timeout=60) == 1.5
        done, _ = cf.wait(futures, timeout=60)
        assert len(done) == 3


def test_max_workers_and_max_parallel_name_the_same_thing():
    assert aksrun.Executor(max_workers=3).max_workers == 3
    assert aksrun.Executor(max_parallel=3).max_workers == 3
    with pytest.raises(aksrun.ConfigError, match="give one of them"):
        aksrun.Executor(max_workers=2, max_parallel=3)


EXIT_SCRIPT = """
import sys, aksrun
from tests.e2e import funcs
ex = aksrun.Executor({options})
ex.submit(funcs.sleep_then_mark, 1.0, sys.argv[1])
"""


@pytest.mark.parametrize("wait", [True, False])
def test_at_interpreter_exit_calls_are_waited_for_unless_detached(wait, tmp_path):
    marker = tmp_path / "marker"
    options = "" if wait else "wait_at_exit=False"
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT.format(options=options),
                          str(marker)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    took = time.monotonic() - start
    if wait:
        assert marker.exists() and took >= 1.0  # the call ran to its end first
    else:
        assert took < 5.0


def test_submit_during_interpreter_shutdown_is_refused():
    script = ("import atexit, aksrun\nfrom tests.e2e import funcs\nex = aksrun.Executor()\n"
              "def late():\n    try:\n        ex.submit(funcs.square, 2)\n"
              "    except RuntimeError as exc:\n        print(exc)\natexit.register(late)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ))
    assert "cannot schedule new futures after interpreter shutdown" in out.stdout, out.stderr


@pytest.mark.parametrize("how", ["executor", "function"])
def test_a_value_a_map_has_yielded_is_freed_once_the_caller_drops_it(how):
    import gc
    import weakref

    if how == "executor":
        ex = aksrun.Executor()
        results = ex.map(funcs.boxed, range(4))
    else:
        results = aksrun.function()(funcs.boxed).map(range(4), chunksize=4, progress=False)
    first = next(results)
    ref = weakref.ref(first)
    del first
    gc.collect()
    assert ref() is None  # not kept by the map's iterator or its job
    assert [box.value for box in results] == [1, 2, 3]
    if how == "executor":
        ex.shutdown()
