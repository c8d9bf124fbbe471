"""A call's outcome record: written by the worker that ran the call, read back by the client.

A record is a header (kind, the call's position in its task, flags, how many out-of-band
buffers, the pickle's length), the buffers' lengths, the pickle, the buffers. Most records
go into memory the worker shares with its runner, and the runner stores that block in the
task's output as it is (runner/chunk.py): neither it nor the worker spends a Python object
or a system call per call on them, and the client reads each call's outcome from the block
after the whole output was verified.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

from ..errors import IntegrityError

RETRYING = b"r"  # the call raised and is being run again
OUTCOME = b"o"   # the call's outcome
HEADER = struct.Struct("<cQBIQ")
LENGTH = struct.Struct("<Q")
RAISED = 1     # flag: the call raised
ARTIFACTS = 2  # flag: the call asked for its output directory (it may have left files)


def outcomes_loads(count: int, block: bytes, singles: dict[int, Any]) -> list[Any]:
    """A task's `count` outcomes in call order, from a block of records without out-of-band
    buffers and the outcomes kept one by one (already re-created by the same unpickling)."""
    outcomes: list[Any] = [None] * count
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
    except struct.error as exc:
        raise IntegrityError(f"a task's output holds a cut outcome record ({exc}).") from exc
    for position, outcome in singles.items():
        outcomes[position] = outcome
    if None in outcomes:
        raise IntegrityError(f"a task's output has no outcome for its call at position "
                             f"{outcomes.index(None)}; nothing of it was used.")
    return outcomes
