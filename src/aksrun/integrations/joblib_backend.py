"""`backend="aksrun"` for joblib: a Parallel call's batches run as aksrun jobs.

    import aksrun, joblib
    with joblib.parallel_config(backend="aksrun", cpu="2", memory="4Gi"):
        GridSearchCV(model, grid, n_jobs=8).fit(X, y)

Built on `aksrun.Executor`, as Dask's and Ray's backends are built on their own executors:
joblib's `submit(batch, callback)` is `Executor.submit` + `add_done_callback`, so each batch
keeps its own future while the Executor coalesces batches submitted together into one job
(one Indexed Job on Kubernetes). What differs from a pool-backed backend:

- A job costs seconds to start, a pool's task microseconds. joblib normally hands a backend
  2 * n_jobs batches, then one more per batch done: that would be a job per batch. This
  backend has joblib dispatch the whole call at once (`pre_dispatch="all"`), so a Parallel
  call is one job with `n_jobs` as its parallelism (the cluster, not the client, queues the
  rest), and the Executor, not joblib's auto-batching, decides how many calls share a task.
- n_jobs=-1 is aksrun's default parallelism (AKSRUN_MAX_PARALLEL, else the compute's); n_jobs
  below -1 counts down from it, as joblib counts down from the CPU count. n_jobs=1 runs in
  this process: joblib never hands a backend a one-worker call.
- A batch travels as its plain (function, args, kwargs) list (see joblib_batch), so the pod
  needs joblib only if the functions themselves use it.
- joblib drops the traceback of the exception it re-raises; the remote traceback is kept as
  the exception's cause, as joblib's own process backends keep theirs.
- joblib aborts a call on its first error, a timeout or Ctrl+C: every job of the call is
  cancelled (Ctrl+C says so in one line per job, as everywhere in aksrun).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

from joblib.parallel import ParallelBackendBase

from ..api.decorator import RemoteFunction
from ..api.executor import Executor, ExecutorFuture
from ..api.session import default_client
from ..core.options import FunctionOptions, options_from
from ..errors import AksrunError, ConfigError, SerializationError
from .joblib_batch import BatchCall, run_batch

# Options that name the parallelism, which joblib's n_jobs already sets.
_PARALLELISM_NAMES = ("max_parallel", "max_workers", "parallelism")


class RemoteTraceback(Exception):
    """Where a batch's call failed in its job: kept as the cause of the exception joblib
    re-raises (joblib clears that exception's own traceback)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class AksrunBackend(ParallelBackendBase):
    """joblib's parallel backend over aksrun jobs. Keyword options are aksrun function
    options (cpu, memory, timeout, retries, env, requirements, node_type, gpu, spot, image,
    name), checked when the backend is made, i.e. at `parallel_config(...)`."""

    default_n_jobs = -1  # Parallel(n_jobs=None), as scikit-learn's default: all it may use
    supports_retrieve_callback = True
    supports_inner_max_num_threads = True  # sets OMP_NUM_THREADS & co. in the job
    uses_threads = False
    supports_sharedmem = False  # require="sharedmem" falls back to joblib's threads, here

    def __init__(self, nesting_level: int | None = None,
                 inner_max_num_threads: int | None = None, **options: Any) -> None:
        for name in _PARALLELISM_NAMES:
            if name in options:
                raise ConfigError(
                    f"{name}={options[name]!r} is not an option of joblib's aksrun backend: "
                    "n_jobs is its parallelism. Use parallel_config(backend=\"aksrun\", "
                    f"n_jobs={options[name]!r}) or Parallel(n_jobs={options[name]!r}).")
        self.options: FunctionOptions = options_from(options)
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads)
        self._lock = threading.Lock()
        self._executor: Executor | None = None
        self._workers = 1
        self._remotes: dict[tuple[str, int | None], RemoteFunction] = {}
        # each batch's calls until its result is read, to name an argument that won't pickle
        self._batches: dict[ExecutorFuture, list[BatchCall]] = {}

    # --- how many ------------------------------------------------------------------------

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs is None:
            n_jobs = self.default_n_jobs
        if n_jobs == 0:
            raise ConfigError("n_jobs=0 is not valid for the aksrun backend: use a number of "
                              "calls to run at once (n_jobs=8), or n_jobs=-1 for aksrun's "
                              "default parallelism.")
        if n_jobs < 0:
            return max(default_parallelism() + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, prefer: Any = None,
                  require: Any = None, **backend_kwargs: Any) -> int:
        """Called by each Parallel call before it dispatches (once for `with Parallel()`)."""
        workers = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        if parallel is not None and workers > 1:
            parallel.pre_dispatch = "all"  # the whole call in one burst: one job, not many
        with self._lock:
            if self._executor is not None and self._workers != workers:
                self._executor.shutdown(wait=False)  # what it owes still arrives
                self._executor = None
            self._workers = workers
        return workers

    # --- running -------------------------------------------------------------------------

    def submit(self, func: Any, callback: Callable[[Any], None] | None = None
               ) -> ExecutorFuture:
        """One batch as one Executor call; `callback(future)` once it is done."""
        items = getattr(func, "items", None)  # joblib's BatchedCalls
        with self._lock:
            if self._executor is None:
                self._executor = Executor(max_workers=self._workers)
            executor = self._executor
        if items is None:
            future = executor.submit(self._remote(func, name_of(func)))
        else:
            calls = list(items)
            future = executor.submit(self._remote(run_batch, name_of(calls[0][0])), calls)
            with self._lock:
                self._batches[future] = calls
        if callback is not None:
            future.add_done_callback(callback)
        return future

    apply_async = submit  # joblib < 1.5 calls it so

    def retrieve_result_callback(self, out: ExecutorFuture) -> Any:
        with self._lock:
            calls = self._batches.pop(out, None)
        try:
            return out.result()
        except SerializationError as exc:
            # The Executor names the batch runner's argument; name the user's instead.
            if calls is not None:
                explain_unpicklable(calls, exc)
            raise
        except BaseException as exc:
            keep_remote_traceback(exc)
            raise

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """joblib gave up on the call (first error, timeout, Ctrl+C, a generator dropped):
        its results will never be read, so its jobs are stopped, running calls included."""
        interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        with self._lock:
            executor, self._executor = self._executor, None
            self._batches.clear()
        if executor is not None:
            executor.cancel_jobs(interrupted=interrupted)

    def terminate(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            self._batches.clear()
        if executor is not None:
            executor.shutdown(wait=False)

    # --- internals -----------------------------------------------------------------------

    def _remote(self, func: Callable[..., Any], name: str) -> RemoteFunction:
        """The function with this backend's options; the job is named for the user's
        function (`aksrun jobs ls` shows `fit-and-score-...`, not the batch runner)."""
        threads = self.inner_max_num_threads
        key = (name, threads)
        remote = self._remotes.get(key)
        if remote is None:
            changes: dict[str, Any] = {"name": self.options.name or name}
            if threads is not None:
                limits = {var: str(threads) for var in self.MAX_NUM_THREADS_VARS}
                changes["env"] = {**limits, **self.options.env}
            remote = RemoteFunction(func, self.options.replace(**changes))
            self._remotes[key] = remote
        return remote


def default_parallelism() -> int:
    """What n_jobs=-1 means: AKSRUN_MAX_PARALLEL, else the compute's own default."""
    from ..core.lifecycle import _default_parallelism

    client = default_client()
    return client.max_parallel or _default_parallelism(client.compute)


def name_of(func: Any) -> str:
    """A readable name for a batch's job: its first function's (scikit-learn's delayed
    wrapper and functools.partial unwrapped)."""
    for _ in range(10):
        inner = getattr(func, "func", None) or getattr(func, "function", None)
        if not callable(inner) or inner is func:
            break
        func = inner
    name = getattr(func, "__name__", None) or type(func).__name__
    return name if name != "<lambda>" else "lambda"


def explain_unpicklable(calls: list[BatchCall], error: SerializationError) -> None:
    """Raise a SerializationError naming the function or argument of the batch that won't
    pickle, as `f.submit(...)` names it; return if each pickles alone."""
    from ..core.envelope import dumps
    from ..core.pickling import dump_calls

    for func, args, kwargs in calls:
        name = name_of(func)
        try:
            dumps(func)
        except SerializationError as inner:
            raise SerializationError(
                f"function {name}() could not be pickled: {str(inner).split(': ', 1)[-1]}. "
                "A function travels with the globals and closure values it uses: create "
                "such objects inside the function, or pass them as arguments that pickle."
            ) from error
        try:
            dump_calls([(tuple(args), dict(kwargs))], 0, name)
        except SerializationError as inner:
            raise inner from error


def keep_remote_traceback(exc: BaseException) -> None:
    """Keep where a remote call failed once joblib sets `exc.__traceback__ = None`. aksrun's
    own errors (a failed job) and a cancelled call have no remote frames to keep."""
    if exc.__traceback__ is None or isinstance(exc, (AksrunError, CancelledError)):
        return
    from ..core.pickling import remote_frames

    text = "".join(traceback.format_exception(type(exc), exc, remote_frames(exc.__traceback__)))
    exc.__cause__ = RemoteTraceback(text)
