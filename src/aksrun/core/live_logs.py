"""Follow the logs of every task of a job at once, line by line: how a map's output reaches
the caller's stderr while it runs, and how `aksrun jobs logs JOB -f` shows every task.

A job may have thousands of tasks, so only tasks that started and whose last bytes haven't
been read are followed, each read again sooner while it prints and more rarely while it is
quiet, and all of them together at most READS_PER_SECOND times a second: a store read is an
HTTP request on Azure. A finished task is read to its end once.

Lines are handed over whole, so the lines of tasks printing at the same time interleave
without cutting into each other. A line a progress bar redrew (`\\r`) is handed over as it
was last drawn: the redraws in between would each take a line of the caller's terminal.
"""

from __future__ import annotations

import codecs
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import UnknownJobError
from ..ports.store import Store
from . import job as jobmod

log = logging.getLogger("aksrun")

READS_PER_SECOND = 20.0  # store reads of running tasks' logs, all tasks together
FIRST_INTERVAL = 0.5  # a task's next read after one that found output (the runner's append rate)
MAX_INTERVAL = 2.0  # ... growing by half while it finds none, up to this
CHECK_INTERVAL = 0.25  # how often tasks that started or finished are looked for
CLOSE_WAIT = 5.0  # seconds a follower's watch may take to leave its request in flight

# (tasks started since the last call, tasks finished since the last call, whether the job
# is over: no task will start or write again)
Changes = tuple[Iterable[int], Iterable[int], bool]


class _Task:
    __slots__ = ("decoder", "due", "final", "interval", "offset", "partial")

    def __init__(self, due: float) -> None:
        self.offset, self.due, self.interval = 0, due, FIRST_INTERVAL
        self.final = False  # finished: its next read is its last
        self.partial = ""  # the start of a line whose end hasn't been written yet
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")


def follow_tasks(store: Store, job_id: str, tasks: int, changes: Callable[[], Changes],
                 stop: threading.Event | None = None, hurry: threading.Event | None = None,
                 reads_per_second: float = READS_PER_SECOND) -> Iterator[tuple[int, str]]:
    """(task index, whole lines) as the tasks' logs grow, until every task is finished and
    read to its end, the job is over, or `stop` is set. `changes()` says which tasks started
    or finished since it was last called. Once `hurry` is set and every task has finished
    (the caller waits for their last lines), what is left is read at once. Whoever sets
    `stop` sets `hurry` too: until it is set, the waits are on `hurry`."""
    stop = stop or threading.Event()
    hurry = hurry or stop  # no one to hurry it: only a stop ends its waits early
    hurried = False
    followed: dict[int, _Task] = {}
    queue: list[tuple[float, int]] = []  # (due, index); entries a task moved on from are skipped
    drained = finished_count = 0
    next_read = next_check = 0.0

    def pause(seconds: float) -> None:
        """Until the next thing to do, or at once when the caller starts waiting for the
        last lines (a finished map must not wait out a check interval)."""
        (stop if hurried else hurry).wait(seconds)

    while not stop.is_set():
        now = time.monotonic()
        if hurry.is_set() and not hurried:
            hurried, next_check = True, now  # the caller waits: look for finished tasks now
        if now >= next_check or not queue:
            started, finished, over = changes()
            next_check = now + CHECK_INTERVAL
            for index in started:
                if index not in followed:
                    followed[index] = _Task(now)
                    heapq.heappush(queue, (now, index))
            for index in finished:
                task = followed.get(index)
                if task is None:
                    task = followed[index] = _Task(now)
                elif task.final:
                    continue
                task.final, task.due = True, now
                finished_count += 1
                heapq.heappush(queue, (now, index))
            if over or (hurry.is_set() and finished_count == tasks):
                yield from _drain(store, job_id, tasks, followed, now)
                return
        if drained == tasks:
            return
        while queue and followed[queue[0][1]].due != queue[0][0]:
            heapq.heappop(queue)  # an entry the task was re-scheduled from
        if not queue:
            pause(CHECK_INTERVAL)
            continue
        due, index = queue[0]
        wake = max(due, next_read)
        if wake > now:
            pause(min(wake - now, max(0.0, next_check - now), CHECK_INTERVAL))
            continue
        heapq.heappop(queue)
        next_read = max(now, next_read) + 1.0 / reads_per_second
        task = followed[index]
        offset = task.offset
        lines = _read(store, job_id, index, task, final=task.final)
        if task.final:
            task.due = DRAINED
            drained += 1
        else:
            grew = task.offset > offset
            task.interval = FIRST_INTERVAL if grew else min(task.interval * 1.5, MAX_INTERVAL)
            task.due = now + task.interval
            heapq.heappush(queue, (task.due, index))
        if lines:
            yield index, lines


DRAINED = float("inf")  # a task's `due` once it is read to its end: never read again


def _drain(store: Store, job_id: str, tasks: int, followed: dict[int, _Task],
           now: float) -> Iterator[tuple[int, str]]:
    """Nothing writes any more: every task not yet read to its end, in order. One listing
    of the job's logs first, so the tasks that printed nothing (often most) cost no read."""
    try:
        present = set(store.list(jobmod.log_key(job_id, 0).rpartition("/")[0] + "/"))
    except Exception as exc:
        log.debug("listing the logs of %s failed: %s", job_id, exc)
        present = None
    for index in range(tasks):
        task = followed.setdefault(index, _Task(now))
        if task.due == DRAINED:
            continue
        if present is not None and task.offset == 0 and (
                jobmod.log_key(job_id, index) not in present):
            continue
        lines = _read(store, job_id, index, task, final=True)
        if lines:
            yield index, lines


def _read(store: Store, job_id: str, index: int, task: _Task, final: bool) -> str:
    """The whole lines the task's log gained; all of it (its unfinished line ended) if final."""
    key = jobmod.log_key(job_id, index)
    text = []
    while True:
        try:
            data = store.read(key, task.offset)
        except KeyError:
            data = b""
        except Exception as exc:  # output is best-effort: the job's outcome doesn't depend on it
            log.debug("reading %s failed: %s", key, exc)
            data = b""
        task.offset += len(data)
        text.append(task.decoder.decode(data, final=final and not data))
        if not (final and data):
            break
    whole, newline, task.partial = (task.partial + "".join(text)).rpartition("\n")
    out = whole + newline
    if final and task.partial:
        out, task.partial = f"{out}{task.partial}\n", ""
    return _as_drawn(out)


def _as_drawn(text: str) -> str:
    """Each line as a terminal shows it once drawn: its text after the last `\\r` that is
    followed by text (a progress bar's last state)."""
    if "\r" not in text:
        return text
    out = []
    for line in text.split("\n")[:-1]:
        shown = [part for part in line.split("\r") if part]
        out.append((shown[-1] if shown else "") + "\n")
    return "".join(out)


class EventChanges:
    """The tasks of a job as its compute's events report them (the job is watched, never
    polled), for a follower that has no JobRun: `aksrun jobs logs JOB -f`."""

    def __init__(self, compute: Any, job_id: str, tasks: int) -> None:
        self._started: list[int] = []
        self._finished: list[int] = []
        self._seen = [0, 0]
        self._over = threading.Event()
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            handle = compute.attach(job_id)
        except UnknownJobError:  # gone from compute: what the store holds is all there is
            self._finished.extend(range(tasks))
            self._over.set()
            return
        self._thread = threading.Thread(target=self._watch, args=(compute, handle),
                                        name=f"aksrun-logs-{job_id}", daemon=True)
        self._thread.start()

    def _watch(self, compute: Any, handle: Any) -> None:
        try:
            for event in compute.events(handle, self.stop):
                if event.index is None:
                    continue  # a job-level event ends the iterator
                if event.kind == "started":
                    self._started.append(event.index)
                elif event.kind in ("succeeded", "failed"):
                    self._finished.append(event.index)
        except Exception as exc:
            log.warning("stopped following the job's tasks: %s", exc)
        finally:
            self._over.set()

    def __call__(self) -> Changes:
        over = self._over.is_set()  # first: what was appended before it is taken below
        started, finished = self._started[self._seen[0]:], self._finished[self._seen[1]:]
        self._seen[0] += len(started)
        self._seen[1] += len(finished)
        return started, finished, over

    def close(self) -> None:
        """Stop watching, and let the watch leave any request in flight: a daemon thread
        inside a socket call while the interpreter finalizes can abort the process."""
        self.stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_WAIT)


def follow_job(store: Store, compute: Any, job_id: str, tasks: int
               ) -> Iterator[tuple[int, str]]:
    """Every task's lines as they come, for a process that only watches the job."""
    changes = EventChanges(compute, job_id, tasks)
    try:
        yield from follow_tasks(store, job_id, tasks, changes)
    finally:
        changes.close()


class RunChanges:
    """The tasks of a job this process submitted or attached to, as its JobRun learns of them
    (its task-started events and its chunks' futures)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self._known: set[int] = set()
        self._finished: list[int] = []
        self._taken = 0
        for index, chunk in enumerate(list(run.chunks)):
            chunk.add_done_callback(lambda _, index=index: self._finished.append(index))

    def __call__(self) -> Changes:
        over = self.run.done.is_set()
        started: list[int] = []
        if len(self.run.started) != len(self._known):  # only grows: a length tells a change
            started = sorted(set(self.run.started) - self._known)
            self._known.update(started)
        finished = self._finished[self._taken:]
        self._taken += len(finished)
        return started, finished, over
