"""map: one job, results in input order, failures, chunking; and the Executor."""

from __future__ import annotations

import concurrent.futures as cf
import time

import pytest

import aksrun

from . import funcs


def test_map_is_one_job_with_results_in_order(backend):
    client = aksrun.api.session.default_client()
    before = {s.job_id for s in client.list()}
    results = list(aksrun.function()(funcs.square).map(range(50), chunksize=7))
    assert results == [x * x for x in range(50)]
    # On Kubernetes the Job controller records completions shortly after the pods end.
    deadline = time.monotonic() + 30
    while True:
        new = [s for s in client.list() if s.job_id not in before]
        if (new and new[0].calls_done == 50) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(new) == 1
    assert new[0].calls == 50 and new[0].tasks == 8 and new[0].calls_done == 50


def test_map_zips_iterables_like_builtin_map(backend):
    results = list(aksrun.function()(funcs.add).map([1, 2, 3, 4], [10, 20, 30]))
    assert results == [11, 22, 33]


def test_map_first_failure_raises_and_cancels_the_rest(backend):
    remote = aksrun.function()(funcs.fail_on)
    seen = []
    with pytest.raises(funcs.CustomError, match="input 3"):
        for value in remote.map(range(10), chunksize=1, max_parallel=2):
            seen.append(value)
    # in input order up to the failure, which raises as soon as it is known: possibly before
    # the values of calls before it arrived
    assert seen == list(range(len(seen))) and len(seen) <= 3


def test_map_return_exceptions_puts_them_in_place(backend):
    results = list(aksrun.function()(funcs.fail_on).map(range(6), return_exceptions=True))
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    assert isinstance(results[3], funcs.CustomError)


def test_map_of_nothing_is_empty(backend):
    assert list(aksrun.function()(funcs.square).map([])) == []


def test_map_respects_max_parallel(backend, tmp_path):
    """With max_parallel=1 the two chunks can't overlap."""
    start = time.monotonic()
    assert list(aksrun.function()(funcs.sleep_for).map([0.5, 0.5], chunksize=1,
                                                        max_parallel=1)) == [0.5, 0.5]
    assert time.monotonic() - start >= 1.0


def test_map_rejects_bad_chunksize(backend):
    with pytest.raises(aksrun.ConfigError, match="chunksize=0"):
        aksrun.function()(funcs.square).map([1], chunksize=0)


def test_executor_is_a_drop_in_for_concurrent_futures(backend):
    with aksrun.Executor(cpu="500m") as ex:
        assert isinstance(ex, cf.Executor)
        futures = [ex.submit(funcs.square, i) for i in range(4)]
        assert [f.result(timeout=60) for f in futures] == [0, 1, 4, 9]
        assert list(ex.map(funcs.add, [1, 2], [3, 4], chunksize=2)) == [4, 6]
        done, _ = cf.wait(futures)
        assert len(done) == 4
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(funcs.square, 1)


def test_executor_map_timeout(backend):
    with aksrun.Executor() as ex:
        results = ex.map(funcs.sleep_for, [30], timeout=0.5)
        with pytest.raises(TimeoutError):
            list(results)


def test_executor_shutdown_cancels_futures(backend):
    ex = aksrun.Executor()
    fut = ex.submit(funcs.sleep_for, 30)
    ex.shutdown(wait=True, cancel_futures=True)
    assert fut.cancelled()


def test_as_completed_works_with_aksrun_futures(backend):
    remote = aksrun.function()(funcs.sleep_for)
    futures = [remote.submit(d) for d in (0.6, 0.1)]
    order = [f.result() for f in cf.as_completed(futures, timeout=60)]
    assert sorted(order) == [0.1, 0.6]


def test_local_map_reaches_its_parallelism(backend):
    """A long task in one slot doesn't hold the other: task 2 starts before task 1 ends."""
    if not backend.startswith("local"):
        pytest.skip("runner slots are the local supervisor's; Kubernetes schedules pods itself")
    import json
    import os
    from pathlib import Path

    results = list(aksrun.function()(funcs.sleep_for).map([0.2, 3, 0.2, 0.2], chunksize=1,
                                                           max_parallel=2))
    assert results == [0.2, 3, 0.2, 0.2]
    job_id = aksrun.api.session.default_client().list()[0].job_id
    events = Path(os.environ["AKSRUN_HOME"]) / "local" / "jobs" / job_id / "events.jsonl"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    started = {e["index"]: e["time"] for e in lines if e["kind"] == "started"}
    finished = {e["index"]: e["time"] for e in lines if e["kind"] == "succeeded"}
    assert started[2] < finished[1] and started[3] < finished[1]
