"""The follower of many tasks' logs (core/live_logs.py), on a real LocalStore: whole lines,
finished tasks read to their end, store reads bounded however many tasks run."""

from __future__ import annotations

import threading
import time

from aksrun.adapters.local_store import LocalStore
from aksrun.core import job as jobmod
from aksrun.core.live_logs import follow_tasks

JOB = "f-20261201-000000-abcde"


class CountingStore:
    def __init__(self, store: LocalStore) -> None:
        self.store, self.reads = store, 0

    def read(self, key: str, offset: int = 0) -> bytes:
        self.reads += 1
        return self.store.read(key, offset)


class Changes:
    """Tasks that start and finish when the test says so."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []
        self.over = False

    def __call__(self):
        started, finished = self.started, self.finished
        self.started, self.finished = [], []
        return started, finished, self.over


def test_reads_stay_under_the_rate_however_many_tasks_run(tmp_path):
    store = CountingStore(LocalStore(tmp_path))
    changes = Changes()
    changes.started = list(range(2000))
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    start = time.monotonic()
    assert list(follow_tasks(store, JOB, 2000, changes, stop, reads_per_second=20)) == []
    elapsed = time.monotonic() - start
    assert 0 < store.reads <= 20 * elapsed + 1


def test_lines_are_handed_over_whole_and_a_finished_task_to_its_end(tmp_path):
    store = LocalStore(tmp_path)
    changes = Changes()
    changes.started = [0, 1]
    follower = follow_tasks(store, JOB, 2, changes)
    store.append(jobmod.log_key(JOB, 0), b"[call 0] one\n[call 0] unfin")
    store.append(jobmod.log_key(JOB, 1), "[call 1] caf\u00e9 ".encode()[:-2])  # é cut in two
    index, text = next(follower)
    assert (index, text) == (0, "[call 0] one\n")
    store.append(jobmod.log_key(JOB, 0), b"ished\n")
    store.append(jobmod.log_key(JOB, 1), "\u00e9 \n".encode()[1:] + b"[call 1] 0%\r[call 1] 100%")
    changes.finished = [0, 1]
    got = {0: "", 1: ""}
    for index, text in follower:
        assert text.endswith("\n")
        got[index] += text
    assert got == {0: "[call 0] unfinished\n", 1: "[call 1] caf\u00e9 \n[call 1] 100%\n"}


def test_an_ended_job_is_read_to_its_end_task_by_task(tmp_path):
    store = LocalStore(tmp_path)
    for index in range(3):
        store.append(jobmod.log_key(JOB, index), f"[call {index}] done".encode())
    changes = Changes()
    changes.over = True  # e.g. `jobs logs -f` of a job compute no longer has
    assert list(follow_tasks(store, JOB, 3, changes)) == [
        (0, "[call 0] done\n"), (1, "[call 1] done\n"), (2, "[call 2] done\n")]


def test_at_the_end_tasks_that_printed_nothing_cost_no_read(tmp_path):
    store = CountingStore(LocalStore(tmp_path))
    store.list = store.store.list
    for index in (7, 900):
        store.store.append(jobmod.log_key(JOB, index), f"[call {index}] hi\n".encode())
    changes = Changes()
    changes.finished = list(range(1000))
    hurry = threading.Event()
    hurry.set()  # the map is done: its caller waits for the last lines
    assert list(follow_tasks(store, JOB, 1000, changes, hurry=hurry)) == [
        (7, "[call 7] hi\n"), (900, "[call 900] hi\n")]
    assert store.reads <= 4  # each log read to its end (a last read finds nothing more)


def test_a_caller_that_starts_waiting_for_the_last_lines_wakes_the_follower(tmp_path,
                                                                            monkeypatch):
    """A finished map sets `hurry` and waits for its calls' last lines: the follower must
    read them at once, not after the wait it was in (it cost every map a quarter second)."""
    import aksrun.core.live_logs as live_logs

    monkeypatch.setattr(live_logs, "CHECK_INTERVAL", 60.0)
    monkeypatch.setattr(live_logs, "FIRST_INTERVAL", 60.0)
    store = LocalStore(tmp_path)
    changes = Changes()
    changes.started = [0]
    hurry, got = threading.Event(), []
    follower = threading.Thread(target=lambda: got.extend(
        follow_tasks(store, JOB, 1, changes, hurry=hurry)), daemon=True)
    follower.start()
    time.sleep(0.3)  # it has read task 0's (empty) log and waits for its next read
    store.append(jobmod.log_key(JOB, 0), b"[call 0] last words\n")
    changes.finished = [0]
    hurry.set()
    follower.join(10)
    assert not follower.is_alive() and got == [(0, "[call 0] last words\n")]
