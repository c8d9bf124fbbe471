"""Each call is its own outcome, on every backend (issue 12): a call that ends its process
fails as itself, naming its index and the signal or exit code, while the other calls of its
task keep their values; it runs again only as retries= says; and a map that stops at its
first error raises it as soon as it happens, not after the rest of the chunk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import aksrun

from . import funcs


def _runs(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


@pytest.mark.parametrize("how, words", [("segv", "killed by SIGSEGV"),
                                        ("exit", "exit code 7"),
                                        ("kill", "killed by SIGKILL")])
def test_a_call_that_ends_its_process_fails_alone(backend, tmp_path, how, words):
    log = tmp_path / "runs"
    n = 20
    results = list(aksrun.function()(funcs.crash_on).map(
        range(n), [3] * n, [str(log)] * n, [how] * n, chunksize=10, return_exceptions=True))
    for i, value in enumerate(results):
        if i != 3:
            assert value == i * 2, (i, value)
    error = results[3]
    assert isinstance(error, aksrun.CallCrashedError), error
    assert "call 3 of crash_on()" in str(error) and words in str(error), str(error)
    # retries=0: every call ran exactly once (the chunk was not run again)
    assert sorted(_runs(log)) == list(range(n))


def test_a_crashing_call_runs_again_only_as_retries_says(backend, tmp_path):
    log = tmp_path / "runs"
    remote = aksrun.function(retries=2)(funcs.crash_on)
    # crashes on its first two runs, then returns: the third attempt is its value
    assert list(remote.map([0, 1, 2], [1] * 3, [str(log)] * 3, ["segv"] * 3, [2] * 3,
                           chunksize=3)) == [0, 2, 4]
    assert sorted(_runs(log)) == [0, 1, 1, 1, 2]

    log2 = tmp_path / "runs2"
    results = list(aksrun.function(retries=1)(funcs.crash_on).map(
        [0, 1, 2], [1] * 3, [str(log2)] * 3, ["exit"] * 3, chunksize=3, return_exceptions=True))
    assert results[0] == 0 and results[2] == 4
    assert isinstance(results[1], aksrun.CallCrashedError) and "exit code 7" in str(results[1])
    assert sorted(_runs(log2)) == [0, 1, 1, 2]  # once, then its one retry


def test_the_first_failure_raises_at_once_and_stops_its_chunk(backend, tmp_path):
    """Calls 0-1 (one task) would run a minute; call 2 (the other task) raises after 2 s:
    the map raises it within about a second, the call after it in its task never starts,
    and the job is stopped."""
    log = tmp_path / "runs"
    remote = aksrun.function(name="failfast")(funcs.fail_fast_probe)
    start = time.monotonic()
    results = remote.map(range(4), [str(log)] * 4, chunksize=2, max_parallel=2)
    with pytest.raises(ValueError, match="call 2 failed"):
        list(results)
    heard = time.time()
    raised_at = float((tmp_path / "runs.raised").read_text())
    assert heard - raised_at < 2.0, heard - raised_at
    assert time.monotonic() - start < 40
    assert 3 not in _runs(log)  # its task stopped at its first error


def test_return_exceptions_runs_every_call_of_the_chunk(backend):
    results = list(aksrun.function()(funcs.fail_on).map(range(6), [1] * 6, chunksize=6,
                                                        return_exceptions=True))
    assert [r for i, r in enumerate(results) if i != 1] == [0, 2, 3, 4, 5]
    assert isinstance(results[1], funcs.CustomError) and "input 1 is bad" in str(results[1])
