"""A map's live output on the local backend: what it costs and how soon a line arrives.

Measured side by side in one run:
- the runner's call prefixes: one call printing many lines, run as a map of one call (its
  lines prefixed) vs as a plain call (unprefixed), both without live output;
- the caller's follower: a print-heavy map with logs=True vs logs=False;
- latency: how long after a call prints a line the caller's stderr shows it;
- the follower's store reads a second while 1,000 tasks run (its bound: READS_PER_SECOND).

Run: `.venv/bin/python benchmarks/live_output.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time

import aksrun
from aksrun.adapters.local_store import LocalStore
from aksrun.core.live_logs import READS_PER_SECOND, follow_tasks

LINES = 20_000


def chatty(x, lines=LINES):
    for i in range(lines):
        print(f"line {i} of call {x}")
    return x


def stamped(x, count=5, gap=1.0):
    for _ in range(count):
        print(f"t={time.time():.6f}", flush=True)
        time.sleep(gap)
    return x


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Arrivals(io.TextIOBase):
    """Stands in for stderr: when each `t=` line printed by a call arrived."""

    def __init__(self) -> None:
        self.latencies: list[float] = []

    def write(self, text: str) -> int:
        now = time.time()
        for line in text.splitlines():
            if "t=" in line:
                self.latencies.append(now - float(line.split("t=")[1]))
        return len(text)


def latency() -> list[float]:
    arrivals, real = Arrivals(), sys.stderr
    sys.stderr = arrivals
    try:
        list(aksrun.function()(stamped).map(range(4), chunksize=1, progress=False))
    finally:
        sys.stderr = real
    return arrivals.latencies


class CountingStore:
    def __init__(self, store: LocalStore) -> None:
        self.store, self.reads = store, 0

    def read(self, key: str, offset: int = 0) -> bytes:
        self.reads += 1
        return self.store.read(key, offset)


def follower_reads(tasks: int = 1000, seconds: float = 3.0) -> float:
    with tempfile.TemporaryDirectory() as root:
        store = CountingStore(LocalStore(root))
        started = [list(range(tasks))]

        def changes():
            new, started[0] = started[0], []
            return new, [], False

        stop = threading.Event()
        threading.Timer(seconds, stop.set).start()
        start = time.monotonic()
        for _ in follow_tasks(store, "f-20261201-000000-bench", tasks, changes, stop):
            pass
        return store.reads / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AKSRUN_BACKEND", "local")
    remote = aksrun.function()(chatty)

    def median(fn) -> float:
        return statistics.median(timed(fn) for _ in range(args.repeat))

    def plain_call() -> None:
        real, sys.stderr = sys.stderr, io.StringIO()  # a call streams its output: off screen
        try:
            remote(0)
        finally:
            sys.stderr = real

    plain_call()  # warm: the standby supervisors, the function's upload

    call = median(plain_call)
    prefixed = median(lambda: list(remote.map([0], logs=False, progress=False)))
    off = median(lambda: list(remote.map(range(8), chunksize=1, logs=False, progress=False)))

    def shown() -> None:
        real, sys.stderr = sys.stderr, io.StringIO()
        try:
            list(remote.map(range(8), chunksize=1, progress=False))
        finally:
            sys.stderr = real

    on = median(shown)
    waits = sorted(latency())
    reads = follower_reads()
    print(f"{'measure':<58} {'value':>10}  baseline")
    print(f"{f'1 call printing {LINES:,} lines, prefixed (map of 1)':<58} "
          f"{prefixed / call:>9.2f}x  the same call unprefixed ({call:.2f} s)")
    print(f"{f'map of 8 calls x {LINES:,} lines, logs=True':<58} "
          f"{on / off:>9.2f}x  logs=False ({off:.2f} s)")
    print(f"{'line latency, print -> caller stderr, median':<58} "
          f"{statistics.median(waits):>9.2f}s  ({len(waits)} lines)")
    print(f"{'line latency, max':<58} {waits[-1]:>9.2f}s")
    print(f"{'follower store reads/s, 1,000 tasks running':<58} {reads:>10.1f}  "
          f"bound {READS_PER_SECOND:g}")


if __name__ == "__main__":
    main()
