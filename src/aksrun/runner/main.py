"""Run one task (chunk) of a job: verify everything, run each call, write the outcomes.

A user exception is an outcome, not a runner failure: the runner exits 0. Non-zero exit
codes are reserved for what retrying can't fix (integrity, version mismatch) or for faults
of the infrastructure (store unreachable), so the compute layer can tell them apart.

In a pod the runner is PID 1 of its container, where a signal without a handler is ignored:
so it handles SIGTERM itself (pod deleted, evicted, preempted, job cancelled), or every stop
would wait out the whole grace period and end in a SIGKILL that loses the last log lines.
"""

from __future__ import annotations

import gc
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
from ..errors import (
    IntegrityError,
    StoreAccessError,
    StoreError,
    VersionMismatchError,
)
from ..ports.compute import (
    EXIT_ACCESS,
    EXIT_INTEGRITY,
    EXIT_STORE,
    EXIT_USAGE,
    EXIT_VERSION,
)

# What to check when the pod's identity is refused (`aksrun doctor` checks each of these).
ACCESS_HINT = ("In the pod: the service account needs the azure.workload.identity/client-id "
               "annotation of an identity federated to it, and that identity Storage Blob Data "
               "Contributor on the container (`aksrun admin add-user` sets both up; `aksrun "
               "doctor` says which is missing).")
# 128 + SIGTERM, what a shell reports for a process ended by SIGTERM. Kept out of the Job's
# podFailurePolicy exit-code rules: a stopped task is retried (an eviction carries the
# DisruptionTarget condition, so that retry isn't even counted).
EXIT_TERMINATED = 128 + signal.SIGTERM
# After SIGTERM, how long the call may take to unwind (its `finally` blocks) before the runner
# ends itself anyway: well inside the kubelet's grace period (30 s by default; aksrun sets none).
TERMINATION_BACKSTOP = 2.0
# The kubelet keeps only the last 4,096 bytes of the termination-message file: a longer
# document loses its head, stops being JSON, and the client loses the reason with it.
TERMINATION_MESSAGE_BYTES = 4096


def main(argv: list[str] | None = None) -> int:
    termination = _Termination(os.environ.get("AKSRUN_TERMINATION_LOG", "/dev/termination-log"))
    termination.install()
    # The runner's own objects (a task's inputs: thousands of tuples) make no cycles worth a
    # collection; the worker, where the calls run, collects as usual (worker.enter_worker).
    collecting = gc.isenabled()
    gc.disable()
    try:
        code = _run_task(termination)
    except _Terminated:
        code = termination.stop()
    finally:
        termination.uninstall()
        if collecting:
            gc.enable()
    return code


def _run_task(termination: _Termination) -> int:
    env = os.environ
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
    except StoreAccessError as exc:
        return _fail(termination, EXIT_ACCESS, "StoreAccessDenied", f"{exc} {ACCESS_HINT}")
    except Exception as exc:
        return _fail(termination, EXIT_STORE, "StoreError", f"{type(exc).__name__}: {exc}")
    try:
        record = jobmod.JobRecord.from_json(raw, digest, job_id=job_id)
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

    from .chunk import ChunkRunner
    from .logtee import LogSink, Tee

    sink = LogSink(store, jobmod.log_key(job_id, index))
    termination.sink = sink
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Tee(stdout, sink), Tee(stderr, sink)
    started = time.time()
    from .artifacts import ArtifactUploader, output_root

    uploads = ArtifactUploader(store, job_id, output_root())
    options = {**record.options, "stop_on_error": record.stop_on_error,
               "output_root": str(uploads.root), "prefix_calls": record.kind == "map"}
    runner = ChunkRunner(func, calls, chunk.start, options, record.function_name,
                         termination, sys.stdout, sys.stderr, uploads)
    try:
        outcomes, errors = runner.run()
    except StoreError as exc:  # an artifact's upload: the task is retried as a store fault
        sys.stdout, sys.stderr = stdout, stderr
        sink.close()
        return _fail(termination, EXIT_STORE, "StoreError", f"uploading artifacts: {exc}")
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        uploads.close()
    termination.interruptible = False  # every call ran: writing their outcomes wins
    sink.close()
    payload = dumps(jobmod.pack_outputs(digest, outcomes, uploads.manifests), what="results",
                    by_reference=True)  # the worker's pickles, nested as they are, and ours
    try:
        store.put(jobmod.output_key(job_id, index), payload.parts)
    except Exception as exc:
        return _fail(termination, EXIT_STORE, "StoreError", f"writing output: {exc}")
    return termination.write(
        {"digest": payload.sha256, "calls": len(outcomes), "errors": errors,
         # calls run again as retries= says: a job's timeline counts them per task
         "retried": sum(runner.attempts), "seconds": round(time.time() - started, 3)}, 0)


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


def _write_termination(path: str, data: dict[str, Any]) -> None:
    try:
        with open(path, "wb") as out:
            out.write(_encode_termination(data))
    except OSError:
        pass


def _encode_termination(data: dict[str, Any], limit: int = TERMINATION_MESSAGE_BYTES) -> bytes:
    """`data` as JSON of at most `limit` bytes, its longest strings shortened as needed.

    Capping characters isn't enough: JSON escapes a control or non-ASCII character as 6 to 12
    bytes, and the kubelet keeps the file's last `limit` bytes, so an over-long document
    reaches the client as broken JSON with the reason lost. ASCII-only (ensure_ascii) so every
    reader decodes it whatever its locale."""
    data = dict(data)
    while True:
        encoded = json.dumps(data).encode("ascii")
        if len(encoded) <= limit:
            return encoded
        strings = [k for k, v in data.items() if isinstance(v, str) and v]
        if not strings:  # nothing left to shorten (not one of the runner's documents)
            return json.dumps({"error": "TerminationMessageTooLong"}).encode("ascii")
        key = max(strings, key=lambda k: len(data[k]))
        text = data[key][:limit]  # every character costs at least one byte
        low, high = 0, len(text)  # the longest prefix that fits, by bisection
        while low < high:
            mid = (low + high + 1) // 2
            data[key] = text[:mid] + " [...]"
            if len(json.dumps(data).encode("ascii")) <= limit:
                low = mid
            else:
                high = mid - 1
        data[key] = text[:low] + " [...]" if low else ""


class _Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler. A BaseException, as KeyboardInterrupt,
    so the user's `except Exception` lets it through while the call's `finally` blocks still
    run, and the runner never mistakes it for the call's outcome."""


class _Termination:
    """The runner's last word: its termination message (written once, first writer wins) and
    SIGTERM, which asks for it early.

    On SIGTERM the runner stops the running call by raising _Terminated in the main thread
    (as SIGALRM does for a call's timeout), flushes the live log, writes why it stopped and
    exits 143. The outputs of calls that already finished are not written: a chunk's output
    object exists only complete (the store's "done" test, a retry's overwrite and the client's
    digest check all rely on that), and a stopped task is run again whole or not at all. Two
    backstops keep the exit prompt whatever the call does: the signal's arrival is also read
    from a wake-up pipe by a thread (the main thread may be stuck in C code, where no Python
    handler runs), and TERMINATION_BACKSTOP after it the runner ends itself (a call that
    swallows _Terminated, a non-daemon thread holding up the interpreter's exit)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sink: Any = None  # the live log, once the tee is in place
        self.doing = "setting up"
        self.interruptible = True  # False once every call ran: writing the outputs wins
        self.requested = False
        self.code: int | None = None  # exit code of the message written
        # Reentrant: the SIGTERM handler runs in the main thread, which may be holding it.
        self._lock = threading.RLock()
        self._armed = False
        self._previous: Any = None
        self._wakeup: tuple[int, int] | None = None
        self._previous_wakeup = -1

    def install(self) -> None:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread (embedded): signals aren't ours to handle
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # set_wakeup_fd's requirement; the reader blocks
        self._previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self._wakeup = (read_fd, write_fd)
        threading.Thread(target=self._watch, args=(read_fd,), name="aksrun-sigterm",
                         daemon=True).start()

    def uninstall(self) -> None:
        """Give back the process's handlers (main() may be called in a process it doesn't own)."""
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(self._previous_wakeup)
        signal.signal(signal.SIGTERM, self._previous)
        os.close(self._wakeup[1])  # the watcher reads EOF, closes its end and ends
        self._wakeup = None

    def _watch(self, read_fd: int) -> None:
        try:
            while data := os.read(read_fd, 64):
                if int(signal.SIGTERM) in data:
                    self._arm()
        except OSError:
            pass
        finally:
            os.close(read_fd)

    def _on_sigterm(self, signum, frame) -> None:
        self.requested = True
        self._arm()
        if self.interruptible:
            self.interruptible = False  # once: the call's own clean-up isn't interrupted
            raise _Terminated

    def _arm(self) -> None:
        with self._lock:
            if self._armed:
                return
            self._armed = True
        threading.Thread(target=self._backstop, name="aksrun-backstop", daemon=True).start()

    def _backstop(self) -> None:
        time.sleep(TERMINATION_BACKSTOP)
        os._exit(self.stop())

    def stop(self) -> int:
        """Flush the live log and say the runner was terminated (unless it already said how
        it ended); the exit code to end with."""
        if self.sink is not None:
            self.sink.flush()
        print(f"aksrun runner: terminated by SIGTERM while {self.doing}", file=sys.__stderr__)
        return self.write({"error": "Terminated", "message": (
            f"the runner was stopped by SIGTERM while {self.doing} (its pod was deleted, "
            "evicted or preempted, or the job cancelled)")}, EXIT_TERMINATED)

    def write(self, data: dict[str, Any], code: int) -> int:
        """Write the termination message unless one was written; the exit code that goes
        with the message on file. The runner's end is decided: SIGTERM no longer interrupts
        it (it would cut the message it is writing)."""
        self.interruptible = False
        with self._lock:
            if self.code is None:
                _write_termination(self.path, data)
                self.code = code
            return self.code


def _fail(termination: _Termination, code: int, reason: str, message: str) -> int:
    print(f"aksrun runner: {reason}: {message}", file=sys.stderr)
    traceback.print_exc()
    return termination.write({"error": reason, "message": message}, code)
