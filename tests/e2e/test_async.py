"""asyncio: `await fut`, `await f.aio(x)` and `async for v in f.amap(xs)`, on every backend.

The event loop must keep running while a job is waited on. Each such test has a call that
waits for a file which only another coroutine of the same loop writes, once the call has
started: a wait that blocked the loop would leave the call waiting until it gives up.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aksrun
from tests.support.waiting import wait_for

from . import funcs

RELEASE_WAIT = 30.0  # seconds a call waits for the loop to release it


def wait_for_release(folder, value=None):
    """Say it started (and in which job), then wait for the release file."""
    folder = Path(folder)
    (folder / "started").write_text(os.environ.get("AKSRUN_JOB_ID", ""))
    deadline = time.monotonic() + RELEASE_WAIT
    while not (folder / "release").exists():
        if time.monotonic() > deadline:
            return "not released: the caller's event loop did not run"
        time.sleep(0.05)
    return "released" if value is None else value


def first_waits(x, folder):
    return wait_for_release(folder, x) if x == 0 else x


async def release_when_started(folder: Path) -> None:
    while not (folder / "started").exists():
        await asyncio.sleep(0.05)
    (folder / "release").write_text("")


def job_state(job_id: str) -> str:
    return aksrun.api.session.default_client().status(job_id).state


async def started_job(folder: Path) -> str:
    while not (folder / "started").exists() or not (folder / "started").read_text():
        await asyncio.sleep(0.05)
    return (folder / "started").read_text()


# --- await fut -----------------------------------------------------------------------------


def test_await_a_future_gives_its_value_while_the_loop_runs_on(backend, tmp_path):
    fut = aksrun.function()(wait_for_release).submit(str(tmp_path))

    async def main():
        releaser = asyncio.create_task(release_when_started(tmp_path))
        value = await fut
        await releaser
        return value

    assert asyncio.run(main()) == "released"


def test_await_a_future_raises_the_remote_exception(backend):
    fut = aksrun.function()(funcs.fail_on).submit(3)

    async def main():
        return await fut

    with pytest.raises(funcs.CustomError, match="input 3 is bad"):
        asyncio.run(main())


def test_cancelling_the_task_awaiting_a_future_cancels_the_job(backend, tmp_path):
    fut = aksrun.function()(wait_for_release).submit(str(tmp_path))

    async def main():
        waiting = asyncio.create_task(_await(fut))
        await started_job(tmp_path)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
    assert fut.cancelled()
    wait_for(lambda: job_state(fut.job_id) == "cancelled", timeout=30)


async def _await(awaitable):
    return await awaitable


# --- await f.aio(x) ------------------------------------------------------------------------


def test_aio_returns_the_value_while_the_loop_runs_on(backend, tmp_path):
    remote = aksrun.function()(wait_for_release)

    async def main():
        return await asyncio.gather(remote.aio(str(tmp_path)), release_when_started(tmp_path))

    assert asyncio.run(main())[0] == "released"


def test_aio_raises_the_remote_exception_and_streams_output(backend, capfd):
    async def main():
        assert await aksrun.function()(funcs.shout).aio("async hi") == "ASYNC HI"
        await aksrun.function()(funcs.fail_on).aio(3)

    with pytest.raises(funcs.CustomError, match="input 3 is bad"):
        asyncio.run(main())
    assert "stdout: async hi" in capfd.readouterr().err


def test_cancelling_an_aio_call_cancels_its_job(backend, tmp_path):
    remote = aksrun.function()(wait_for_release)

    async def main():
        call = asyncio.create_task(remote.aio(str(tmp_path)))
        job_id = await started_job(tmp_path)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return job_id

    job_id = asyncio.run(main())
    wait_for(lambda: job_state(job_id) == "cancelled", timeout=30)


# --- async for v in f.amap(xs) -------------------------------------------------------------


def test_amap_yields_values_in_input_order(backend):
    async def main():
        return [v async for v in aksrun.function()(funcs.square).amap(range(20), chunksize=3)]

    assert asyncio.run(main()) == [x * x for x in range(20)]


def test_amap_of_nothing_is_empty(backend):
    async def main():
        return [v async for v in aksrun.function()(funcs.square).amap([])]

    assert asyncio.run(main()) == []


def test_amap_waits_without_blocking_the_loop(backend, tmp_path):
    remote = aksrun.function()(first_waits)

    async def main():
        releaser = asyncio.create_task(release_when_started(tmp_path))
        values = [v async for v in remote.amap(range(4), [str(tmp_path)] * 4, chunksize=1)]
        await releaser
        return values

    assert asyncio.run(main()) == [0, 1, 2, 3]


def test_amap_raises_the_first_failure_unless_return_exceptions(backend):
    remote = aksrun.function()(funcs.fail_on)

    async def first_failure():
        seen = []
        with pytest.raises(funcs.CustomError, match="input 3"):
            async for value in remote.amap(range(6), chunksize=1, max_parallel=1):
                seen.append(value)
        return seen

    async def in_place():
        return [v async for v in remote.amap(range(6), chunksize=2, return_exceptions=True)]

    assert asyncio.run(first_failure()) == [0, 1, 2]
    results = asyncio.run(in_place())
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    assert isinstance(results[3], funcs.CustomError)


def test_cancelling_the_task_iterating_amap_cancels_the_job(backend, tmp_path):
    remote = aksrun.function()(wait_for_release)

    async def consume():
        return [v async for v in remote.amap([str(tmp_path)])]

    async def main():
        consumer = asyncio.create_task(consume())
        job_id = await started_job(tmp_path)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        return job_id

    job_id = asyncio.run(main())
    wait_for(lambda: job_state(job_id) == "cancelled", timeout=30)


def test_leaving_amap_early_cancels_the_job(backend, tmp_path):
    remote = aksrun.function()(first_waits)
    folders = [str(tmp_path)] * 3

    async def main():
        async for value in remote.amap([1, 0, 2], folders, chunksize=1):
            assert value == 1
            job_id = await started_job(tmp_path)  # call 1 runs (and waits) meanwhile
            break
        return job_id

    job_id = asyncio.run(main())
    wait_for(lambda: job_state(job_id) == "cancelled", timeout=30)


def test_amap_checks_its_options_before_anything_runs(backend):
    remote = aksrun.function()(funcs.square)
    with pytest.raises(aksrun.ConfigError, match="chunksize=0"):
        remote.amap([1], chunksize=0)
    with pytest.raises(aksrun.ConfigError, match="logs='no'"):
        remote.amap([1], logs="no")
    with pytest.raises(aksrun.AksrunError, match="at least one iterable"):
        remote.amap()


def test_import_aksrun_does_not_import_asyncio():
    code = ("import sys, aksrun\n"
            "f = aksrun.function()(len)\n"
            "aksrun.Future, aksrun.Executor\n"
            "assert 'asyncio' not in sys.modules, 'asyncio was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
