"""Outcome records through the worker's shared memory (runner/worker.py) into a task's output
and back out on the client (core/outcome_records.py): every call's outcome where it belongs,
whichever way it travelled, and a malformed block refused, not half-used."""

from __future__ import annotations

import os
import pickle

import pytest

from aksrun.core import job as jobmod
from aksrun.core.envelope import dumps, loads
from aksrun.core.outcome_records import HEADER, OUTCOME, RAISED, outcomes_loads
from aksrun.errors import IntegrityError
from aksrun.runner import worker as workermod
from aksrun.runner.chunk import Nested, Outcomes, _Records


def _output(outcomes: Outcomes) -> list:
    payload = dumps(jobmod.pack_outputs("d" * 64, outcomes), by_reference=True)
    document = loads(b"".join(bytes(p) for p in payload.parts), payload.sha256, "output")
    return jobmod.unpack_outputs(document)[1]


def test_outcomes_from_shared_memory_the_pipe_and_the_runner_come_back_in_call_order():
    shared = workermod.shared_records()
    reader, writer = os.pipe()
    channel = workermod.Channel(writer, None, shared=shared)
    channel.outcome(0, False, pickle.dumps(("ok", 0)), [])
    channel.outcome(1, False, pickle.dumps(("ok", 1)), [], artifacts=True)  # by the pipe
    channel.outcome(2, True, pickle.dumps(("err", None, "ValueError", "2", "")), [])
    os.close(writer)
    records = _Records(reader)
    records.fill()
    piped = records.take()
    assert [(index, flags) for _, index, flags, _ in piped] == [(1, 2)]
    end, following, raised, last = workermod.STATE.unpack_from(shared, 0)[:4]
    assert (following, raised, last) == (3, 1, 1)
    block = bytes(shared[workermod.RECORDS_START:end])
    outcomes = _output(Outcomes(4, block, {1: piped[0][3], 3: ("err", None, "X", "m", "")}))
    assert outcomes[0] == ("ok", 0) and outcomes[1] == ("ok", 1)
    assert outcomes[2][:3] == ("err", None, "ValueError") and outcomes[3][2] == "X"


def test_a_later_worker_goes_on_after_its_predecessors_records():
    shared = workermod.shared_records()
    first = workermod.Channel(-1, None, shared=shared)
    first.outcome(0, True, pickle.dumps(("err", None, "E", "m", "")), [])
    second = workermod.Channel(-1, None, shared=shared)  # after a crash at call 1
    second.outcome(2, False, pickle.dumps(("ok", 2)), [])
    end, following, raised, last = workermod.STATE.unpack_from(shared, 0)[:4]
    assert (following, raised, last) == (3, 1, 0)
    block = bytes(shared[workermod.RECORDS_START:end])
    assert outcomes_loads(3, block, {1: ("err", None, "Crashed", "", "")})[2] == ("ok", 2)


@pytest.mark.parametrize("damage", ["cut", "kind", "position", "missing"])
def test_a_malformed_block_is_refused(damage):
    data = pickle.dumps(("ok", 5))
    record = HEADER.pack(OUTCOME, 0, 0, 0, len(data)) + data
    count, singles = 1, {}
    if damage == "cut":
        record = record[:-3]
    elif damage == "kind":
        record = HEADER.pack(b"r", 0, 0, 0, len(data)) + data
    elif damage == "position":
        record = HEADER.pack(OUTCOME, 7, RAISED, 0, len(data)) + data
    else:
        count = 2
    with pytest.raises(IntegrityError):
        outcomes_loads(count, record, singles)


def test_nested_outcomes_still_load_one_by_one():
    outcomes = _output(Outcomes(1, b"", {0: Nested(pickle.dumps(("ok", "x")), [])}))
    assert outcomes == [("ok", "x")]


def _task_output(shared, count: int, singles: dict) -> list:
    """The outcomes as the client gets them from what the runner stores (ChunkRunner.run)."""
    end, _, _, _, plain_end, plain_count = workermod.STATE.unpack_from(shared, 0)
    block = bytes(shared[workermod.RECORDS_START:end])
    plain = bytes(shared[workermod.PLAIN_START:plain_end])
    return _output(Outcomes(count, block, singles, plain, plain_count))


def test_plain_values_records_and_the_runners_own_outcomes_interleave_in_call_order():
    shared = workermod.shared_records()
    first = workermod.Channel(-1, None, shared=shared)
    values = [7, -2**80, 1.5, 2j, True, "é" * 3, b"\x00b", None]
    for position, value in enumerate(values):
        first.value(position, value)
    first.outcome(8, True, pickle.dumps(("err", None, "ValueError", "8", "")), [])
    first.value(9, "x" * (workermod.PLAIN_LONGEST + 1))  # too long for the stream: a record
    workermod.hole(shared, 10)  # the runner's own outcome: the worker crashed in call 10
    second = workermod.Channel(-1, None, shared=shared)
    second.value(11, "after the crash")
    assert workermod.STATE.unpack_from(shared, 0)[5] == 12  # every place in the stream
    outcomes = _task_output(shared, 12, {10: ("err", None, "CallCrashedError", "m", "")})
    assert outcomes[:8] == [("ok", value) for value in values]
    assert [type(v) for _, v in outcomes[:8]] == [type(v) for v in values]
    assert outcomes[8][:3] == ("err", None, "ValueError")
    assert outcomes[9] == ("ok", "x" * (workermod.PLAIN_LONGEST + 1))
    assert outcomes[10][2] == "CallCrashedError" and outcomes[11] == ("ok", "after the crash")


def test_values_after_a_call_missing_from_the_stream_go_as_records():
    """A call piped its outcome but its worker died before committing it: the stream stops
    at that place, and the next worker's values still come back, as records."""
    shared = workermod.shared_records()
    workermod.Channel(-1, None, shared=shared).value(0, "a")
    piped = Nested(pickle.dumps(("ok", "b")), [])  # position 1, uncommitted
    later = workermod.Channel(-1, None, shared=shared)
    later.value(2, "c")
    assert workermod.STATE.unpack_from(shared, 0)[5] == 1
    assert _task_output(shared, 3, {1: piped}) == [("ok", "a"), ("ok", "b"), ("ok", "c")]


@pytest.mark.parametrize("damage", ["unfilled hole", "count", "garbage", "stop inside"])
def test_malformed_plain_values_are_refused(damage):
    shared = workermod.shared_records()
    channel = workermod.Channel(-1, None, shared=shared)
    channel.value(0, 1)
    workermod.hole(shared, 1)  # the runner's, between two workers
    workermod.Channel(-1, None, shared=shared).value(2, 3)
    _, _, _, _, plain_end, plain_count = workermod.STATE.unpack_from(shared, 0)
    plain = bytes(shared[workermod.PLAIN_START:plain_end])
    singles = {1: ("ok", 2)}
    if damage == "unfilled hole":
        singles = {}
    elif damage == "count":
        plain_count += 1
    elif damage == "garbage":
        plain = plain[:2] + b"\xff" + plain[3:]  # no such opcode
    else:
        plain = plain + b"."
    with pytest.raises(IntegrityError):
        outcomes_loads(3, b"", singles, plain, plain_count)
    assert outcomes_loads(3, b"", {1: ("ok", 2)}, bytes(shared[workermod.PLAIN_START:plain_end]),
                          3) == [("ok", 1), ("ok", 2), ("ok", 3)]
