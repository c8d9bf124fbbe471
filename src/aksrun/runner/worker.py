"""The worker: a child of the runner that runs a task's calls, one after another, and sends
each call's outcome to the runner as soon as it is known.

A call may end the process running it (a segfault in a C extension, `os._exit()`, the OOM
killer): in a child, that ends only the worker, and the runner, still alive, records that one
call as crashed and starts a new worker for the rest. Forked (not spawned) so the function
and its inputs, already loaded and verified by the runner, cost nothing to hand over.

Each outcome is pickled here, in the worker: a value that won't pickle becomes that call's
own SerializationError, and the runner never unpickles user objects.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import signal
import struct
import sys
from collections.abc import Coroutine
from typing import Any

import cloudpickle

from ..core import artifacts as core_artifacts
from ..core.outcome_records import ARTIFACTS, HEADER, LENGTH, OUTCOME, RAISED, RETRYING
from ..core.pickling import OK, exception_record
from ..errors import CallTimeoutError, SerializationError
from .artifacts import OUTPUT_DIR_ENV, call_dir, file_away, running_dir
from .call_changes import CallChanges
from .call_marks import flush_streams, write_marks

# Outcomes, worker -> runner: most go into memory shared with the runner (mapped before the
# fork, so it outlives the worker: a crash loses no finished call's outcome), with a small
# state the runner reads after the worker ended. The rest go through a pipe, each written
# whole in one system call (core/outcome_records.py has the layout): outcomes with
# out-of-band buffers, outcomes of calls that asked for an artifacts directory (the runner
# uploads their files at once), outcomes that don't fit, and retry notices.
#
# The shared memory holds two streams. Records (a header and a pickle each) from
# RECORDS_START; and from PLAIN_START the values of calls that returned plain data, one
# after another as one pickle stream with a place for every call in order (a hole, `()`,
# where the call's outcome is a record), which the client unpickles whole in one step
# (outcome_records.plain_values) instead of one record at a time.
SHARED_BYTES = 64 << 20  # address space; pages are only taken as records fill them
# end of the records, the next call's position, how many raised, whether the last one did,
# end of the plain values (before the STOP of the last), how many places they fill
STATE = struct.Struct("<QQQQQQ")
RECORDS_START = 64
PLAIN_START = SHARED_BYTES // 2
PLAIN_LONGEST = 1 << 16  # a value whose pickle is longer goes as a record


def shared_records() -> Any:
    """The shared memory of a task's workers, with its state at "nothing yet"."""
    import mmap

    shared = mmap.mmap(-1, SHARED_BYTES)
    STATE.pack_into(shared, 0, RECORDS_START, 0, 0, 0, PLAIN_START, 0)
    return shared


def hole(shared: Any, position: int) -> None:
    """Keep the plain values in step with positions: a call whose outcome is not in them
    (a record, the pipe's, the runner's own) takes its place with a hole, when it is next.
    Otherwise the values stop there; later outcomes all go as records."""
    end, following, raised, last, plain_end, plain_count = STATE.unpack_from(shared, 0)
    if plain_count == position and plain_end + 2 <= SHARED_BYTES:
        shared[plain_end:plain_end + 2] = HOLE
        STATE.pack_into(shared, 0, end, following, raised, last, plain_end + 1, position + 1)


HOLE = b")."  # EMPTY_TUPLE, and the STOP the next value overwrites (a tuple is never plain)


class Channel:
    """The worker's side: outcomes to the runner (shared memory or the pipe), and which call
    runs, in the termination-message file (read by the kubelet even when the whole container
    is killed)."""

    def __init__(self, fd: int, progress_path: str | None, shared: Any = None) -> None:
        self.fd, self.shared = fd, shared
        self.progress = _Progress.open(progress_path) if progress_path else None
        self.end, self.raised = RECORDS_START, 0
        self.plain_end, self.plain_count = PLAIN_START, 0
        if shared is not None:  # a worker after a crash goes on after its predecessor's
            (self.end, _, self.raised, _, self.plain_end,
             self.plain_count) = STATE.unpack_from(shared, 0)

    def running(self, call: int) -> None:
        if self.progress is not None:
            self.progress.write(call)

    def retrying(self, position: int) -> None:
        self._write([HEADER.pack(RETRYING, position, 0, 0, 0)])

    def value(self, position: int, value: Any) -> None:
        """A call that returned plain data (see _PLAIN): its value joins the plain values.
        Protocol 3, whose pickles have no frames, so they run on as one stream: each one's
        STOP is overwritten by the next, and the client ends the whole with its own."""
        shared = self.shared
        if shared is None or position != self.plain_count or (
                type(value) in _SIZED and len(value) > PLAIN_LONGEST):
            self.outcome(position, False, _dumps((OK, value), 5), [])
            return
        data = _dumps(value, 3)
        end = self.plain_end + len(data)
        if len(data) > PLAIN_LONGEST or end > SHARED_BYTES:
            self.outcome(position, False, _dumps((OK, value), 5), [])
            return
        shared[self.plain_end:end] = data
        self.plain_end, self.plain_count = end - 1, position + 1
        STATE.pack_into(shared, 0, self.end, position + 1, self.raised, 0, end - 1, position + 1)

    def outcome(self, position: int, raised: bool, data: bytes,
                buffers: list[memoryview], artifacts: bool = False) -> None:
        flags = (RAISED if raised else 0) | (ARTIFACTS if artifacts else 0)
        head = HEADER.pack(OUTCOME, position, flags, len(buffers), len(data))
        shared = self.shared
        if shared is not None and not buffers and not artifacts:
            end = self.end + HEADER.size + len(data)
            if end <= PLAIN_START:
                shared[self.end:end] = head + data
                self.end = end
                self._commit(position, raised)
                return
        if not buffers:  # one small write, no list of views to build
            record = head + data
            written = os.write(self.fd, record)
            if written < len(record):
                self._write([memoryview(record)[written:]])
        else:
            self._write([head + b"".join(LENGTH.pack(b.nbytes) for b in buffers), data,
                         *buffers])
        self._commit(position, raised)

    def _commit(self, position: int, raised: bool) -> None:
        """After the record is whole (in memory or in the pipe): the runner trusts the state,
        the call's hole in the plain values with it."""
        self.raised += raised
        shared = self.shared
        if shared is not None:
            if position == self.plain_count and self.plain_end + 2 <= SHARED_BYTES:
                shared[self.plain_end:self.plain_end + 2] = HOLE
                self.plain_end, self.plain_count = self.plain_end + 1, position + 1
            STATE.pack_into(shared, 0, self.end, position + 1, self.raised, raised,
                            self.plain_end, self.plain_count)

    def _write(self, parts: list[Any]) -> None:
        views = [memoryview(p).cast("B") for p in parts]
        while views:
            written = os.writev(self.fd, views)
            while views and written >= views[0].nbytes:
                written -= views[0].nbytes
                views.pop(0)
            if written:
                views[0] = views[0][written:]


class _Progress:
    """Which call runs, kept in the termination-message file through a shared mapping of it:
    a store to memory per call, where a write(2) per call cost a task of 5,000 short calls
    about 30 ms (each updates the file's times). The page cache holds it, so the kubelet (or
    the local supervisor) reads it after any kill of the process. The document is padded
    with spaces to a fixed width (JSON allows them), so a shorter one never leaves a longer
    one's tail behind."""

    WIDTH = 40

    def __init__(self, fd: int, mapping: Any) -> None:
        self.fd, self.mapping = fd, mapping

    @classmethod
    def open(cls, path: str) -> _Progress | None:
        import mmap

        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            os.ftruncate(fd, cls.WIDTH)
            mapping = mmap.mmap(fd, cls.WIDTH)
        except (OSError, ValueError):  # a file that can't be mapped: written call by call
            mapping = None
        return cls(fd, mapping)

    def write(self, call: int) -> None:
        document = (b'{"running_call": %d}' % call).ljust(self.WIDTH)
        if self.mapping is not None:
            self.mapping[:] = document
        else:
            os.pwrite(self.fd, document, 0)


# Values pickled by the standard pickler: no class or function in them to name, so exactly
# what cloudpickle writes, at a fraction of its cost (it builds a Pickler in Python per call).
# An exception record (the other kind of outcome) is strings and bytes only.
_PLAIN = frozenset({int, float, complex, bool, str, bytes, type(None)})
_SIZED = frozenset({str, bytes})  # plain values that can be too long for the plain stream
_dumps = pickle.dumps


class Terminated(BaseException):
    """Raised in the worker's call by SIGTERM (the runner passes its own on). A BaseException,
    as KeyboardInterrupt, so `except Exception` lets it through while `finally` blocks run."""


def run_calls(channel: Channel, func: Any, calls: list[Any], first: int, start: int,
              used_attempts: int, options: dict[str, Any], func_name: str,
              changes: CallChanges | None = None, marks: bool = False) -> None:
    """Run calls[first:] and send each outcome; stop after the first call that raised when
    the job stops at its first error. `start` is the chunk's first call index (for messages);
    `used_attempts` the attempts calls[first] already had in earlier workers. `marks`: mark
    the end of each call's output (a map's, runner/call_marks.py); `changes` says which
    calls wrote or made their artifacts directory (without it, every call is looked at)."""
    changes = changes or CallChanges()
    timeout = options.get("timeout")
    retries = int(options.get("retries") or 0)
    stop_on_error = bool(options.get("stop_on_error"))
    root = options.get("output_root")
    # The artifacts directory: one per worker, set in the environment once (setenv costs
    # microseconds, more with each distinct value), filed under the call's index after each
    # call that left it there (aksrun.output_dir(), or a tool given $AKSRUN_OUTPUT_DIR).
    directory = running_dir(root, os.getpid()) if root else None
    if directory is not None:
        os.environ[OUTPUT_DIR_ENV] = directory
        name, root_fd = _watch_root(root, directory)
        changes.watch_directory(root_fd)
    for position in range(first, len(calls)):
        args, kwargs = calls[position]
        attempts = used_attempts if position == first else 0
        channel.running(start + position)
        handed_out = core_artifacts.handed_out
        while True:
            outcome = _attempt(func, args, kwargs, timeout)
            if outcome[0] == OK or attempts >= retries:
                break
            attempts += 1
            print(f"[aksrun] call {start + position} raised {outcome[2]}: {outcome[3]}; "
                  f"retry {attempts} of {retries}", file=sys.stderr)
            if directory is not None:  # what a failed attempt wrote goes
                shutil.rmtree(directory, ignore_errors=True)
            channel.retrying(position)
        if marks:
            flush_streams()
        changed = changes.seen()
        filed = directory is not None and (
            core_artifacts.handed_out != handed_out
            or (changed and os.access(name, os.F_OK, dir_fd=root_fd))
        ) and file_away(directory, call_dir(root, start + position))
        if marks and changed:  # before the outcome: the next call starts after its mark
            write_marks(start + position)
            changes.seen()  # the marks' own signal
        if outcome[0] == OK and type(outcome[1]) in _PLAIN and not filed:  # most outcomes
            channel.value(position, outcome[1])
            del outcome
            continue
        data, buffers, raised = _pickle_outcome(outcome, func_name, start + position)
        channel.outcome(position, raised, data, buffers, filed)
        del outcome, data, buffers
        if raised and stop_on_error:
            return


def _watch_root(root: str, directory: str) -> tuple[str, int | None]:
    """How to ask cheaply whether the artifacts directory exists: by its name relative to
    its (open) parent, one path component for the kernel to resolve instead of them all."""
    try:
        os.makedirs(root, exist_ok=True)
        return os.path.basename(directory), os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return directory, None


def _attempt(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
             timeout: float | None) -> tuple[Any, ...]:
    try:
        if not timeout:
            value = func(*args, **kwargs)
            if type(value) not in _PLAIN and isinstance(value, Coroutine):  # `async def`
                value = _await(value)  # its coroutine, awaited here
            return (OK, value)
        with _deadline(timeout):
            value = func(*args, **kwargs)
            if isinstance(value, Coroutine):
                value = _await(value)
            return (OK, value)
    except Terminated:
        raise
    except BaseException as exc:  # SystemExit from user code is an outcome too
        _strip_runner_frames(exc)
        return exception_record(exc)


def _pickle_outcome(outcome: tuple[Any, ...], func_name: str,
                    call: int) -> tuple[bytes, list[memoryview], bool]:
    buffers: list[pickle.PickleBuffer] = []
    try:
        if outcome[0] != OK or type(outcome[1]) in _PLAIN:
            return pickle.dumps(outcome, protocol=5), [], outcome[0] != OK  # as cloudpickle would
        data = cloudpickle.dumps(outcome, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        outcome = exception_record(_unpicklable(exc, outcome, func_name, call))
        buffers = []
        data = cloudpickle.dumps(outcome, protocol=5)
    return data, [b.raw() for b in buffers], outcome[0] != OK


def _unpicklable(exc: BaseException, outcome: tuple[Any, ...], func_name: str,
                 call: int) -> SerializationError:
    reason = f"{type(exc).__name__}: {exc}" if type(exc).__name__ not in str(exc) else str(exc)
    kind = type(outcome[1])
    what = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")
    hint = "Return plain data (convert the object before returning)."
    if what in ("generator", "async_generator"):
        hint = "Return a list instead of yielding values."
    return SerializationError(
        f"the return value of {func_name}() for call {call} (a {what}) could not be "
        f"pickled: {reason}. {hint}"
    )


def _await(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run an `async def` function's coroutine to its value, in a fresh event loop per call
    (as a script's `asyncio.run(main())` would); asyncio is imported only when needed."""
    import asyncio

    return asyncio.run(coroutine)


class _deadline:
    """Per-call timeout: SIGALRM raises CallTimeoutError inside the call. A call stuck in C
    code or swallowing the exception is the runner's to end (it kills the worker just past
    the limit)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def __enter__(self) -> _deadline:
        if self.seconds:
            seconds = self.seconds

            def on_alarm(signum, frame):
                raise CallTimeoutError(f"call exceeded timeout={seconds:g}s")

            self.previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, seconds)
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def _strip_runner_frames(exc: BaseException) -> None:
    """Drop the runner's own frames (and asyncio's, for an `async def` function) so the
    remote traceback starts in the user's code."""
    skip = [os.path.dirname(__file__)]
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and getattr(asyncio, "__file__", None):
        skip.append(os.path.dirname(asyncio.__file__))
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(tuple(skip)):
        tb = tb.tb_next
    if tb is not None:
        exc.__traceback__ = tb


def enter_worker(out_fd: int, err_fd: int) -> None:
    """In the forked child, before any call: output to the runner's pipes (at the descriptor
    level, so C extensions and subprocesses are captured too), SIGTERM raising Terminated in
    the call (once: its clean-up isn't interrupted), and none of the runner's signal plumbing."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    gc.enable()  # the runner collects nothing (runner/main.py); the calls' code does
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    state = {"raised": False}

    def on_sigterm(signum, frame):
        if not state["raised"]:
            state["raised"] = True
            raise Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
