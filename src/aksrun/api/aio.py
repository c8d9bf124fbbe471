"""asyncio: `await fut`, `await f.aio(x)` and `async for v in f.amap(xs)`, none blocking the
event loop.

What blocks (pickling, uploads and the launch of a submission; stopping a job) runs in a
thread; what waits is the loop's, through `asyncio.wrap_future` on the job's own futures, so
the loop runs other coroutines meanwhile. Cancelling the task that awaits a call or iterates
a map cancels the job, as Ctrl+C does for a blocking call: nobody is left to take its result.
`asyncio.shield(fut)` keeps a job running past its awaiting task's cancellation.

Imported only when one of these is used: `import aksrun` stays free of asyncio.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from .future import Future


async def wait(fut: Future) -> Any:
    """`await fut`: its value, or its exception raised. The wait is shielded so that the
    loop never calls the job's (blocking) cancel itself: it runs in a thread instead."""
    waiter = asyncio.wrap_future(fut)
    waiter.add_done_callback(_retrieve)
    try:
        return await asyncio.shield(waiter)
    except asyncio.CancelledError:
        if not fut.done():  # our task was cancelled, not the job: stop the job
            await asyncio.to_thread(fut.cancel)
        raise


async def call(remote: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`await remote.aio(*args, **kwargs)`: submit, stream the call's output, wait."""
    from .decorator import LogStreamer

    fut = await _submitted(functools.partial(remote.submit, *args, **kwargs))
    tail = LogStreamer(fut._run)
    try:
        return await wait(fut)
    finally:
        await asyncio.to_thread(tail.stop)  # its last lines, before the value is handed over


async def map_values(remote: Any, calls: list[Any], *, max_parallel: int | None,
                     chunksize: int | None, return_exceptions: bool, progress: bool | None,
                     logs: bool) -> AsyncIterator[Any]:
    """`remote.amap(...)`'s values in input order, each chunk awaited as it arrives. The
    values of an arrived chunk are decoded by JobRun.values, which no longer waits then."""
    from .map_output import MapOutput

    if not calls:  # as `.map([])`: nothing to run, nothing submitted
        return
    run = await _submitted(functools.partial(
        remote._submit, calls, kind="map", max_parallel=max_parallel, chunksize=chunksize,
        stop_on_error=not return_exceptions))
    try:
        output = await asyncio.to_thread(  # rich is imported (in a thread) for a bar
            MapOutput, run, f"{remote.__name__} [{run.job_id}]", progress, logs)
    except BaseException:
        await asyncio.to_thread(run.cancel)
        raise
    values = run.values(return_exceptions, on_chunk=output.advance, release=True,
                          raise_early=True)
    first_failure = None if return_exceptions else asyncio.wrap_future(run.first_failure)
    try:
        for index, chunk in enumerate(run.record.chunks):
            await _arrived(run, index, first_failure)
            for _ in range(chunk.calls):
                yield next(values)
    except BaseException:  # a failure, the consumer leaving early, or our task cancelled
        await asyncio.to_thread(_stop, output, run)
        raise
    await asyncio.to_thread(output.finish)


async def _arrived(run: Any, index: int, first_failure: asyncio.Future | None) -> None:
    """Wait until chunk `index` is done or (unless return_exceptions) a failure is known."""
    chunk = run.chunks[index]
    if chunk.done() or (first_failure is not None and run.first_failure.done()):
        return
    waiter = asyncio.wrap_future(chunk)
    waiter.add_done_callback(_retrieve)
    waiting = {waiter} if first_failure is None else {waiter, first_failure}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)


def _stop(output: Any, run: Any) -> None:
    run.cancel()
    output.close()


async def _submitted(submit: Callable[[], Any]) -> Any:
    """What `submit()` returns (a Future or a JobRun), submitted in a thread. If the awaiting
    task is cancelled meanwhile, the submission still completes: its job is cancelled then."""
    pending = asyncio.get_running_loop().run_in_executor(None, submit)
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        pending.add_done_callback(_cancel_submitted)
        raise


def _cancel_submitted(pending: asyncio.Future) -> None:
    if pending.cancelled() or pending.exception() is not None:
        return
    # Not a daemon: the interpreter waits for the job's cancel before it exits.
    threading.Thread(target=pending.result().cancel, name="aksrun-cancel").start()


def _retrieve(waiter: asyncio.Future) -> None:
    """Mark the exception of a wrapper nobody awaits as seen: it is raised (or returned)
    from the job's own future, and asyncio would otherwise log it as never retrieved."""
    if not waiter.cancelled():
        waiter.exception()
