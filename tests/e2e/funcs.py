"""Functions the end-to-end tests run remotely (module-level, as users write them; they travel
by value because `tests` is the project's own code, not an installed package)."""

from __future__ import annotations

import os
import sys
import threading
import time


class CustomError(Exception):
    pass


class Box:
    """A value that can be weakly referenced (to see when the caller's side frees it)."""

    def __init__(self, value):
        self.value = value


def boxed(x):
    return Box(x)


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def shout(text):
    print(f"stdout: {text}")
    print(f"stderr: {text}", file=sys.stderr)
    return text.upper()


def fail_on(x, bad=3):
    if x == bad:
        raise CustomError(f"input {x} is bad")
    return x


def raise_value_error(message):
    def deeper():
        raise ValueError(message)

    deeper()


def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


def sleep_then_mark(seconds, path):
    with open(path, "w") as out:
        out.write(str(os.getpid()))
    time.sleep(seconds)
    return "finished"


def flaky(counter_path, failures):
    """Fails `failures` times (counted in a file), then succeeds."""
    count = 0
    if os.path.exists(counter_path):
        with open(counter_path) as src:
            count = int(src.read())
    with open(counter_path, "w") as out:
        out.write(str(count + 1))
    if count < failures:
        raise RuntimeError(f"flaky failure {count + 1}")
    return count + 1


def return_lock():
    return threading.Lock()


def busy(ms):
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return ms


def hog_memory():
    """Allocates until something stops it (a memory limit)."""
    blocks = []
    while True:
        blocks.append(bytearray(50 * 1024 * 1024))
        time.sleep(0.01)


def print_slowly(n, delay):
    for i in range(n):
        print(f"line {i}", flush=True)
        time.sleep(delay)
    return n


def crash_on(x, bad, log_path, how="segv", times=None):
    """Logs the call, then ends its own process on `bad`: with a segfault ("segv"),
    os._exit(7) ("exit") or SIGKILL ("kill"); only the first `times` runs of it if given."""
    import ctypes
    import signal

    with open(log_path, "a") as out:
        out.write(f"{x}\n")
    if x == bad:
        with open(log_path) as src:
            runs = src.read().split().count(str(x))
        if times is None or runs <= times:
            if how == "segv":
                ctypes.string_at(0)
            elif how == "exit":
                os._exit(7)
            else:
                os.kill(os.getpid(), signal.SIGKILL)
    return x * 2


def fail_fast_probe(x, log_path):
    """Call 2 raises after a short wait (when every pod has started), recording when; calls 0
    and 1 would run long; every call logs that it ran."""
    with open(log_path, "a") as out:
        out.write(f"{x}\n")
    if x == 2:
        time.sleep(2)
        with open(f"{log_path}.raised", "w") as out:
            out.write(repr(time.time()))
        raise ValueError("call 2 failed")
    time.sleep(60 if x < 2 else 0)
    return x


def write_artifacts(x, size=3_000_000):
    """Writes a text file, a nested binary file of `size` random bytes, and returns the
    binary's sha256 (computed where it was written)."""
    import hashlib

    import aksrun

    directory = aksrun.output_dir()
    (directory / "a.txt").write_text(f"hello {x}")
    data = os.urandom(size)
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "sub" / "big.bin").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_artifact_from_a_child(x):
    """Has a child process write the call's file where $AKSRUN_OUTPUT_DIR says, as a command
    line tool given the path would: the call itself never asks for aksrun.output_dir()."""
    import subprocess

    subprocess.run([sys.executable, "-c", (
        "import os, sys; d = os.environ['AKSRUN_OUTPUT_DIR']; os.makedirs(d, exist_ok=True); "
        "open(os.path.join(d, 'child.txt'), 'w').write(sys.argv[1])"), f"from child {x}"],
        check=True)
    return x


def write_artifact_from_a_child_now_and_then(x):
    """Every third call has a child write its file (the calls between write nothing)."""
    if x % 3 == 1:
        write_artifact_from_a_child(x)
    return x


def write_then_crash_once(log_path):
    """First run: writes attempt-1.txt, then segfaults; second run writes attempt-2.txt."""
    import ctypes

    import aksrun

    with open(log_path, "a") as out:
        out.write("run\n")
    with open(log_path) as src:
        runs = len(src.read().split())
    (aksrun.output_dir() / f"attempt-{runs}.txt").write_text(str(runs))
    if runs == 1:
        ctypes.string_at(0)
    return runs


def eventful(x, marks, kill_always=False):
    """A map with something to see on its timeline (run it with retries=1, chunksize=2):
    call 2 stops its runner on its first run, with the SIGTERM a deleted pod or a drained
    node gets (an infrastructure fault: its task runs again; every run with kill_always),
    call 4 raises, and call 5 raises once and then succeeds (one call re-run). SIGTERM, not
    SIGKILL: in a pod the runner is PID 1, which only signals it handles reach."""
    import signal

    def first_time(name):
        path = os.path.join(marks, name)
        if os.path.exists(path):
            return False
        with open(path, "w"):
            return True

    time.sleep(0.2)
    if x == 2 and (first_time("killed-2") or kill_always):
        os.kill(os.getppid(), signal.SIGTERM)  # the runner, which forked this call's worker
        time.sleep(30)
    if x == 4:
        raise ValueError("call 4 raised")
    if x == 5 and first_time("flaky-5"):
        raise RuntimeError("call 5 failed once")
    return x
