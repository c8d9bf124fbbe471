"""Drawing a job's timeline as the job grows: seconds to render (PNG and SVG) at the default
size, beside the same figure's bare cost (matplotlib drawing empty axes of that size) as the
baseline, and the file sizes. Synthetic spans (no job is run): every task a wait and a run,
one in seven retried once.

Run: `.venv/bin/python benchmarks/timeline.py [--tasks 100,1000,10000,50000]`.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aksrun.ports.compute import TaskSpan  # noqa: E402
from aksrun.timeline import draw  # noqa: E402
from aksrun.timeline.collect import TaskRow, Timeline  # noqa: E402


def synthetic(tasks: int, parallel: int = 200) -> Timeline:
    rng, zero = random.Random(13), 1_800_000_000.0
    free = [zero] * parallel  # when each slot frees up
    rows = []
    for i in range(tasks):
        slot = min(range(parallel), key=free.__getitem__) if parallel < 5000 else i % parallel
        created, spans = zero + rng.random() * 0.5, []
        start = max(created, free[slot]) + rng.random() * 0.2
        if i % 7 == 3:
            fault = start + rng.random() * 3
            spans.append(TaskSpan(i, 0, created, start, fault, "retried", reason="Evicted"))
            created, start = fault, fault + rng.random() * 0.5
        finish = start + 1 + rng.random() * 4
        spans.append(TaskSpan(i, len(spans), created, start, finish, "succeeded", calls=10,
                              raised=int(i % 50 == 0), retried=0))
        free[slot] = finish
        rows.append(TaskRow(i, 10 * i, 10, tuple(spans)))
    end = max(s.finished for r in rows for s in r.spans)
    return Timeline(f"bench-{tasks}", "bench", "local", zero, "succeeded", None, None, end,
                    end, tuple(rows))


def bare(width: int, height: int, kind: str) -> float:
    from matplotlib.figure import Figure

    started = time.perf_counter()
    figure = Figure(figsize=(width / draw.DPI, height / draw.DPI), dpi=draw.DPI,
                    layout="constrained")
    figure.add_subplot().set_title("empty")
    figure.savefig(io.BytesIO(), format=kind, dpi=draw.DPI)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="100,1000,10000,50000")
    counts = [int(x) for x in parser.parse_args().tasks.split(",")]
    bare(400, 300, "png")  # import and warm matplotlib once, outside the measurements
    print(f"{'tasks':>7} {'format':>6} {'render s':>9} {'bare s':>7} {'ratio':>6} {'file KiB':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for count in counts:
            timeline = synthetic(count)
            width, height = draw.default_size(count)
            for kind in ("png", "svg"):
                path = Path(folder) / f"t.{kind}"
                started = time.perf_counter()
                draw.render(timeline, path)
                took = time.perf_counter() - started
                base = bare(width, height, kind)
                print(f"{count:>7,} {kind:>6} {took:>9.2f} {base:>7.2f} {took / base:>6.1f} "
                      f"{os.path.getsize(path) / 1024:>9,.0f}")


if __name__ == "__main__":
    main()
