"""`@aksrun.function`: a plain function that runs remotely when called."""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, ParamSpec, TypeVar

from ..core.options import FunctionOptions, options_from
from ..errors import AksrunError
from .future import Future
from .session import default_client

P = ParamSpec("P")
R = TypeVar("R")


class RemoteFunction(Generic[P, R]):
    """A function with its remote options. Call it, `.submit()` it, `.map()` it, or `.local()`."""

    def __init__(self, func: Callable[P, R], options: FunctionOptions) -> None:
        if not callable(func):
            raise AksrunError(f"@aksrun.function decorates functions, not {type(func).__name__}.")
        self.func = func
        self.options = options
        functools.update_wrapper(self, func)

    # --- the four ways to run it ------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run remotely and wait; the function's output streams to this stderr as it comes."""
        run = self._submit([(args, kwargs)], kind="call")
        fut = Future(run)
        tail = LogStreamer(run)
        try:
            return fut.result()
        except KeyboardInterrupt:
            run.cancel()
            raise
        finally:
            tail.stop()

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> Future:
        """Start a remote call and return its Future at once (`.job_id` is already set)."""
        return Future(self._submit([(args, kwargs)], kind="call"))

    def map(
        self,
        *iterables: Iterable[Any],
        max_parallel: int | None = None,
        chunksize: int | None = None,
        return_exceptions: bool = False,
        progress: bool | None = None,
    ) -> Iterator[R]:
        """Run one call per zipped input as ONE job; yield results in input order as they
        arrive. The first failure raises (the rest are cancelled) unless `return_exceptions`.
        """
        if not iterables:
            raise AksrunError(f"{self.__name__}.map() needs at least one iterable of inputs.")
        for name, value in (("max_parallel", max_parallel), ("chunksize", chunksize)):
            if value is not None and (not isinstance(value, int) or value < 1):
                from ..errors import ConfigError

                raise ConfigError(f"{name}={value!r} is not valid; use a whole number >= 1.")
        calls = [(args, {}) for args in zip(*iterables, strict=False)]
        if not calls:
            return iter(())
        run = self._submit(calls, kind="map", max_parallel=max_parallel, chunksize=chunksize)
        return _results_in_order(run, self.__name__, return_exceptions, progress)

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The plain function, in this process: no pickling, no job."""
        return self.func(*args, **kwargs)

    def with_options(self, **changes: Any) -> RemoteFunction[P, R]:
        return RemoteFunction(self.func, self.options.replace(**changes))

    # --- internals -------------------------------------------------------------------------

    def _submit(self, calls, kind, max_parallel=None, chunksize=None):
        return default_client().submit(
            self.func, calls, self.options, kind=kind, max_parallel=max_parallel,
            chunksize=chunksize,
        )

    def __repr__(self) -> str:
        return f"<aksrun.function {self.__qualname__} {self.options}>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)


def function(
    func: Callable[P, R] | None = None, /, **options: Any
) -> RemoteFunction[P, R] | Callable[[Callable[P, R]], RemoteFunction[P, R]]:
    """Decorate a function to run remotely. Options (cpu, memory, timeout, retries, env,
    requirements, node_type, gpu, spot, image, name) are validated here, at decoration."""
    opts = options_from(options)
    if func is not None:
        return RemoteFunction(func, opts)
    return lambda f: RemoteFunction(f, opts)


def _results_in_order(run, name: str, return_exceptions: bool, progress: bool | None):
    from .progress import Progress

    bar = Progress(run.record.calls, f"{name} [{run.job_id}]", enabled=progress)
    try:
        yield from run.values(return_exceptions, on_chunk=bar.advance)
    except BaseException:
        run.cancel()
        raise
    finally:
        bar.close()


class LogStreamer:
    """Copies the single call's log from the store to this stderr while the call runs."""

    def __init__(self, run) -> None:
        self.run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="aksrun-logs")
        self._thread.start()

    def _loop(self) -> None:
        from ..core import job as jobmod
        from ..core.lifecycle import follow_object

        key = jobmod.log_key(self.run.job_id, 0)
        try:
            for data in follow_object(self.run.client.store, key,
                                      lambda: not self._stop.is_set(), self._stop.wait):
                sys.stderr.write(data.decode("utf-8", "replace"))
                sys.stderr.flush()
        except Exception as exc:  # the call goes on; only its live output stops
            print(f"aksrun: stopped streaming the output of {self.run.job_id}: {exc} "
                  f"(see `aksrun jobs logs {self.run.job_id}`)", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
