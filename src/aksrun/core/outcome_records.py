"""A call's outcome record: written by the worker that ran the call, read back by the client.

A record is a header (kind, the call's position in its task, flags, how many out-of-band
buffers, the pickle's length), the buffers' lengths, the pickle, the buffers. Most records
go into memory the worker shares with its runner, and the runner stores that block in the
task's output as it is (runner/chunk.py): neither it nor the worker spends a Python object
or a system call per call on them, and the client reads each call's outcome from the block
after the whole output was verified. Calls that returned plain data (numbers, strings,
bytes, None) leave only their value, in a stream of values the client unpickles as one list:
one pickle for a task's thousands of results instead of one each.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

from ..errors import IntegrityError
from .pickling import OK

RETRYING = b"r"  # the call raised and is being run again
OUTCOME = b"o"   # the call's outcome
HEADER = struct.Struct("<cQBIQ")
LENGTH = struct.Struct("<Q")
# The plain values' stream is unpickled as one list: a protocol header and a MARK before
# it, LIST and STOP after it.
PLAIN_HEAD, PLAIN_TAIL = b"\x80\x03(", b"l."
RAISED = 1     # flag: the call raised
ARTIFACTS = 2  # flag: the call asked for its output directory (it may have left files)


def outcomes_loads(count: int, block: bytes, singles: dict[int, Any], plain: bytes = b"",
                   plain_count: int = 0) -> list[Any]:
    """A task's `count` outcomes in call order: from the stream of plain values (the first
    `plain_count` places), a block of records without out-of-band buffers, and the outcomes
    kept one by one (already re-created by the same unpickling). Every hole in the plain
    values must be filled by a record or a single outcome, and every call have an outcome."""
    outcomes: list[Any] = [None] * count
    holes = _plain_outcomes(outcomes, plain, plain_count)
    view, offset, end = memoryview(block), 0, len(block)
    unpack, size, loads = HEADER.unpack_from, HEADER.size, pickle.loads
    try:
        while offset < end:
            kind, position, _, buffers, length = unpack(view, offset)
            start, offset = offset + size, offset + size + length
            if kind != OUTCOME or buffers or offset > end or position >= count:
                raise IntegrityError("a task's output holds a malformed outcome record; "
                                     "nothing of it was used.")
            outcomes[position] = loads(view[start:offset])
            holes.discard(position)
    except struct.error as exc:
        raise IntegrityError(f"a task's output holds a cut outcome record ({exc}).") from exc
    for position, outcome in singles.items():
        outcomes[position] = outcome
        holes.discard(position)
    if None in outcomes or holes:
        missing = min(holes) if holes else outcomes.index(None)
        raise IntegrityError(f"a task's output has no outcome for its call at position "
                             f"{missing}; nothing of it was used.")
    return outcomes


def _plain_outcomes(outcomes: list[Any], plain: bytes, count: int) -> set[int]:
    """Put the plain values (one pickle stream, runner/worker.py) in place as outcomes; the
    positions of their holes."""
    if not count:
        return set()
    try:
        values = pickle.loads(PLAIN_HEAD + plain + PLAIN_TAIL)
    except Exception as exc:
        raise IntegrityError(f"a task's output holds malformed plain values ({exc}); "
                             "nothing of it was used.") from exc
    if type(values) is not list or len(values) != count or count > len(outcomes):
        raise IntegrityError("a task's output holds a wrong number of plain values; nothing "
                             "of it was used.")
    outcomes[:count] = [(OK, value) for value in values]
    if () not in values:
        return set()
    return {position for position, value in enumerate(values) if type(value) is tuple}
