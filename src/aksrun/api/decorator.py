"""`@aksrun.function`: a plain function that runs remotely when called."""

from __future__ import annotations

import functools
import inspect
import itertools
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, ParamSpec, TypeVar

from ..core.options import FunctionOptions, options_from
from ..errors import AksrunError, ConfigError, UnsupportedFunctionError
from .future import Future, stop_on_interrupt
from .session import default_client

P = ParamSpec("P")
R = TypeVar("R")

# A map reads all its inputs before anything is submitted (every call is pickled into the
# job), so it needs an end: past this many calls (or on an endless iterable such as
# itertools.count()) it raises ConfigError instead of reading, and hanging, forever.
MAX_MAP_CALLS = 1_000_000


class RemoteFunction(Generic[P, R]):
    """A function with its remote options. Call it, `.submit()` it, `.map()` it, or `.local()`."""

    def __init__(self, func: Callable[P, R], options: FunctionOptions) -> None:
        if not callable(func):
            raise AksrunError(f"@aksrun.function decorates functions, not {type(func).__name__}.")
        _refuse_generators(func)
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
        logs: bool = True,
    ) -> Iterator[R]:
        """Run one call per zipped input as ONE job; yield results in input order as they
        arrive. The first failure raises (the rest are cancelled) unless `return_exceptions`.

        While it runs, what the calls print reaches this stderr line by line, each line
        prefixed with its call's index (`[call 17] `), unless `logs=False`.

        The inputs are read before anything is submitted: at most MAX_MAP_CALLS (1,000,000)
        calls per map; batch larger (or endless) inputs into several maps.
        """
        calls = self._map_calls(iterables, max_parallel, chunksize, logs, "map")
        if not calls:
            return iter(())
        run = self._submit(calls, kind="map", max_parallel=max_parallel, chunksize=chunksize,
                           stop_on_error=not return_exceptions)
        return _results_in_order(run, self.__name__, return_exceptions, progress, logs)

    # --- the same, awaited (asyncio) ------------------------------------------------------

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """`await f.aio(x)`: the remote call of `f(x)` without blocking the event loop (its
        submission runs in a thread, its wait is the loop's). Its output streams to this
        stderr as it comes. Cancelling the awaiting task cancels the job."""
        from .aio import call

        return await call(self, args, kwargs)

    def amap(
        self,
        *iterables: Iterable[Any],
        max_parallel: int | None = None,
        chunksize: int | None = None,
        return_exceptions: bool = False,
        progress: bool | None = None,
        logs: bool = True,
    ) -> AsyncIterator[R]:
        """`async for value in f.amap(xs)`: `.map()` for asyncio, the same job and options,
        values in input order as they arrive, without blocking the event loop. The job is
        submitted when the iteration starts; leaving it early (or cancelling the task that
        iterates) cancels the job."""
        calls = self._map_calls(iterables, max_parallel, chunksize, logs, "amap")
        from .aio import map_values

        return map_values(self, calls, max_parallel=max_parallel, chunksize=chunksize,
                          return_exceptions=return_exceptions, progress=progress, logs=logs)

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The plain function, in this process: no pickling, no job."""
        return self.func(*args, **kwargs)

    def with_options(self, **changes: Any) -> RemoteFunction[P, R]:
        return RemoteFunction(self.func, self.options.replace(**changes))

    # --- internals -------------------------------------------------------------------------

    def _map_calls(self, iterables: tuple[Iterable[Any], ...], max_parallel: int | None,
                   chunksize: int | None, logs: Any, method: str) -> list[Any]:
        """A map's options checked and its inputs read, before anything is submitted."""
        if not iterables:
            raise AksrunError(f"{self.__name__}.{method}() needs at least one iterable of "
                              "inputs.")
        check_count("max_parallel", max_parallel)
        check_count("chunksize", chunksize)
        if not isinstance(logs, bool):
            raise ConfigError(f"logs={logs!r} is not valid: give logs=True to see what the "
                              "calls print as they run (the default) or logs=False to hide it.")
        return collect_calls(iterables, f"{self.__name__}.{method}()")

    def _submit(self, calls, kind, max_parallel=None, chunksize=None, stop_on_error=False):
        return default_client().submit(
            self.func, calls, self.options, kind=kind, max_parallel=max_parallel,
            chunksize=chunksize, stop_on_error=stop_on_error,
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


def check_count(name: str, value: int | None) -> None:
    """A parallelism or chunk size: a bool, a float or anything under 1 is refused here, not
    turned into an empty job or a Kubernetes validation error later."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ConfigError(f"{name}={value!r} is not valid: {name} must be greater than 0, a "
                          f"whole number of at least 1 (e.g. {name}=10), or leave it out for "
                          "aksrun's default.")


# A map's calls have no keyword arguments: one shared empty dict (never mutated: a call gets
# its own through **), so 10,000 calls don't make, pickle and unpickle 10,000 dicts.
_NO_KWARGS: dict[str, Any] = {}


def collect_calls(iterables: tuple[Iterable[Any], ...], what: str) -> list[Any]:
    """Read a map's inputs, one bound past MAX_MAP_CALLS at most, so an endless iterator is
    detected without hanging (and without holding more than that bound in memory)."""
    limit = MAX_MAP_CALLS
    inputs = list(itertools.islice(zip(*iterables, strict=False), limit + 1))
    if len(inputs) > limit:
        raise ConfigError(
            f"{what} was given more than {limit:,} inputs (or an endless iterable such as "
            f"itertools.count()); one map runs at most {limit:,} calls. Pass a finite "
            f"iterable, or split the inputs into batches of at most {limit:,} and map each "
            "batch (e.g. `f.map(xs[i:i + 100_000])` for i in range(0, len(xs), 100_000)). "
            "Nothing was submitted."
        )
    return [(args, _NO_KWARGS) for args in inputs]


def _refuse_generators(func: Callable[..., Any]) -> None:
    """A generator's values can't stream back from a remote call, and the generator itself
    doesn't pickle: refuse it now, before a job runs it remotely and fails at the end.
    (`async def` functions are fine: the runner awaits them with asyncio.run.)"""
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        name = getattr(func, "__qualname__", repr(func))
        kind = "an async generator" if inspect.isasyncgenfunction(func) else "a generator"
        raise UnsupportedFunctionError(
            f"{name}() is {kind} function (it uses `yield`), which can't run remotely: its "
            "values can't stream back and a generator doesn't pickle. Return a list instead "
            "(`return [...]`, or collect the values with `list(...)` inside the function); "
            "to get values as they finish, .map() the function over its inputs."
        )


def _results_in_order(run, name: str, return_exceptions: bool, progress: bool | None,
                      logs: bool):
    from .map_output import MapOutput

    output = MapOutput(run, f"{name} [{run.job_id}]", progress, logs)
    try:
        yield from run.values(return_exceptions, on_chunk=output.advance, release=True,
                          raise_early=True)
    except KeyboardInterrupt:
        stop_on_interrupt(run)
        raise
    except BaseException:
        run.cancel()
        raise
    else:
        output.finish()  # the calls' last lines, before the map returns
    finally:
        output.close()


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
