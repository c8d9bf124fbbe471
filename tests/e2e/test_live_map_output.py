"""What a map's calls print reaches the caller's stderr while the map runs, each line
prefixed with its call's index; `logs=False` hides it; `aksrun jobs logs JOB -f` follows
every task at once. On every backend."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path

import aksrun
from tests.support.clirun import aksrun_cli, start_aksrun_cli
from tests.support.waiting import wait_for

RELEASE_WAIT = 60.0  # seconds a call waits for the test to release it


def say_then_wait(x, folder):
    """Print, then wait for this call's release file (call 0 is released last)."""
    print(f"hello from {x}", flush=True)
    (Path(folder) / "job").write_text(os.environ.get("AKSRUN_JOB_ID", ""))
    release = Path(folder) / f"release-{x}"
    deadline = time.monotonic() + RELEASE_WAIT
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"bye from {x}")
    return x


def talk(x):
    """Output of every kind a call makes: stdout, stderr, an unfinished line, a redrawn bar."""
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    for percent in (0, 50, 100):
        print(f"\rbar {x} {percent}%", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"tail {x}", end="")  # no newline, and the call returns at once
    return x


def now_and_then(x):
    """Three calls in four write, each its own way: print, the file descriptor (as C code
    does), a child process; the rest print nothing (and leave no mark between the others)."""
    import subprocess

    if x % 4 == 0:
        print(f"print {x}")
    elif x % 4 == 2:
        os.write(2, f"fd {x}\n".encode())
    elif x % 4 == 3:
        subprocess.run([sys.executable, "-c", f"print('child {x}')"], check=True)
    return x


class Captured:
    """What this process writes to stderr, kept as it comes (capsys, read repeatedly)."""

    def __init__(self, capsys) -> None:
        self.capsys, self.text = capsys, ""

    def __call__(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


def test_map_output_reaches_stderr_while_the_map_runs(backend, tmp_path, capsys):
    remote = aksrun.function()(say_then_wait)
    results: list[int] = []
    it = remote.map(range(3), [str(tmp_path)] * 3, chunksize=1, max_parallel=3)
    consumer = threading.Thread(target=lambda: results.extend(it), daemon=True)
    consumer.start()
    err = Captured(capsys)
    try:
        wait_for(lambda: "[call 1] hello from 1\n" in err(), timeout=120)
        assert not results and consumer.is_alive()  # seen while every call still waits
    finally:
        for x in (2, 1, 0):
            (tmp_path / f"release-{x}").write_text("")
    consumer.join(120)
    assert results == [0, 1, 2]
    text = err()
    for x in range(3):
        assert f"[call {x}] hello from {x}\n" in text and f"[call {x}] bye from {x}\n" in text


def test_each_line_carries_the_index_of_the_call_that_printed_it(backend, capsys):
    results = list(aksrun.function()(talk).map(range(7), chunksize=3))
    assert results == list(range(7))
    err = capsys.readouterr().err
    job_lines = [line for line in err.splitlines() if line.startswith("[call ")]
    for x in range(7):
        for text in (f"out {x}", f"err {x}", f"tail {x}", f"bar {x} 100%"):
            assert f"[call {x}] {text}" in job_lines, (text, err)
    for line in job_lines:
        call, said = re.fullmatch(r"\[call (\d+)\] \w+ (\d+)( \d+%)?", line).group(1, 2)
        assert call == said, line  # no line is credited to a neighbouring call
    assert not any("bar 3 0%" in line for line in job_lines)  # the bar as it was last drawn


def test_logs_false_hides_the_calls_output(backend, capsys):
    remote = aksrun.function()(talk)
    assert list(remote.map(range(3), logs=False)) == [0, 1, 2]
    assert "[call" not in capsys.readouterr().err
    assert list(remote.map(range(3))) == [0, 1, 2]
    assert "[call 2] out 2" in capsys.readouterr().err


def test_a_single_call_prints_without_a_prefix(backend, capfd):
    assert aksrun.function()(talk)(5) == 5
    err = capfd.readouterr().err
    assert "out 5" in err and "[call" not in err


def test_jobs_logs_follow_shows_every_task_interleaved(backend, tmp_path):
    remote = aksrun.function()(say_then_wait)
    it = remote.map(range(3), [str(tmp_path)] * 3, chunksize=1, max_parallel=3)
    job = tmp_path / "job"
    job_id = wait_for(lambda: job.exists() and job.read_text(), timeout=120)
    follower = start_aksrun_cli("jobs", "logs", job_id, "-f")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        # Calls 1 and 2 end while call 0 still waits: a follower that read task 0 to its
        # end before task 1 would show neither of their last lines yet.
        (tmp_path / "release-1").write_text("")
        (tmp_path / "release-2").write_text("")
        wait_for(lambda: {"[call 1] bye from 1\n", "[call 2] bye from 2\n"} <= set(lines),
                 timeout=120)
        assert "[call 0] bye from 0\n" not in lines
    finally:
        (tmp_path / "release-0").write_text("")
    assert list(it) == [0, 1, 2]
    assert follower.wait(120) == 0, follower.stderr.read()
    reader.join(10)
    for x in range(3):
        assert f"[call {x}] hello from {x}\n" in lines and f"[call {x}] bye from {x}\n" in lines

    one = aksrun_cli("jobs", "logs", job_id, "--task", "1", "-f")
    assert one.returncode == 0, one.stderr
    assert one.stdout == "[call 1] hello from 1\n[call 1] bye from 1\n"


def test_output_of_every_kind_is_credited_to_its_call_between_silent_calls(backend, capsys):
    """Output written below Python (a file descriptor, a child process) is credited as
    print's is, with silent calls between the ones that write."""
    assert list(aksrun.function()(now_and_then).map(range(16), chunksize=8)) == list(range(16))
    job_lines = [line for line in capsys.readouterr().err.splitlines()
                 if line.startswith("[call ")]
    expected = {f"[call {x}] {kind} {x}" for x in range(16) for kind in ("print", "fd", "child")
                if x % 4 == {"print": 0, "fd": 2, "child": 3}[kind]}
    assert set(job_lines) == expected
