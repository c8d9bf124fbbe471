"""The local backend rehearses AKS's memory limit: a call over `memory=` is killed and
reported OOMKilled with the limit, as the cluster would, instead of succeeding locally and
failing on its first real run."""

from __future__ import annotations

import time

import pytest

import aksrun


def hold(mib: int) -> int:
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[i] = 1
    time.sleep(1.0)  # long enough to be sampled
    return len(block) // 2**20


def test_a_call_over_its_memory_limit_is_oomkilled_naming_the_limit():
    start = time.monotonic()
    with pytest.raises(aksrun.CallOutOfMemoryError) as info:
        aksrun.function(memory="256Mi")(hold)(600)
    text = str(info.value)
    assert "memory limit" in text and "memory='256Mi'" in text and "raise memory=" in text
    assert "call 0 of hold()" in text
    assert time.monotonic() - start < 30


def test_only_the_call_over_the_limit_fails_the_others_of_its_task_keep_their_values(
        tmp_path):
    results = list(aksrun.function(memory="256Mi")(hold).map(
        [10, 600, 20], chunksize=3, return_exceptions=True))
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], aksrun.CallOutOfMemoryError)
    assert "call 1 of hold()" in str(results[1]) and "OOMKilled" in str(results[1])


def test_a_call_within_its_limit_is_untouched():
    assert aksrun.function(memory="512Mi")(hold)(100) == 100


def big_value(mib: int) -> bytes:
    return b"x" * (mib * 2**20)


def test_a_return_value_that_takes_the_task_over_its_limit_fails_only_its_call():
    """Pickling and handing over a large value doubles it or more: the worker may be killed
    while it sends the outcome, which must fail that call alone, not end the runner."""
    results = list(aksrun.function(memory="512Mi")(big_value).map(
        [1, 300, 2], chunksize=3, return_exceptions=True))
    assert results[0] == b"x" * 2**20 and results[2] == b"x" * 2 * 2**20
    assert isinstance(results[1], aksrun.CallOutOfMemoryError), results[1]
    assert "call 1 of big_value()" in str(results[1])
