"""The client lifecycle, one for every backend: validate and pickle, write the job to the
store, launch it on compute, watch its events, fetch and verify each output, resolve futures.

Nothing here knows which Store or Compute it talks to.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import dataclasses
import logging
import math
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    AksrunError,
    CallOutOfMemoryError,
    CallTimeoutError,
    IntegrityError,
    JobCancelledError,
    JobFailedError,
    ObjectNotFoundError,
    StoreError,
    UnknownJobError,
)
from ..ports.compute import Compute, JobHandle, JobStatus, LaunchRequest, TaskEvent
from ..ports.store import Store
from . import job as jobmod
from .envelope import Payload, loads
from .ids import check_job_id, new_job_id
from .options import FunctionOptions
from .pickling import (
    OK,
    Call,
    dump_calls,
    dump_function,
    outcome_exception,
    restore_filenames,
)

log = logging.getLogger("aksrun")
FETCH_ATTEMPTS = 8  # reads of a verified output: 1+2+4+8+16+30+30 s of back-off, ~1.5 min



class Client:
    """A Store and a Compute, and the one lifecycle that runs jobs over them."""

    def __init__(self, store: Store, compute: Compute, *, user: str = "user",
                 max_parallel: int | None = None, backend: str | None = None) -> None:
        self.store, self.compute, self.user = store, compute, user
        self.max_parallel = max_parallel
        self.backend = backend or compute.name
        self._uploaded: set[str] = set()
        self._lock = threading.Lock()

    # --- submitting ------------------------------------------------------------------------

    def submit(
        self,
        func: Callable[..., Any],
        calls: Sequence[Call],
        options: FunctionOptions,
        *,
        kind: str = "call",
        max_parallel: int | None = None,
        chunksize: int | None = None,
        stop_on_error: bool = False,
    ) -> JobRun:
        """Pickle everything first (nothing is written if any of it fails), then upload the
        objects, the job record last, then launch."""
        plan = plan_job(
            func, calls, options, kind=kind, store_url=self.store.url, user=self.user,
            backend=self.backend,
            parallel=max_parallel or self.max_parallel or _default_parallelism(self.compute),
            chunksize=chunksize, stop_on_error=stop_on_error,
        )
        job_id = plan.request.job_id
        prepare = getattr(self.compute, "prepare", None)
        if prepare is not None:  # e.g. find or build the function's image: before any upload
            prepare(options)
        run = JobRun(self, job_id, plan.record, record_digest=plan.request.job_digest)
        run.source_modules = _source_modules(func)
        try:
            self._upload_function(plan.function)
            for chunk, payload in zip(plan.record.chunks, plan.inputs, strict=True):
                self.store.put(jobmod.input_key(job_id, chunk.index), payload.parts)
            self.store.put(jobmod.record_key(job_id), plan.record_json)
            run.handle = self.compute.launch(plan.request)
        except BaseException:
            self.store.delete(jobmod.job_prefix(job_id))  # nothing half-written stays behind
            raise
        run.start()
        return run

    def _upload_function(self, payload: Any) -> None:
        """Content-addressed: uploaded once. The first use in a process also checks a copy
        already there, so one corrupted object can't break every later call."""
        key = jobmod.function_key(payload.sha256)
        with self._lock:
            if key in self._uploaded:
                return
        try:
            intact = jobmod.digest_of(bytes(self.store.get(key))) == payload.sha256
        except KeyError:
            intact = False
        if not intact:
            self.store.put(key, payload.parts)
        with self._lock:
            self._uploaded.add(key)

    def forget_function(self, sha256: str) -> None:
        """A job failed its integrity check: the next submission of this function checks (and
        if need be re-uploads) the stored copy again, instead of trusting it for the rest of
        the process's life."""
        with self._lock:
            self._uploaded.discard(jobmod.function_key(sha256))

    # --- existing jobs ---------------------------------------------------------------------

    def record(self, job_id: str) -> jobmod.JobRecord:
        """The job's record from the store, strictly checked (IntegrityError naming the job and
        its key if it is corrupted), and, while compute still knows the job, against the
        digest the job was launched with: an edited record that is still valid is not
        presented as the job's."""
        record, digest = self._read_record(job_id)
        try:
            handle = self.compute.attach(job_id)
        except UnknownJobError:
            return record
        _check_launch_digest(job_id, handle, digest)
        return record

    def _read_record(self, job_id: str) -> tuple[jobmod.JobRecord, str]:
        """The record and the digest of the bytes read: each task's output carries the digest
        of the record its runner verified, which is checked against this one."""
        check_job_id(job_id)
        try:
            raw = bytes(self.store.get(jobmod.record_key(job_id)))
        except KeyError:
            raise UnknownJobError(
                f"no job {job_id!r} in store {self.store.url}; see `aksrun jobs ls` for the "
                "jobs you can re-attach to (and check AKSRUN_STORE / AKSRUN_BACKEND)."
            ) from None
        return jobmod.JobRecord.from_json(raw, job_id=job_id), jobmod.digest_of(raw)

    def attach(self, job_id: str) -> JobRun:
        """A JobRun for an existing job. If compute no longer has it (cancelled and deleted,
        or expired), the store's record says how it ended."""
        record, digest = self._read_record(job_id)
        run = JobRun(self, job_id, record, record_digest=digest)
        try:
            run.handle = self.compute.attach(job_id)
        except UnknownJobError:
            run.handle = None
        else:
            _check_launch_digest(job_id, run.handle, digest)
        run.start()
        return run

    def status(self, job_id: str) -> JobStatus:
        check_job_id(job_id)
        try:
            return self.compute.status(self.compute.attach(job_id))
        except UnknownJobError:
            return self._status_from_store(self.record(job_id))

    def _status_from_store(self, record: jobmod.JobRecord) -> JobStatus:
        """A job compute no longer knows (cancelled and deleted, or expired): what the store
        says about it."""
        outputs = jobmod.output_key(record.job_id, 0).rpartition("/")[0] + "/"
        written = set(self.store.list(outputs))  # one listing, not a request per task
        done = frozenset(c.index for c in record.chunks
                         if jobmod.output_key(record.job_id, c.index) in written)
        outcome = _read_outcome(self.store, record.job_id)
        if self.store.exists(jobmod.cancel_key(record.job_id)):
            state, reason, message = "cancelled", "Cancelled", "the job was cancelled"
        elif outcome:
            state, reason, message = "failed", outcome.get("reason"), outcome.get("message")
        elif len(done) == len(record.chunks):
            state, reason, message = "succeeded", None, None
        else:
            state, reason = "failed", "Removed"
            message = (f"the job is no longer on {self.compute.name} compute and did not "
                       "finish all its tasks")
        return JobStatus(
            job_id=record.job_id, function=record.function_name, state=state,  # type: ignore[arg-type]
            tasks=len(record.chunks), calls=record.calls, chunksize=record.chunksize,
            done_indexes=done, started=record.created, reason=reason, message=message,
        )

    def list(self) -> list[JobStatus]:
        """The jobs compute has, newest first, and the cancelled ones it no longer has (on
        Kubernetes a cancelled Job is deleted with its pods), as the store reports them."""
        statuses = self.compute.list()
        listed = {status.job_id for status in statuses}
        try:
            cancelled = [key.removeprefix(jobmod.CANCELLED_PREFIX)
                         for key in self.store.list(jobmod.CANCELLED_PREFIX)]
        except StoreError as exc:  # compute's list still stands
            log.warning("could not list the cancelled jobs in %s: %s", self.store.url, exc)
            cancelled = []
        for job_id in cancelled:
            if job_id in listed:
                continue
            try:
                statuses.append(self._status_from_store(self.record(job_id)))
            except (AksrunError, ValueError):  # removed meanwhile, or not a record of ours
                continue
        return sorted(statuses, key=lambda s: s.started or 0, reverse=True)

    def cancel(self, job_id: str) -> bool:
        """Stop a running job; False (and nothing touched) when it had already ended."""
        check_job_id(job_id)
        if self.status(job_id).state not in ("pending", "running"):
            return False
        handle = self._handle(job_id)
        self.compute.cancel(handle)  # first: stopping the job must not wait for the store
        mark_cancelled(self.store, job_id)
        return True

    def remove(self, job_id: str) -> int:
        """Delete a job from compute and every object it left in the store."""
        check_job_id(job_id)
        try:
            self.compute.delete(self.compute.attach(job_id))
            found = True
        except UnknownJobError:
            found = False
        count = self.store.delete(jobmod.job_prefix(job_id))
        count += self.store.delete(jobmod.cancelled_index_key(job_id))
        if not found and not count:
            raise UnknownJobError(f"no job {job_id!r} on {self.compute.name} or in the store.")
        return count

    def logs(self, job_id: str, index: int = 0, follow: bool = False) -> Iterator[str]:
        """The function's output of one task, from the store (appended while it runs)."""
        record = self.record(job_id)
        if not 0 <= index < len(record.chunks):
            raise AksrunError(
                f"job {job_id} has tasks 0..{len(record.chunks) - 1}; there is no task {index}."
            )
        handle = self._handle(job_id) if follow else None

        def running() -> bool:
            return handle is not None and self.compute.status(handle).state in (
                "pending", "running")

        for data in follow_object(self.store, jobmod.log_key(job_id, index), running):
            yield data.decode("utf-8", "replace")

    def _handle(self, job_id: str) -> JobHandle:
        try:
            return self.compute.attach(job_id)
        except UnknownJobError:
            self.record(job_id)
            raise


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """A job fully pickled and described, before anything is written or launched."""

    function: Payload
    inputs: tuple[Payload, ...]
    record: jobmod.JobRecord
    record_json: bytes
    request: LaunchRequest


def plan_job(
    func: Callable[..., Any],
    calls: Sequence[Call],
    options: FunctionOptions,
    *,
    kind: str,
    store_url: str,
    user: str,
    backend: str,
    parallel: int,
    chunksize: int | None = None,
    stop_on_error: bool = False,
) -> JobPlan:
    """Pickle the function and every chunk of calls and build the record and the launch
    request. Pure (no I/O): `submit` uploads and launches it; `--dry-run` only shows it."""
    name = options.name or getattr(func, "__qualname__", getattr(func, "__name__", "fn"))
    if not calls:
        raise AksrunError(f"{name}() was given no calls to run.")
    job_id = new_job_id(name.rpartition(".")[2])
    chunksize = chunksize or max(1, math.ceil(len(calls) / parallel))
    function = dump_function(func)
    chunks, inputs = [], []
    for index, start in enumerate(range(0, len(calls), chunksize)):
        part = calls[start : start + chunksize]
        payload = dump_calls(part, start, name)
        inputs.append(payload)
        chunks.append(jobmod.Chunk(index, start, len(part), payload.sha256))
    record = jobmod.JobRecord(
        job_id=job_id, function_name=name, function_sha256=function.sha256, kind=kind,
        calls=len(calls), chunksize=chunksize, chunks=tuple(chunks), options=options.to_dict(),
        max_parallel=parallel, user=user, backend=backend, stop_on_error=stop_on_error,
    )
    raw = record.to_json()
    request = LaunchRequest(
        job_id=job_id,
        job_digest=jobmod.digest_of(raw),
        store_url=store_url,
        function_name=name,
        tasks=len(chunks),
        parallelism=min(parallel, len(chunks)),
        calls=len(calls),
        chunksize=chunksize,
        options=options,
        user=user,
        backoff_limit_per_index=INFRA_RETRIES,
        deadline_seconds=_deadline(options, len(chunks), chunksize),
        env=dict(options.env),
    )
    return JobPlan(function, tuple(inputs), record, raw, request)


def mark_cancelled(store: Store, job_id: str) -> None:
    """The job's own marker (its status once compute forgets it), then the index entry
    `jobs ls` finds it by."""
    store.put(jobmod.cancel_key(job_id), b"")
    store.put(jobmod.cancelled_index_key(job_id), b"")


def _check_launch_digest(job_id: str, handle: JobHandle, digest: str) -> None:
    launched = handle.data.get("job_digest")
    if launched and launched != digest:
        key = jobmod.record_key(job_id)
        raise IntegrityError(
            f"job {job_id}: its record {key} was changed in the store after submission (it no "
            "longer matches the digest the job was launched with), so it is neither shown nor "
            f"used. Remove the job (`aksrun jobs rm {job_id}`) and re-submit it.")


def _read_outcome(store: Store, job_id: str) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(bytes(store.get(jobmod.outcome_key(job_id))))
    except (KeyError, ValueError):
        return None


def _source_modules(func: Callable[..., Any]) -> list[str]:
    module = getattr(func, "__module__", None) or "__main__"
    return [module] if module == "__main__" else [module, "__main__"]


def follow_object(store: Store, key: str, running: Callable[[], bool],
                  pause: Callable[[float], Any] = time.sleep) -> Iterator[bytes]:
    """Follow an object that is being appended to (a live log): new bytes as they come,
    reading less often while nothing arrives (0.1 s up to 1 s), until `running()` says the
    writer is done and its last bytes are read."""
    offset, idle = 0, 0.1
    while True:
        data = _read_from(store, key, offset)
        if data:
            offset += len(data)
            idle = 0.1
            yield data
            continue
        if not running():
            last = _read_from(store, key, offset)  # written just before it ended
            if last:
                yield last
            return
        pause(idle)
        idle = min(idle * 1.5, 1.0)


def _read_from(store: Store, key: str, offset: int) -> bytes:
    try:
        return store.read(key, offset)
    except KeyError:
        return b""


def _default_parallelism(compute: Compute) -> int:
    return getattr(compute, "max_parallel", None) or 1


INFRA_RETRIES = 3  # a task's retries after infrastructure faults (backoffLimitPerIndex)
TASK_OVERHEAD = 300.0  # per attempt: an image pull on a new node, start-up, store I/O


def _deadline(options: FunctionOptions, tasks: int, chunksize: int) -> float | None:
    """A backstop for the whole job (Kubernetes activeDeadlineSeconds), counting the worst
    case that can still be healthy: every task one after another (a cluster with room for one
    pod), each through all its retries, with a node start per attempt. The per-call timeout
    stops each call and the client's pending timeout a job that can't start; this only ends a
    job stuck outside any call, and must never end one that is merely queued. The compute adds
    its pending timeout (the time a pod may wait for capacity) on top."""
    if options.timeout is None:
        return None
    attempt = chunksize * options.timeout * (options.retries + 1) + TASK_OVERHEAD
    return tasks * (INFRA_RETRIES + 1) * attempt


class JobRun:
    """One submitted job and the thread that watches it.

    Results resolve per chunk (one internal future per task), not per call: a map of
    10,000 calls costs a handful of futures, and values are decoded as they are consumed.
    """

    def __init__(self, client: Client, job_id: str, record: jobmod.JobRecord, *,
                 record_digest: str | None = None) -> None:
        self.client, self.job_id, self.record = client, job_id, record
        self.record_digest = record_digest  # sha256 of the job.json bytes this run uses
        self.handle: JobHandle | None = None
        self.chunks: list[cf.Future] = [cf.Future() for _ in record.chunks]
        self.source_modules: list[str] = []  # where remote frames' source can be found
        self.on_notice: Callable[[str], None] = _print_notice
        # Told the index of each task as it starts running (the Executor's futures leave
        # PENDING then, as a pool's do when a worker picks them up).
        self.on_started: Callable[[int], None] | None = None
        self.started: set[int] = set()  # tasks seen running (for a hook set after submit)
        # The index of the first chunk known to hold a failure (a call that raised, or the
        # task failed): a caller that wants the first failure hears of it at once, whichever
        # chunk it is in, not after every chunk before it finished.
        self.first_failure: cf.Future = cf.Future()
        self.plain_chunks: set[int] = set()  # chunks whose calls all returned: values as is
        # Each call's files (path, size, sha256), from its task's verified output.
        self.artifact_lists: dict[int, list[dict[str, Any]]] = {}
        self.done = threading.Event()
        self.stopping = threading.Event()  # set when this process exits
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name=f"aksrun-{self.job_id}",
                                        daemon=True)  # never keeps a client alive: jobs run on
        _live_runs.add(self)
        self._thread.start()

    def cancel(self) -> None:
        """Stop the job: the compute first (what costs money and runs user code), then the
        store's cancel marker, best-effort. Called while another exception propagates (Ctrl+C),
        so a failure here is logged, never raised in its place."""
        if self.handle is None or self.done.is_set():
            return
        try:
            self.client.compute.cancel(self.handle)
        except Exception as exc:
            log.warning("could not stop job %s: %s; stop it with `aksrun jobs cancel %s`",
                        self.job_id, exc, self.job_id)
        try:
            mark_cancelled(self.client.store, self.job_id)
        except Exception as exc:
            log.warning("job %s was stopped, but its cancel marker could not be stored (%s): "
                        "`aksrun jobs ls` may show it as failed rather than cancelled",
                        self.job_id, exc)

    # --- consuming results -----------------------------------------------------------------

    def outcomes(self, index: int, timeout: float | None = None) -> list[Any]:
        """The decoded outcomes of one chunk: values, or exception instances for calls that
        raised. Raises the chunk's own error if the task failed as a whole."""
        return self.chunks[index].result(timeout)

    def values(self, return_exceptions: bool = False, timeout: float | None = None,
               on_chunk: Callable[[int], None] | None = None,
               release: bool = False, raise_early: bool = False) -> Iterator[Any]:
        """Every call's value in input order, as chunks arrive; the first failure raises
        unless `return_exceptions` puts exceptions in place. `timeout` is for the whole run.
        `release`: this generator is the run's only consumer (a map's iterator), so a value
        it has yielded is not kept here: once the caller drops it, it is freed (as a pool's
        map does). `raise_early` (aksrun's own map): a failure raises as soon as it is known,
        even while earlier calls still run; without it (`Executor.map`, as the standard
        pools) it raises at its place in the order."""
        end = None if timeout is None else time.monotonic() + timeout
        for index, chunk in enumerate(self.record.chunks):
            left = None if end is None else max(0.0, end - time.monotonic())
            if raise_early and not return_exceptions:
                self._raise_early(index, left)
                left = None if end is None else max(0.0, end - time.monotonic())
            try:
                outcomes = list(self.outcomes(index, left))
            except Exception as exc:
                if not self.chunks[index].done() or not return_exceptions:
                    raise  # our own wait ran out, or the caller wants the first failure
                outcomes = [exc] * chunk.calls
            if release:
                self.chunks[index] = _RELEASED
            if on_chunk is not None:
                on_chunk(chunk.calls)
            outcomes.reverse()
            if index in self.plain_chunks:
                while outcomes:  # popped, never bound to a local across the yield
                    yield outcomes.pop()
            while outcomes:
                yield _value_of(outcomes.pop(), return_exceptions)

    def _raise_early(self, index: int, timeout: float | None) -> None:
        """While chunk `index` is running, raise the failure of any later chunk as soon as it
        is known (its first call that raised, or the task's own error)."""
        if self.chunks[index].done():
            return
        cf.wait([self.chunks[index], self.first_failure], timeout,
                return_when=cf.FIRST_COMPLETED)
        if self.chunks[index].done() or not self.first_failure.done():
            return
        failed = self.chunks[self.first_failure.result()]
        if failed.exception() is not None:
            raise failed.exception()
        for outcome in failed.result():
            if isinstance(outcome, _Raised):
                raise outcome.error

    def artifacts(self, dest: str | Path, call: int | None = None,
                  timeout: float | None = None) -> list[Path]:
        """Download the files the calls wrote under `aksrun.output_dir()` into `dest`, each
        verified against its sha256; the paths written. A single call's files (or those of
        `call`) go straight into `dest`; a map's into `dest/<call index>/`. Waits for the
        tasks concerned; a task that failed as a whole raises its error."""
        from .artifacts import download

        calls = range(self.record.calls) if call is None else [call]
        if call is not None and not 0 <= call < self.record.calls:
            raise AksrunError(f"job {self.job_id} has calls 0..{self.record.calls - 1}; "
                              f"there is no call {call}.")
        for index in sorted({c // self.record.chunksize for c in calls}):
            if self.chunks[index] is not _RELEASED:
                self.chunks[index].exception(timeout)  # wait; values may already be released
            if self.chunks[index].done() and self.chunks[index].exception() is not None:
                raise self.chunks[index].exception()
        root = Path(dest)
        written: list[Path] = []
        for number in calls:
            entries = self.artifact_lists.get(number)
            if not entries:
                continue
            folder = root if (call is not None or self.record.kind == "call") else (
                root / str(number))
            written += download(self.client.store, self.job_id, entries, number, folder)
        return written

    def result(self) -> Any:
        """The job's value once every chunk is done: a call's value (or its exception
        raised), or a map's list of values in input order."""
        values = list(self.values())
        return values[0] if self.record.kind == "call" else values

    # --- watching --------------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            events = (self.client.compute.events(self.handle, self.stopping)
                      if self.handle is not None else self._ended_events())
            for event in events:
                self._on_event(event)
        except BaseException as exc:  # the watch itself broke: every open chunk learns why
            log.debug("watch of %s failed", self.job_id, exc_info=True)
            self._fail_open(JobFailedError(f"lost track of job {self.job_id}: {exc}"))
        finally:
            self._fail_open(JobFailedError(
                f"job {self.job_id} ended without output for some calls."))
            self.done.set()

    def _ended_events(self) -> Iterator[TaskEvent]:
        status = self.client._status_from_store(self.record)
        outcome = _read_outcome(self.client.store, self.job_id)
        if status.state == "cancelled":
            yield TaskEvent("job_cancelled", reason="Cancelled")
        elif outcome:
            yield TaskEvent("job_failed", reason=outcome.get("reason"),
                            message=outcome.get("message"))
        else:
            yield TaskEvent("job_failed", reason="Removed", message=(
                f"it is no longer on {self.client.compute.name} compute (removed, or expired "
                "after its ttlSecondsAfterFinished), so its outputs can't be verified against "
                "the digests compute reported; re-submit it"))

    def _on_event(self, event: TaskEvent) -> None:
        if event.kind == "started" and event.index is not None:
            self.started.add(event.index)
            if self.on_started is not None:
                self.on_started(event.index)
        if event.kind == "succeeded" and not self.chunks[event.index].done():
            self._resolve(event.index, event.digest)
        elif event.kind == "retrying":
            self.on_notice(
                f"aksrun: job {self.job_id} task {event.index}: {event.message or event.reason}; "
                f"retrying (attempt {event.attempt + 2})."
            )
        elif event.kind == "failed" and event.index is not None:
            self._forget_if_corrupt(event)
            settle(self.chunks[event.index], None, _task_error(event, self.record))
            settle(self.first_failure, event.index, None)
        elif event.kind == "job_cancelled":
            self._fail_open(JobCancelledError(f"job {self.job_id} was cancelled."))
        elif event.kind == "job_failed":
            self._forget_if_corrupt(event)
            self._record_outcome(event)
            self._fail_open(_job_error(event, self.job_id))

    def _forget_if_corrupt(self, event: TaskEvent) -> None:
        """Before the caller hears of it (so a retry right away re-uploads): an object of
        this job failed its digest, possibly the shared, cached function."""
        if event.reason == "IntegrityError":
            self.client.forget_function(self.record.function_sha256)

    def _record_outcome(self, event: TaskEvent) -> None:
        """Keep why the job failed: compute may delete a Job that failed fast."""
        import json

        data = {"state": "failed", "reason": event.reason, "message": event.message}
        try:
            self.client.store.put(jobmod.outcome_key(self.job_id), json.dumps(data).encode())
        except Exception:
            log.debug("could not record the outcome of %s", self.job_id, exc_info=True)

    def _resolve(self, index: int, digest: str | None) -> None:
        chunk, future = self.record.chunks[index], self.chunks[index]
        try:
            raw = self._fetch(jobmod.output_key(self.job_id, index))
            document = loads(raw, digest, f"output of task {index} of job {self.job_id}")
            job_digest, outcomes = jobmod.unpack_outputs(document)
            self._check_output(index, job_digest, len(outcomes))
            self.artifact_lists.update(jobmod.output_artifacts(document))
        except IntegrityError as exc:
            settle(future, None, exc)
            return
        except KeyError:
            settle(future, None, JobFailedError(
                f"task {index} of job {self.job_id} reported success but wrote no output."))
            return
        except Exception as exc:  # e.g. a result whose class can't be imported here
            settle(future, None, JobFailedError(
                f"the output of task {index} of job {self.job_id} could not be unpickled "
                f"here: {type(exc).__name__}: {exc}"))
            return
        values = [outcome[1] for outcome in outcomes]
        raised = [offset for offset, outcome in enumerate(outcomes) if outcome[0] != OK]
        for offset in raised:
            values[offset] = _Raised(self, chunk.start + offset, outcomes[offset])
        if not raised:
            self.plain_chunks.add(index)
        settle(future, values, None)
        if raised:
            settle(self.first_failure, index, None)

    def _check_output(self, index: int, job_digest: str | None, count: int) -> None:
        """The output (verified against compute's digest) must come from the record this run
        read: a job.json edited in the store after submission would otherwise shape the
        results (a call's value returned as a list, calls dropped)."""
        key = jobmod.record_key(self.job_id)
        if job_digest is not None and self.record_digest is not None and (
                job_digest != self.record_digest):
            raise IntegrityError(
                f"job {self.job_id}: its record {key} is not the one task {index} ran with "
                "(the runner's verified output names another digest): job.json was changed "
                "in the store after submission, so no result is returned. Remove the job "
                f"(`aksrun jobs rm {self.job_id}`) and re-submit it.")
        expected = self.record.chunks[index].calls
        if count != expected:
            raise IntegrityError(
                f"job {self.job_id}: task {index} wrote {count} results but its record {key} "
                f"says it ran {expected} calls: the record or the output does not belong to "
                f"this job, so no result is returned. Re-submit the job.")

    def _fetch(self, key: str) -> bytes:
        """An output, read again after a transient store error (the object is written and
        verified; a blip must not fail its task): back-off 1, 2, 4... s (FETCH_ATTEMPTS)."""
        for attempt in range(FETCH_ATTEMPTS):
            try:
                return self.client.store.get(key)
            except ObjectNotFoundError:
                raise
            except StoreError as exc:
                if attempt == FETCH_ATTEMPTS - 1 or self.stopping.is_set():
                    raise
                delay = min(30.0, 2.0**attempt)
                log.warning("reading %s failed (%s); trying again in %.0f s", key, exc, delay)
                self.stopping.wait(delay)
        raise AssertionError("unreachable")

    def _fail_open(self, error: BaseException) -> None:
        for future in self.chunks:
            settle(future, None, error)


_live_runs: weakref.WeakSet[JobRun] = weakref.WeakSet()


@atexit.register
def _join_watchers() -> None:
    """Stop watching and let watcher threads leave any request in flight: a daemon thread
    inside a socket call while the interpreter finalizes can abort the process. The jobs
    themselves run on."""
    runs = list(_live_runs)
    for run in runs:
        run.stopping.set()
    deadline = time.monotonic() + 3.0
    for run in runs:
        thread = run._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


class _Raised:
    """A call that raised remotely; the exception is re-created on first use."""

    __slots__ = ("_error", "call", "record", "run")

    def __init__(self, run: JobRun, call: int, record: tuple[Any, ...]) -> None:
        self.run, self.call, self.record = run, call, record
        self._error: BaseException | None = None

    @property
    def error(self) -> BaseException:
        if self._error is None:
            error = restore_filenames(outcome_exception(self.record), self.run.source_modules)
            error.add_note(f"(raised remotely: job {self.run.job_id}, call {self.call})")
            self._error = error
        return self._error


def _value_of(outcome: Any, return_exceptions: bool) -> Any:
    if isinstance(outcome, _Raised):
        if not return_exceptions:
            raise outcome.error
        return outcome.error
    return outcome


_RELEASED: cf.Future = cf.Future()  # a chunk whose values were handed over (values(release))
_RELEASED.set_result([])


def settle(fut: cf.Future, value: Any, error: BaseException | None) -> None:
    """Set a future unless it is already done (a retried task's result arrives once)."""
    if fut.done():
        return
    try:
        if error is None:
            fut.set_result(value)
        else:
            fut.set_exception(error)
    except cf.InvalidStateError:
        pass


def _task_error(event: TaskEvent, record: jobmod.JobRecord) -> BaseException:
    reason, message = event.reason or "Failed", event.message or "the task failed"
    if reason == "DeadlineExceeded":
        return CallTimeoutError(message)
    if reason == "OOMKilled":
        memory = record.options.get("memory")
        running = re.search(r"while running call (\d+)", message)
        during = f" while running call {running[1]}" if running else ""
        return CallOutOfMemoryError(
            f"task {event.index} was OOMKilled{during}: the whole task went over its memory "
            f"limit (memory={memory!r}) faster than the runner could stop that call alone, so "
            "every call of the task is lost; raise memory= in @aksrun.function."
        )
    if reason == "IntegrityError":
        return IntegrityError(message)
    return JobFailedError(f"task {event.index} failed ({reason}): {message}")


def _job_error(event: TaskEvent, job_id: str) -> BaseException:
    reason, message = event.reason or "Failed", event.message or "the job failed"
    if reason == "IntegrityError":
        return IntegrityError(f"job {job_id}: {message}")
    if reason == "DeadlineExceeded":
        return CallTimeoutError(f"job {job_id}: {message}")
    return JobFailedError(f"job {job_id} failed ({reason}): {message}")


def _print_notice(text: str) -> None:
    print(text, file=sys.stderr)
