"""joblib's aksrun backend (local) vs joblib's own default, loky, measured side by side.

Prints medians, the ratio to loky (the baseline) and how many aksrun jobs each case made.
Run: `.venv/bin/python benchmarks/joblib_backend.py [--repeat N]` (needs scikit-learn).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import joblib
from bench_funcs import busy_50ms, trivial
from joblib import Parallel, delayed

import aksrun  # noqa: F401 (registers backend="aksrun")

WORKERS = os.cpu_count() or 1


def parallel(func, n: int) -> None:
    assert len(Parallel(n_jobs=WORKERS)(delayed(func)(i) for i in range(n))) == n


def grid_search() -> None:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    GridSearchCV(SVC(), {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.1]}, cv=3,
                 n_jobs=WORKERS).fit(X, y)


def jobs_made() -> int:
    from aksrun.api.session import default_client

    return len(default_client().list())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AKSRUN_HOME", tempfile.mkdtemp(prefix="aksrun-bench-"))
    os.environ["AKSRUN_BACKEND"] = "local"
    cases = {
        "Parallel: 1,000 trivial calls": lambda: parallel(trivial, 1000),
        "Parallel: 200 x 50 ms CPU calls": lambda: parallel(busy_50ms, 200),
        "GridSearchCV: 18 SVC fits": grid_search,
    }
    rows = []
    for name, case in cases.items():
        loky, ours, jobs = [], [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine state
            start = time.perf_counter()
            with joblib.parallel_config(backend="loky"):
                case()
            loky.append(time.perf_counter() - start)
            before = jobs_made()
            start = time.perf_counter()
            with joblib.parallel_config(backend="aksrun"):
                case()
            ours.append(time.perf_counter() - start)
            jobs.append(jobs_made() - before)
        rows.append((name, statistics.median(loky), statistics.median(ours), max(jobs)))
    print(f"\njoblib backends, n_jobs={WORKERS}, median of {args.repeat} interleaved runs, "
          f"joblib {joblib.__version__}, Python {sys.version.split()[0]}\n")
    print(f"| {'case':<32} | {'loky (baseline)':>15} | {'aksrun local':>12} | {'ratio':>6} "
          "| aksrun jobs |")
    print(f"|{'-' * 34}|{'-' * 17}|{'-' * 14}|{'-' * 8}|-------------|")
    for name, base, mine, jobs in rows:
        print(f"| {name:<32} | {base * 1000:>12.0f} ms | {mine * 1000:>9.0f} ms | "
              f"{mine / base:>5.2f}x | {jobs:>11} |")


if __name__ == "__main__":
    main()
