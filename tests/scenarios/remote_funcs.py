"""Functions the scenarios run remotely. Module-level, as users write them; `tests` is the
project's own code (not an installed package), so they travel by value: a runner image needs
nothing of this repository. They touch no local file, so they run the same in a pod."""

from __future__ import annotations

import os
import socket
import sys
import time


class ScenarioError(Exception):
    """A user-defined exception type: it must come back as itself, not as a generic error."""


def add(a, b=0):
    return a + b


def square(x):
    return x * x


def describe(x):
    """A value computed remotely, plus where it was computed."""
    return {
        "input": x,
        "square": x * x,
        "digits": [int(d) for d in str(x * x)],
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def raise_value_error(message):
    def deeper():
        raise ValueError(message)

    deeper()


def fail_on(x, bad=3):
    if x == bad:
        raise ScenarioError(f"input {x} is bad")
    return x


def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


def announce_then_sleep(seconds):
    """Says it started (the scenario waits for that line in the store), then sleeps."""
    print("started", flush=True)
    time.sleep(seconds)
    return "finished"


def shout(text):
    print(f"stdout: {text}", flush=True)
    print(f"stderr: {text}", file=sys.stderr, flush=True)
    return text.upper()


def print_slowly(n, delay):
    for i in range(n):
        print(f"line {i}", flush=True)
        time.sleep(delay)
    return n


def square_and_log(x):
    print(f"squaring {x}", flush=True)
    return x * x
