"""Run a task's calls in worker processes, so each call is its own outcome.

The runner forks a worker that runs the calls in order and leaves each outcome, as it
finishes, in memory it shares with the runner (runner/worker.py), which stores them in the
task's output as written. When the worker dies in the middle of a call (segfault,
`os._exit()`, a signal, the OOM killer) or hangs past its timeout, that one call fails as
itself: its index, the signal or exit code, OOMKilled with the limit when the kernel's
counter says so. It is run again only as `retries=` says, and a new worker goes on with the
calls after it. When the job stops at its first error (a map without return_exceptions), the
worker stops after the first call that raised, so the caller hears of it at once instead of
after the rest of the chunk.

Before each call the runner writes which call is running to its termination-message file: if
the whole container is killed (on cgroup v2 the kubelet has the OOM killer take every process
of the container at once), the kubelet still reports that file, so the client can name the
call that was running.

In a map, each line a call prints reaches the task's log prefixed with the call's index
(`[call 17] `), as Ray prefixes worker output: the caller sees many calls' output interleaved
and must know which call said what (see _CallLines).
"""

from __future__ import annotations

import codecs
import gc
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from typing import Any

from ..core.envelope import nested_loads
from ..core.outcome_records import (
    ARTIFACTS,
    HEADER,
    LENGTH,
    OUTCOME,
    RAISED,
    RETRYING,
    outcomes_loads,
)
from ..core.pickling import exception_record
from ..errors import CallCrashedError, CallOutOfMemoryError, CallTimeoutError, JobFailedError
from . import call_marks
from . import worker as workermod
from .artifacts import call_dir, file_away, running_dir
from .call_changes import CallChanges

# Past its timeout, how long a call may take to stop on its own before its worker is killed.
HARD_TIMEOUT_GRACE = 5.0
# After SIGTERM, how long the worker may take to unwind the call (its `finally` blocks):
# inside the runner's own backstop (TERMINATION_BACKSTOP in main).
WORKER_STOP_GRACE = 1.5
# How often the runner checks on a worker whose pipe stays open after it died (a process the
# call forked without exec holds the pipe's write end).
LIVENESS_INTERVAL = 0.5
# Why a worker ends by these signals, in words a user can act on.
_SIGNAL_HINTS = {
    signal.SIGSEGV: "a segmentation fault, usually in native code (a C extension, ctypes, or "
                    "a library bug)",
    signal.SIGBUS: "a bus error in native code (often a memory-mapped file that shrank)",
    signal.SIGABRT: "abort() in native code (a failed assertion or a C++ exception)",
    signal.SIGFPE: "an arithmetic fault in native code",
    signal.SIGILL: "an illegal instruction (a library built for another CPU)",
    signal.SIGKILL: "killed from outside the call (`kill -9`, or the OOM killer of a limit "
                    "other than the call's own)",
}
WORKER_FAILED = 70  # the worker's own code failed (not the call): EX_SOFTWARE
# How long a map call's unfinished line (a print without newline) waits for the rest before it
# is written as a line of its own, so output stays live and every log line keeps its prefix.
PARTIAL_LINE_WAIT = 1.0
READ_BLOCK = 1 << 20  # bytes read from a worker's pipe of records at a time
PIPE_READ = 65536  # ... and from its output pipes
OUTPUT_GATHER_WAIT = 0.002  # after a small read of an output pipe (see _gather)
# Once a worker's pipe has a record, how long the runner lets more gather before reading: a
# task of many short calls then costs the runner a wake-up per few milliseconds, not per call
# (it shares the cores with the workers), while an outcome waits for it no longer than this.
RECORD_BATCH_WAIT = 0.002


class Nested:
    """A call's outcome as the worker pickled it: stored in the task's output as is (the
    runner never unpickles user objects), re-created by the client's single unpickling of
    the output, its large buffers still out of band."""

    __slots__ = ("buffers", "data")

    def __init__(self, data: bytes, buffers: list[bytes]) -> None:
        self.data, self.buffers = data, buffers

    def __reduce__(self):
        if not self.buffers:
            return nested_loads, (self.data,)
        return nested_loads, (self.data, *(pickle.PickleBuffer(b) for b in self.buffers))


class Outcomes:
    """A task's outcomes, as its output document holds them: the block of records its
    workers left in shared memory and their stream of plain values, both stored as written,
    and the outcomes held one by one (the pipe's, as Nested, and the runner's own exception
    records). The client's one verified unpickling of the output turns them into the list
    of outcomes in call order."""

    __slots__ = ("block", "count", "plain", "plain_count", "singles")

    def __init__(self, count: int, block: bytes, singles: dict[int, Any], plain: bytes = b"",
                 plain_count: int = 0) -> None:
        self.count, self.block, self.singles = count, block, singles
        self.plain, self.plain_count = plain, plain_count

    def __len__(self) -> int:
        return self.count

    def __reduce__(self):
        return outcomes_loads, (self.count, self.block, self.singles, self.plain,
                                self.plain_count)


class ChunkRunner:
    def __init__(self, func: Any, calls: list[Any], start: int, options: dict[str, Any],
                 func_name: str, termination: Any, stdout: Any, stderr: Any,
                 artifacts: Any = None) -> None:
        self.func, self.calls, self.start = func, calls, start
        self.artifacts = artifacts  # an ArtifactUploader: a finished call's files go up
        self.options, self.func_name = options, func_name
        self.termination = termination
        self.stdout, self.stderr = stdout, stderr
        self.timeout: float | None = options.get("timeout")
        self.retries = int(options.get("retries") or 0)
        self.stop_on_error = bool(options.get("stop_on_error"))
        self.prefix_calls = bool(options.get("prefix_calls"))  # a map: lines name their call
        self.shared = workermod.shared_records()  # most outcomes: see worker.py
        self.singles: dict[int, Any] = {}  # the other outcomes, by position
        self.piped: dict[int, bool] = {}  # position -> raised, for outcomes from the pipe
        self.own: set[int] = set()  # positions of the runner's own exception records
        self.settled: set[int] = set()
        self.errors = 0  # outcomes that raised, beyond those the shared state counts
        self.attempts = [0] * len(calls)
        self.worker: _Worker | None = None
        self.position = 0  # the first call without an outcome
        from .memory import MemoryWatch

        self.memory = MemoryWatch.from_env()

    def run(self) -> tuple[Outcomes, int]:
        """Every call's outcome (in the shared block, a Nested, or an exception record of the
        runner's), and how many raised."""
        position = 0
        termination_doing = self.termination.doing
        self.termination.doing = _Doing(self)
        try:
            while position < len(self.calls):
                ooms = oom_kills()
                self.position = position
                self.worker = _Worker.spawn(self, position)
                if self.memory is not None:
                    self.memory.watch(self.worker.pid)
                position, hung = self._collect(self.worker, position)
                self.worker.running.ended_at = position
                finished = not hung and (position >= len(self.calls) or (
                    self.stop_on_error and position > 0 and self._raised(position - 1)))
                status = self.worker.reap(wait=not finished)
                pid, self.worker = self.worker.pid, None
                self._settle()
                stopped_for_memory = self.memory.fired if self.memory is not None else None
                if position > 0 and self._raised(position - 1) and self.stop_on_error:
                    self._adopt(pid, position - 1)
                    break
                if position >= len(self.calls):
                    self._adopt(pid, position - 1)
                    break
                self.position = position
                error = self._crash(position, status, hung, ooms, stopped_for_memory)
                self._adopt(pid, position)
                self._collect_artifacts(position)
                if self.attempts[position] < self.retries:
                    self.attempts[position] += 1
                    if self.artifacts is not None:
                        self.artifacts.discard(self.start + position)
                    print(f"[aksrun] {error}; retry {self.attempts[position]} of "
                          f"{self.retries}", file=self.stderr)
                    continue
                self._own(position, exception_record(error))
                position += 1
                if self.stop_on_error:
                    break
        except BaseException:  # SIGTERM (the runner's _Terminated) or a failure of ours
            if self.worker is not None:
                self.worker.stop()
            raise
        finally:
            if self.memory is not None:
                self.memory.close()
            self.termination.doing = termination_doing
        if self.artifacts is not None:  # files that reached a call's directory by other means
            for call in self.artifacts.left():
                self.artifacts.collect(call)
        for i in range(position, len(self.calls)):
            self._own(i, exception_record(self._skipped()))
        end, _, raised, _, plain_end, plain_count = workermod.STATE.unpack_from(self.shared, 0)
        block = bytes(self.shared[workermod.RECORDS_START:end])
        plain = bytes(self.shared[workermod.PLAIN_START:plain_end])
        self.shared.close()
        return (Outcomes(len(self.calls), block, self.singles, plain, plain_count),
                raised + self.errors)

    def _own(self, position: int, record: Any) -> None:
        """An exception record of the runner's for this call (crashed, not run)."""
        self.singles[position] = record
        self.own.add(position)
        self.errors += 1
        workermod.hole(self.shared, position)

    def _state(self) -> tuple[int, int, int, int]:
        """End of the records, the next call's position, how many raised, whether the last
        one did."""
        return workermod.STATE.unpack_from(self.shared, 0)[:4]

    def _reached(self, first: int) -> int:
        """The first call without an outcome, for a worker that started at `first`."""
        _, following, _, _ = self._state()
        return max(first, following, self.position)

    def _raised(self, position: int) -> bool:
        if position in self.own:
            return True
        if position in self.piped:
            return self.piped[position]
        _, following, _, last = self._state()
        return following == position + 1 and bool(last)

    def _settle(self) -> None:
        """After a worker ended: an outcome it piped but died before counting in the shared
        state counts here."""
        _, following, _, _ = self._state()
        if self.piped.get(following) and following not in self.settled:
            self.settled.add(following)
            self.errors += 1

    def _collect(self, worker: _Worker, position: int) -> tuple[int, bool]:
        """Wait for the worker to end (or hang past its call's timeout), handling the records
        of its pipe: the index of the first call without an outcome, and whether the worker
        was killed as hung."""
        started = time.monotonic()
        seen = self._reached(position)
        while True:
            if self._take(worker):
                started = time.monotonic()
            if worker.records.eof:
                return self._reached(position), False
            reached = self._reached(position)
            if reached != seen:  # calls ended since the last look: the timer starts again
                seen, started = reached, time.monotonic()
            limit = None if not self.timeout else started + self.timeout + HARD_TIMEOUT_GRACE
            wait = LIVENESS_INTERVAL
            if limit is not None:
                wait = min(wait, max(0.0, limit - time.monotonic()))
            if worker.records.wait(wait):
                worker.records.fill()
                if not worker.records.eof:  # a record: let the ones behind it gather
                    time.sleep(RECORD_BATCH_WAIT)
                    worker.records.fill()
                continue
            if worker.exited():
                worker.records.fill()  # what it wrote before it ended
                self._take(worker)
                return self._reached(position), False
            if limit is not None and time.monotonic() >= limit and self._reached(position) == seen:
                worker.kill()
                return seen, True

    def _take(self, worker: _Worker) -> bool:
        """Handle the whole records read from the pipe so far; whether there were any."""
        records = worker.records.take()
        for kind, index, flags, outcome in records:
            if kind == RETRYING:
                self.attempts[index] += 1
                continue
            self.singles[index] = outcome
            self.piped[index] = bool(flags & RAISED)
            self.position = max(self.position, index + 1)
            if flags & ARTIFACTS:
                self._collect_artifacts(index)
        return bool(records)

    def _adopt(self, worker: int, position: int) -> None:
        """What is left in an ended worker's artifacts directory belongs to the call it was
        running (it crashed), or to its last call (written after that call returned, by a
        process it left behind): filed under that call, collected with it."""
        root = self.options.get("output_root")
        if root and self.artifacts is not None:
            file_away(running_dir(root, worker), call_dir(root, self.start + position))

    def _collect_artifacts(self, position: int) -> None:
        if self.artifacts is not None:
            self.artifacts.collect(self.start + position)

    def _crash(self, position: int, status: int, hung: bool, ooms: int | None,
               held: int | None) -> BaseException:
        call = f"call {self.start + position} of {self.func_name}()"
        if hung:
            return CallTimeoutError(
                f"{call} exceeded timeout={self.timeout:g}s and did not stop, so the process "
                "running it was killed")
        code = os.waitstatus_to_exitcode(status)
        kernel = ooms is not None and (oom_kills() or 0) > ooms
        if code == -signal.SIGKILL and (held is not None or kernel):
            memory = self.options.get("memory")
            used = f" (the task held {held / 2**20:.0f} MiB)" if held is not None else ""
            return CallOutOfMemoryError(
                f"{call} was OOMKilled: it reached its memory limit (memory={memory!r}){used} "
                "and was killed, as the kernel's OOM killer does on AKS; raise memory= in "
                "@aksrun.function or use less memory per call")
        if code < 0:
            try:
                sig = signal.Signals(-code)
            except ValueError:
                return CallCrashedError(f"{call} crashed: its process was killed by signal "
                                        f"{-code}")
            hint = _SIGNAL_HINTS.get(sig)
            return CallCrashedError(f"{call} crashed: its process was killed by {sig.name}"
                                    + (f": {hint}" if hint else ""))
        if code == WORKER_FAILED:
            return CallCrashedError(f"{call} was not run: the runner's worker failed (see the "
                                    "task's log)")
        return CallCrashedError(
            f"{call} ended its process with exit code {code} before returning (os._exit(), "
            "or a library that exits from native code)")

    def _skipped(self) -> BaseException:
        return JobFailedError(
            "not run: an earlier call of the same task raised, and a map without "
            "return_exceptions=True stops at its first error")


class _Doing:
    """What a SIGTERM interrupts, for its message: the call the worker runs at that moment
    (the worker itself writes it into the termination-message file too)."""

    def __init__(self, chunk: ChunkRunner) -> None:
        self.chunk = chunk

    def __str__(self) -> str:
        chunk = self.chunk
        position = chunk._reached(chunk.position)
        if position < len(chunk.calls):
            return f"running call {chunk.start + position}"
        return "finishing its calls"


class _Running:
    """The call a worker is running, as its output pumps ask (call_marks.owner_of_the_rest):
    from the shared state while it runs; once it ended, the call it ended in."""

    def __init__(self, chunk: ChunkRunner, first: int) -> None:
        self.chunk, self.first = chunk, first
        self.ended_at: int | None = None

    def __call__(self) -> int:
        position = self.ended_at
        if position is None:
            try:
                position = max(self.first, self.chunk._state()[1])
            except ValueError:  # the task is over (its shared memory closed)
                position = self.first
        return self.chunk.start + min(position, len(self.chunk.calls) - 1)


class _Worker:
    def __init__(self, pid: int, records: _Records, pumps: list[threading.Thread],
                 ended: threading.Event, running: _Running) -> None:
        self.pid, self.records, self.pumps, self.ended = pid, records, pumps, ended
        self.running = running
        self.status: int | None = None

    @classmethod
    def spawn(cls, chunk: ChunkRunner, first: int) -> _Worker:
        reader, writer = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for stream in (chunk.stdout, chunk.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        gc.freeze()  # the function and its inputs: never walked (and copied) by the worker's GC
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                # The kernel signals this worker at each write into its output pipes (a
                # map's, whose calls' output is marked: see call_changes.py)
                changes = CallChanges.watch((out_r, err_r) if chunk.prefix_calls else ())
                os.close(reader)
                os.close(out_r)
                os.close(err_r)
                workermod.enter_worker(out_w, err_w)
                channel = workermod.Channel(
                    writer, os.environ.get("AKSRUN_TERMINATION_LOG"), chunk.shared)
                workermod.run_calls(channel, chunk.func, chunk.calls, first, chunk.start,
                                    chunk.attempts[first], chunk.options, chunk.func_name,
                                    changes, chunk.prefix_calls)
            except workermod.Terminated:
                code = 128 + signal.SIGTERM
            except BaseException:
                traceback.print_exc()
                code = WORKER_FAILED
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                for fd in (1, 2, writer):  # the runner reads its end now, not once the
                    try:  # kernel has torn this process down (its memory goes first)
                        os.close(fd)
                    except OSError:
                        pass
                os._exit(code)
        os.close(writer)
        os.close(out_w)
        os.close(err_w)
        running = _Running(chunk, first)
        pump, more = (_pump_calls, (running,)) if chunk.prefix_calls else (_pump, ())
        ended = threading.Event()
        pumps = [threading.Thread(target=pump, args=(fd, stream, ended, *more), daemon=True,
                                  name=f"aksrun-output-{fd}")
                 for fd, stream in ((out_r, chunk.stdout), (err_r, chunk.stderr))]
        for pump in pumps:
            pump.start()
        return cls(pid, _Records(reader), pumps, ended, running)

    def exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """SIGTERM, as the runner got it: the call's clean-up runs; SIGKILL past the grace."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        end = time.monotonic() + WORKER_STOP_GRACE
        while not self.exited() and time.monotonic() < end:
            time.sleep(0.02)
        if not self.exited():
            self.kill()
        self.reap()

    def reap(self, wait: bool = True) -> int | None:
        """The worker's exit status; `wait=False` when every call of it has its outcome:
        its status doesn't matter then, and its teardown needn't hold up the task."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
            if pid:
                self.status = status
        self.ended.set()  # the pumps read what is left at once, without their gathering pause
        self.records.close()
        for pump in self.pumps:
            pump.join(timeout=0.5)  # its last output; a process the call left may hold it open
        return self.status


def _pump(fd: int, stream: Any, ended: threading.Event) -> None:
    """The worker's output, to the runner's stream (the pod's log and the store's)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with open(fd, "rb", buffering=0) as pipe:
        while data := pipe.read(PIPE_READ):
            try:
                stream.write(decoder.decode(data))
                stream.flush()
            except (ValueError, OSError):
                pass
            _gather(data, ended)
        tail = decoder.decode(b"", final=True)
        if tail:
            stream.write(tail)


def _pump_calls(fd: int, stream: Any, ended: threading.Event, running: _Running) -> None:
    """A map worker's output, each line prefixed with the index of the call that printed it."""
    lines = _CallLines(stream, running())
    with open(fd, "rb", buffering=0) as pipe:
        while True:
            wait = PARTIAL_LINE_WAIT if lines.pending else None
            if wait is not None and not select.select([fd], [], [], wait)[0]:
                lines.flush_partial()
                continue
            data = pipe.read(PIPE_READ)
            if not data:
                break
            data, owner, eof = call_marks.owner_of_the_rest(pipe, fd, data, running)
            lines.feed(data, owner)
            if eof:
                break
            _gather(data, ended)
    lines.close()


def _gather(data: bytes, ended: threading.Event) -> None:
    """After a small read, let the pipe fill a moment: a map of many short calls writes a
    mark per call, and a wake-up of the runner per mark would take a core from the workers.
    A full read goes on at once, so a call printing a lot is never slowed, and so does the
    read after the worker ended (nothing more is coming but its last output)."""
    if len(data) < PIPE_READ // 16:
        ended.wait(OUTPUT_GATHER_WAIT)


class _CallLines:
    """Splits one of a worker's streams into lines and writes each with its call's prefix.

    A line ends at `\n`, or at `\r` (a progress bar redrawing its line: each redraw keeps the
    prefix, so a terminal and `jobs logs` show the bar with its call). An unfinished line is
    written once it has waited PARTIAL_LINE_WAIT, when its call ends, or at the end of the
    stream, as a line of its own: every line of the log starts with the prefix of its call."""

    def __init__(self, stream: Any, call: int) -> None:
        self.stream, self.call = stream, call
        self.pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._carry = b""  # the start of a mark cut off at the end of a read
        self._after_cr = False

    def feed(self, data: bytes, owner: int | None = None) -> None:
        """Output as read: each piece ended by a mark is the call it names; the rest (not
        ended yet) is `owner`'s, the call running when it was read."""
        pieces, rest, self._carry = call_marks.split(self._carry + data)
        for piece, call in pieces:
            self.call = call
            if piece:
                self._text(self._decoder.decode(piece))
            self._end_call()
        if rest:
            if owner is not None:
                self.call = owner
            self._text(self._decoder.decode(rest))

    def _text(self, text: str) -> None:
        out = []
        self.pending += text
        while True:
            ends = [i for i in (self.pending.find("\n"), self.pending.find("\r")) if i >= 0]
            if not ends:
                break
            end = min(ends) + 1
            line, self.pending = self.pending[:end], self.pending[end:]
            if line == "\n" and self._after_cr:  # the \n of a \r\n
                out.append(line)
            elif line != "\r":  # a bare \r (a bar's redraw starting) carries no text
                out.append(self._prefix() + line)
            self._after_cr = line.endswith("\r")
        self._write("".join(out))

    def flush_partial(self) -> None:
        """Write the unfinished line, ended as a progress bar's redraw if it is one."""
        if self.pending:
            ending = "\r" if self._after_cr else "\n"
            self._write(self._prefix() + self.pending + ending)
            self.pending = ""
            self._after_cr = ending == "\r"

    def _end_call(self) -> None:
        if not (self.pending or self._after_cr or self._decoder.getstate()[0]):
            self.call += 1  # the call printed nothing (or only whole lines, written already)
            return
        self._text(self._decoder.decode(b"", final=True))
        if self.pending:
            self._write(self._prefix() + self.pending + "\n")
            self.pending = ""
        elif self._after_cr:  # the call's last bar stays on screen, not under the next line
            self._write("\n")
        self._after_cr = False
        self.call += 1

    def close(self) -> None:
        self._text(self._decoder.decode(self._carry, final=True))
        self._carry = b""
        if self.pending:
            self._write(self._prefix() + self.pending + "\n")
            self.pending = ""

    def _prefix(self) -> str:
        return f"[call {self.call}] "

    def _write(self, text: str) -> None:
        if text:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (ValueError, OSError):
                pass


class _Records:
    """The runner's side of a worker's pipe: whole records, read in bulk without blocking (a
    process the call forked may hold the pipe open after the worker died). A record cut short
    by the worker's death is not one: that call counts as crashed."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd, self.eof = fd, False
        self.buffer = bytearray()

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return bool(ready)

    def fill(self) -> None:
        while not self.eof:
            try:
                data = os.read(self.fd, READ_BLOCK)
            except BlockingIOError:
                return
            except OSError:  # closed
                self.eof = True
                return
            if not data:
                self.eof = True
                return
            self.buffer += data

    def take(self) -> list[tuple[bytes, int, int, Any]]:
        """The complete records buffered: (kind, position, flags, Nested or None)."""
        records, view, offset = [], memoryview(self.buffer), 0
        head, length, outcome_kind = HEADER, LENGTH, OUTCOME
        try:
            while len(view) - offset >= head.size:
                kind, index, flags, count, size = head.unpack_from(view, offset)
                start = offset + head.size
                if not count:  # most records: no out-of-band buffers
                    end = start + size
                    if len(view) < end:
                        break
                    outcome = Nested(bytes(view[start:end]), ()) if kind == outcome_kind else None
                    records.append((kind, index, flags, outcome))
                    offset = end
                    continue
                lengths_end = start + count * length.size
                if len(view) < lengths_end:
                    break
                lengths = [length.unpack_from(view, start + i * length.size)[0]
                           for i in range(count)]
                end = lengths_end + size + sum(lengths)
                if len(view) < end:
                    break
                outcome = None
                if kind == outcome_kind:
                    data = bytes(view[lengths_end:lengths_end + size])
                    buffers, position = [], lengths_end + size
                    for n in lengths:
                        buffers.append(bytes(view[position:position + n]))
                        position += n
                    outcome = Nested(data, buffers)
                records.append((kind, index, flags, outcome))
                offset = end
        finally:
            view.release()
        if offset:
            del self.buffer[:offset]
        return records

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def oom_kills() -> int | None:
    """The OOM kills counted for this process's memory cgroup (its `oom_kill` counter: v2
    memory.events, v1 memory.oom_control; hierarchical, so a kill under the container's
    limit counts). None where there is no counter to read."""
    for path in _cgroup_event_files():
        try:
            with open(path) as events:
                for line in events:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _cgroup_event_files() -> list[str]:
    """Where this process's memory cgroup keeps its counters, from /proc/self/cgroup: the
    container's own under a cgroup namespace ("0::/" on AKS), its full path without one."""
    try:
        with open("/proc/self/cgroup") as cgroups:
            lines = cgroups.read().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            files.append(f"/sys/fs/cgroup/memory{path.rstrip('/')}/memory.oom_control")
    for line in lines:
        if line.startswith("0::"):  # v2 (unified)
            files.append(f"/sys/fs/cgroup{line[3:].rstrip('/')}/memory.events")
    return files
