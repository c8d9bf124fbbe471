"""`aksrun.Executor`: a `concurrent.futures.Executor`, so pool code switches in one line."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..core.options import options_from
from .decorator import RemoteFunction, check_count, collect_calls
from .future import Future, stop_on_interrupt


class Executor(cf.Executor):
    """Each `submit` is one remote call; each `map` is ONE job over all its inputs."""

    def __init__(self, max_parallel: int | None = None, **function_options: Any) -> None:
        check_count("max_parallel", max_parallel)
        self.options = options_from(function_options)
        self.max_parallel = max_parallel
        self._futures: set[Future] = set()
        self._runs: set = set()  # map jobs still being consumed
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        self._check_open()
        fut = self._remote(fn).submit(*args, **kwargs)
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._forget)
        return fut

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
        with self._lock:
            self._runs.add(run)
        return self._results(run, None if end is None else end - time.monotonic())

    def _results(self, run, timeout: float | None) -> Iterator[Any]:
        try:
            yield from run.values(timeout=timeout)
        except KeyboardInterrupt:
            stop_on_interrupt(run)
            raise
        except BaseException:
            run.cancel()
            raise
        finally:
            with self._lock:
                self._runs.discard(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        with self._lock:
            futures = list(self._futures)
            runs = list(self._runs)
        if cancel_futures:
            for fut in futures:
                fut.cancel()
            for run in runs:
                run.cancel()
        if wait:
            cf.wait(futures)
            for run in runs:
                run.done.wait()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        """Ctrl+C inside `with`: stop this executor's jobs instead of waiting for them."""
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            with self._lock:
                runs = [f._run for f in self._futures if not f.done()] + list(self._runs)
            for run in runs:
                stop_on_interrupt(run)
            self.shutdown(wait=False, cancel_futures=True)
            return False
        return super().__exit__(exc_type, exc, tb)

    def _remote(self, fn: Callable[..., Any]) -> RemoteFunction:
        if isinstance(fn, RemoteFunction):
            return fn
        return RemoteFunction(fn, self.options)

    def _forget(self, fut: cf.Future) -> None:
        with self._lock:
            self._futures.discard(fut)  # type: ignore[arg-type]

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new calls after shutdown")
