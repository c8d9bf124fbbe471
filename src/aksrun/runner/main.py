"""Run one task (chunk) of a job: verify everything, run each call, write the outcomes.

A user exception is an outcome, not a runner failure: the runner exits 0. Non-zero exit
codes are reserved for what retrying can't fix (integrity, version mismatch) or for faults
of the infrastructure (store unreachable), so the compute layer can tell them apart.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from ..core import job as jobmod
from ..core.envelope import dumps, loads
from ..core.pickling import OK, exception_record
from ..errors import (
    CallTimeoutError,
    IntegrityError,
    JobFailedError,
    SerializationError,
    VersionMismatchError,
)
from ..ports.compute import EXIT_INTEGRITY, EXIT_STORE, EXIT_TIMEOUT, EXIT_USAGE, EXIT_VERSION

HARD_TIMEOUT_GRACE = 5.0


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    termination = env.get("AKSRUN_TERMINATION_LOG", "/dev/termination-log")
    try:
        store_url = env["AKSRUN_STORE"]
        job_id = env["AKSRUN_JOB_ID"]
        digest = env["AKSRUN_JOB_DIGEST"]
        index = int(env.get("JOB_COMPLETION_INDEX", env.get("AKSRUN_TASK_INDEX", "0")))
    except (KeyError, ValueError) as exc:
        return _fail(termination, EXIT_USAGE, "RunnerUsage",
                     f"runner environment incomplete: {exc}")

    try:
        from ..core.backends import open_store

        store = open_store(store_url)
        raw = store.get(jobmod.record_key(job_id))
    except Exception as exc:
        return _fail(termination, EXIT_STORE, "StoreError", f"{type(exc).__name__}: {exc}")
    try:
        record = jobmod.JobRecord.from_json(raw, digest)
        _check_versions(record)
        chunk = record.chunks[index]
        func = loads(
            store.get(jobmod.function_key(record.function_sha256)),
            record.function_sha256,
            f"function {record.function_name}()",
        )
        calls = loads(
            store.get(jobmod.input_key(job_id, index)), chunk.sha256, f"input chunk {index}"
        )
    except IntegrityError as exc:
        return _fail(termination, EXIT_INTEGRITY, "IntegrityError", str(exc))
    except VersionMismatchError as exc:
        return _fail(termination, EXIT_VERSION, "VersionMismatch", str(exc))
    except Exception as exc:
        return _fail(termination, EXIT_STORE, "StoreError", f"{type(exc).__name__}: {exc}")

    timeout = record.options.get("timeout")
    retries = int(record.options.get("retries") or 0)
    from .logtee import LogSink, Tee

    sink = LogSink(store, jobmod.log_key(job_id, index))
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Tee(stdout, sink), Tee(stderr, sink)
    started = time.time()
    outcomes: list[tuple[Any, ...]] = []

    def finish(final: list[tuple[Any, ...]]) -> int:
        sys.stdout, sys.stderr = stdout, stderr
        sink.close()
        payload = _dump_outcomes(final, record.function_name, chunk.start)
        try:
            store.put(jobmod.output_key(job_id, index), payload.parts)
        except Exception as exc:
            return _fail(termination, EXIT_STORE, "StoreError", f"writing output: {exc}")
        errors = sum(1 for o in final if o[0] != OK)
        _write_termination(
            termination,
            {"digest": payload.sha256, "calls": len(final), "errors": errors,
             "seconds": round(time.time() - started, 3)},
        )
        return 0

    def hung(seconds: float) -> None:
        """The watchdog's last resort (the call ignored the timeout): keep what finished, say
        which call hung, and which were never run; then end the process."""
        position = len(outcomes)
        stuck = exception_record(CallTimeoutError(
            f"call exceeded timeout={_fmt(seconds)} and did not stop, so its runner was ended"))
        skipped = exception_record(JobFailedError(
            f"not run: call {chunk.start + position} of the same task hung past its timeout"))
        rest = [skipped] * (len(calls) - position - 1)
        os._exit(finish([*outcomes, stuck, *rest]))

    try:
        for args, kwargs in calls:
            outcomes.append(_run_call(func, args, kwargs, timeout, retries, hung))
    except BaseException:
        sys.stdout, sys.stderr = stdout, stderr
        sink.close()
        raise
    return finish(outcomes)


def _check_versions(record: jobmod.JobRecord) -> None:
    here = jobmod.python_version()
    if record.python != here:
        raise VersionMismatchError(
            f"the job was pickled on Python {record.python} but this runner has Python {here}; "
            f"use a runner image for Python {record.python} (AKSRUN_IMAGE)."
        )
    theirs, ours = record.cloudpickle, jobmod.cloudpickle_version()
    if theirs.split(".")[:2] != ours.split(".")[:2]:
        raise VersionMismatchError(
            f"the job was pickled with cloudpickle {theirs} but this runner has {ours}; "
            f"install cloudpickle=={theirs} locally or in the runner image."
        )


def _run_call(func, args, kwargs, timeout, retries, on_hang) -> tuple[Any, ...]:
    attempt = 0
    while True:
        try:
            with _deadline(timeout, on_hang):
                return (OK, func(*args, **kwargs))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from user code is an outcome too
            if attempt >= retries:
                _strip_runner_frames(exc)
                return exception_record(exc)
            attempt += 1
            print(
                f"[aksrun] call raised {type(exc).__name__}: {exc}; retry {attempt} of {retries}",
                file=sys.stderr,
            )


class _deadline:
    """Per-call timeout: SIGALRM raises CallTimeoutError inside the call; if the call is stuck
    in C code or swallows the exception, a watchdog calls `on_hang` just past the limit
    (which writes what it can and ends the runner)."""

    def __init__(self, seconds: float | None, on_hang) -> None:
        self.seconds, self.on_hang = seconds, on_hang
        self.done = threading.Event()

    def __enter__(self):
        if not self.seconds:
            return self
        seconds = self.seconds

        def on_alarm(signum, frame):
            raise CallTimeoutError(f"call exceeded timeout={_fmt(seconds)}")

        self.previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        threading.Thread(target=self._watchdog, daemon=True).start()
        return self

    def _watchdog(self) -> None:
        if not self.done.wait(self.seconds + HARD_TIMEOUT_GRACE):
            try:
                self.on_hang(self.seconds)
            finally:  # writing the outcomes failed: the exit code says what happened
                os._exit(EXIT_TIMEOUT)

    def __exit__(self, *exc_info):
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
            self.done.set()
        return False


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"


def _strip_runner_frames(exc: BaseException) -> None:
    """Drop the runner's own frames so the remote traceback starts in the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(
        os.path.dirname(__file__)
    ):
        tb = tb.tb_next
    if tb is not None:
        exc.__traceback__ = tb


def _dump_outcomes(outcomes: list[tuple[Any, ...]], func_name: str, start: int):
    try:
        return dumps(outcomes, what="results")
    except SerializationError:
        fixed = []
        for i, outcome in enumerate(outcomes):
            try:
                dumps(outcome)
                fixed.append(outcome)
            except SerializationError as exc:
                reason = str(exc).split(": ", 1)[-1]
                err = SerializationError(
                    f"the return value of {func_name}() for call {start + i} could not be "
                    f"pickled: {reason}. Return plain data (convert the object before returning)."
                )
                fixed.append(exception_record(err))
        return dumps(fixed, what="results")


def _write_termination(path: str, data: dict[str, Any]) -> None:
    try:
        with open(path, "w") as out:
            out.write(json.dumps(data))
    except OSError:
        pass


def _fail(termination: str, code: int, reason: str, message: str) -> int:
    print(f"aksrun runner: {reason}: {message}", file=sys.stderr)
    traceback.print_exc()
    _write_termination(termination, {"error": reason, "message": message[:3000]})
    return code
