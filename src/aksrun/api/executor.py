"""`aksrun.Executor`: a `concurrent.futures.Executor`, so pool code switches in one line.

A pool's `submit` costs microseconds; a job costs a supervisor (locally) or a Kubernetes Job.
So submits made close together are coalesced: a dispatcher thread gathers what arrives
within COALESCE_WINDOW of the last submit (at most COALESCE_MAX), and sends each function's
calls as ONE job (one task per call, or a few calls per task in a burst of thousands) with
`max_workers` as its parallelism. Every call
keeps its own Future, with the standard states: PENDING until its task starts (cancellable
until then, as in the standard pools; a cancelled call's task may still run, its result is
dropped), RUNNING, then FINISHED as soon as that call's output arrives.

At interpreter exit the calls of an Executor that was not shut down are waited for, as the
standard pools do; `Executor(wait_at_exit=False)` detaches them instead (the jobs run on,
`aksrun.get(job_id)` re-attaches).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..core.options import options_from
from ..errors import ConfigError
from .decorator import RemoteFunction, check_count, collect_calls
from .future import stop_on_interrupt
from .session import default_client

COALESCE_WINDOW = 0.005  # seconds without a new submit that close a batch...
COALESCE_MAX = 0.05  # ...or this long after its first submit
TASKS_PER_WORKER = 4  # tasks per worker in a coalesced job, at most (see _chunksize)


class ExecutorFuture(cf.Future):
    """One call submitted to an Executor. `job_id` names the job it went into (it waits for
    the dispatch, a few milliseconds after submit)."""

    def __init__(self) -> None:
        super().__init__()
        self._dispatched = threading.Event()
        self._job_id: str | None = None
        self._run: Any = None

    @property
    def job_id(self) -> str | None:
        self._dispatched.wait(COALESCE_MAX + 5.0)
        return self._job_id

    def cancel(self) -> bool:
        """As a pool's: True while the call is PENDING. Waiters learn of it at once (a pool
        tells them when a worker reaches the call; here no worker will)."""
        if not super().cancel():
            return False
        with self._condition:
            notify = self._state == "CANCELLED"
        if notify:
            self.set_running_or_notify_cancel()
        return True

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except KeyboardInterrupt:
            if self._run is not None:
                stop_on_interrupt(self._run)
            raise

    def __repr__(self) -> str:
        return f"<aksrun.ExecutorFuture job_id={self._job_id!r} state={self._state.lower()}>"


@dataclass
class _Call:
    remote: RemoteFunction
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: ExecutorFuture


class Executor(cf.Executor):
    """Submits are coalesced into few jobs; each `map` is ONE job over all its inputs.

    `max_workers` (the standard name; `max_parallel` is aksrun's) bounds how many calls of
    one job run at once; function options (cpu, memory, ...) apply to every call.
    """

    def __init__(self, max_workers: int | None = None, *, max_parallel: int | None = None,
                 wait_at_exit: bool = True, **function_options: Any) -> None:
        check_count("max_workers", max_workers)
        check_count("max_parallel", max_parallel)
        if max_workers is not None and max_parallel is not None and max_workers != max_parallel:
            raise ConfigError(f"max_workers={max_workers} and max_parallel={max_parallel} name "
                              "the same thing; give one of them.")
        self.options = options_from(function_options)
        self.max_parallel = max_workers if max_workers is not None else max_parallel
        self.wait_at_exit = wait_at_exit
        self._queue: list[_Call] = []
        self._cond = threading.Condition()
        self._last_submit = 0.0
        self._dispatcher: threading.Thread | None = None
        self._futures: set[ExecutorFuture] = set()
        self._runs: set = set()  # jobs with calls still owed to futures or a map
        self._shutdown = False
        _live.add(self)

    @property
    def max_workers(self) -> int | None:
        return self.max_parallel

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ExecutorFuture:
        remote = self._remote(fn)  # refuses what can never run (a generator) at once
        future = ExecutorFuture()
        with self._cond:
            self._check_open()
            self._queue.append(_Call(remote, args, kwargs, future))
            self._futures.add(future)
            self._last_submit = time.monotonic()
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True,
                                                    name="aksrun-executor")
                self._dispatcher.start()
            self._cond.notify()
        future.add_done_callback(self._forget)
        return future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[Any]:
        """Like `Executor.map`: results in order; `timeout` counts from this call and raises
        TimeoutError when a result isn't ready in time. `chunksize=1` (the stdlib default)
        lets aksrun pick chunks; a larger value is used as given. The inputs are read first:
        at most MAX_MAP_CALLS (1,000,000) calls per map."""
        with self._cond:
            self._check_open()
        check_count("chunksize", chunksize)
        end = None if timeout is None else time.monotonic() + timeout
        remote = self._remote(fn)
        calls = collect_calls(iterables, "Executor.map()")
        if not calls:
            return iter(())
        run = remote._submit(
            calls, kind="map", max_parallel=self.max_parallel,
            chunksize=chunksize if chunksize > 1 else None,
        )
        with self._cond:
            self._runs.add(run)
        return self._results(run, None if end is None else end - time.monotonic())

    def _results(self, run, timeout: float | None) -> Iterator[Any]:
        try:
            yield from run.values(timeout=timeout, release=True)
        except KeyboardInterrupt:
            stop_on_interrupt(run)
            raise
        except BaseException:
            run.cancel()
            raise
        finally:
            with self._cond:
                self._runs.discard(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                queued, self._queue = self._queue, []
            else:
                queued = []
            futures = list(self._futures)
            runs = list(self._runs)
            self._cond.notify_all()
        for call in queued:
            call.future.cancel()
        if cancel_futures:
            for future in futures:
                future.cancel()  # only those not running yet, as in the standard pools
        if wait:
            dispatcher = self._dispatcher
            if dispatcher is not None and dispatcher is not threading.current_thread():
                dispatcher.join()
            cf.wait(futures)
            for run in runs:
                run.done.wait()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        """Ctrl+C inside `with`: stop this executor's jobs instead of waiting for them."""
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.cancel_jobs(interrupted=True)
            return False
        return super().__exit__(exc_type, exc, tb)

    def cancel_jobs(self, *, interrupted: bool = False) -> None:
        """Stop every job this executor still owes calls from, running calls included (a
        pool can only drop what is queued; a job can be stopped), and shut it down. For a
        caller that will use none of the results (joblib aborting a Parallel call on its
        first error). `interrupted`: Ctrl+C, said in one line per job."""
        with self._cond:
            runs = {f._run for f in self._futures if f._run is not None} | self._runs
        for run in runs:
            if interrupted:
                stop_on_interrupt(run)
            else:
                run.cancel()
        # Calls not yet in a job are cancelled here; a job being made from them right now is
        # stopped by _dispatch once it sees all its calls cancelled.
        self.shutdown(wait=False, cancel_futures=True)

    # --- dispatching -------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._shutdown:
                    self._cond.wait()
                if not self._queue:
                    return  # shut down, nothing left
                first = time.monotonic()
                while True:  # let a burst gather
                    now = time.monotonic()
                    quiet = self._last_submit + COALESCE_WINDOW - now
                    left = first + COALESCE_MAX - now
                    if self._shutdown or quiet <= 0 or left <= 0:
                        break
                    self._cond.wait(min(quiet, left))
                batch, self._queue = self._queue, []
            try:
                for group in _by_function(batch):
                    self._dispatch(group)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                for call in batch:
                    call.future._dispatched.set()
                    _settle(call.future, None, exc)

    def _dispatch(self, group: list[_Call]) -> None:
        calls = [c for c in group if not c.future.cancelled()]
        if not calls:
            return
        remote = calls[0].remote
        try:
            run = remote._submit([(c.args, c.kwargs) for c in calls], kind="map",
                                 max_parallel=self.max_parallel,
                                 chunksize=self._chunksize(len(calls)))
        except BaseException as exc:  # e.g. an unpicklable argument: each call says so
            if len(calls) > 1:
                for call in calls:  # find the culprit: the others still run
                    self._dispatch([call])
                return
            calls[0].future._dispatched.set()
            _settle(calls[0].future, None, exc)
            return
        with self._cond:
            self._runs.add(run)
        futures = [c.future for c in calls]
        size = run.record.chunksize
        for number, future in enumerate(futures):
            future._job_id, future._run = run.job_id, run
            future._dispatched.set()
            run.chunks[number // size].add_done_callback(
                lambda chunk, future=future, offset=number % size: _deliver(future, chunk,
                                                                            offset))

        def started(index: int) -> None:
            for future in futures[index * size:(index + 1) * size]:
                _start(future)

        run.on_started = started
        for index in list(run.started):  # started before the hook was in place
            started(index)
        owed = [len(futures)]

        def settled(_: cf.Future) -> None:
            with self._cond:
                owed[0] -= 1
                if owed[0] == 0:
                    self._runs.discard(run)
                    if all(f.cancelled() for f in futures) and not run.done.is_set():
                        cancel_all = True
                    else:
                        cancel_all = False
            if owed[0] == 0 and cancel_all:
                run.cancel()  # nobody wants any of its calls any more

        for future in futures:
            future.add_done_callback(settled)

    def _chunksize(self, calls: int) -> int:
        """One call per task while that makes at most TASKS_PER_WORKER tasks per worker;
        beyond, calls share tasks (each task costs a runner start and two store objects), so
        a burst of thousands costs about what a pool's does, and futures resolve in waves."""
        from ..core.lifecycle import _default_parallelism

        client = default_client()
        parallel = self.max_parallel or client.max_parallel or _default_parallelism(
            client.compute)
        return max(1, math.ceil(calls / (parallel * TASKS_PER_WORKER)))

    def _remote(self, fn: Callable[..., Any]) -> RemoteFunction:
        if isinstance(fn, RemoteFunction):
            return fn
        return RemoteFunction(fn, self.options)

    def _forget(self, fut: cf.Future) -> None:
        with self._cond:
            self._futures.discard(fut)  # type: ignore[arg-type]

    def _check_open(self) -> None:
        if _exiting:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")


def _by_function(batch: list[_Call]) -> list[list[_Call]]:
    """One job per function and options, in submit order."""
    groups: dict[tuple[int, str], list[_Call]] = {}
    for call in batch:
        groups.setdefault((id(call.remote.func), repr(call.remote.options)), []).append(call)
    return list(groups.values())


def _start(future: ExecutorFuture) -> None:
    if future._state == "PENDING":
        future.set_running_or_notify_cancel()


def _deliver(future: ExecutorFuture, chunk: cf.Future, offset: int) -> None:
    """The call's own value or exception, from its task's outcomes."""
    from ..core.lifecycle import _Raised

    try:
        value = chunk.result()[offset]
    except BaseException as exc:
        _settle(future, None, exc)
        return
    if isinstance(value, _Raised):
        _settle(future, None, value.error)
    else:
        _settle(future, value, None)


def _settle(future: ExecutorFuture, value: Any, error: BaseException | None) -> None:
    with future._condition:
        if future._state in ("CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED"):
            return
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except cf.InvalidStateError:
        pass


_live: weakref.WeakSet[Executor] = weakref.WeakSet()
_exiting = False


def _at_exit() -> None:
    """As the standard pools: calls still owed by an Executor nobody shut down are waited
    for, unless it was made with wait_at_exit=False."""
    global _exiting
    _exiting = True
    for executor in list(_live):
        if executor.wait_at_exit:
            executor.shutdown(wait=True)


threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
