"""Workloads shared by the benchmarks (a module, so the process pool can import them)."""

import time


def trivial(x):
    return x


def busy_50ms(x):
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass
    return x
