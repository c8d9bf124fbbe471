"""Where one call's output ends in a map worker's output pipes, so each line can be credited
to the call that printed it (runner/chunk.py prefixes it with `[call N] `).

After a call that wrote anything (to either pipe), the worker writes a mark naming the call
into both pipes, before it commits the call's outcome: the output before a mark is that
call's. A call that wrote nothing leaves no mark (runner/call_changes.py tells the worker
whether it wrote); whose is output read after the last mark is then told by the worker's
shared state (see `owner_of_the_rest`): exactly, because a call that wrote is marked before
the next call starts.

Output written at the descriptor level (a C extension, a subprocess) is marked like print's:
the kernel, not Python, says whether the call wrote.
"""

from __future__ import annotations

import os
import re
import select
import sys
from collections.abc import Callable
from typing import Any

HEAD = b"\x00\x1baksrun:call-end:"
_MARK = re.compile(rb"\x00\x1baksrun:call-end:(\d+)\x00")
_LONGEST = len(HEAD) + 20 + 1  # a mark with the longest index
# Reads of more output while finding the owner of the rest: past them, the running call owns
# it (a call writing without pause, whose pipe never runs empty).
_MORE_READS = 16


def mark(call: int) -> bytes:
    return b"%s%d\x00" % (HEAD, call)


def write_marks(call: int) -> None:
    """In a map's worker, after a call that wrote: flush what Python still holds (flushed
    before the call's check too, so this is only the marks) and mark both pipes."""
    data = mark(call)
    for fd in (1, 2):
        try:
            os.write(fd, data)
        except OSError:
            pass


def flush_streams() -> None:
    """What print() holds (an unfinished line) goes to the pipes before the call counts as
    done: it is the call's output."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (ValueError, OSError, AttributeError):
            pass


def split(data: bytes) -> tuple[list[tuple[bytes, int]], bytes, bytes]:
    """The output in `data`: the pieces each ended by a mark, with the call it names; the
    rest after the last mark; and the start of a mark cut off at the end of the read (to be
    put before the next read)."""
    pieces, start = [], 0
    for match in _MARK.finditer(data):
        pieces.append((data[start:match.start()], int(match.group(1))))
        start = match.end()
    rest = data[start:]
    at = rest.find(b"\x00", max(0, len(rest) - _LONGEST))
    while at != -1:
        if _starts_a_mark(rest[at:]):
            return pieces, rest[:at], rest[at:]
        at = rest.find(b"\x00", at + 1)
    return pieces, rest, b""


def _starts_a_mark(piece: bytes) -> bool:
    if len(piece) <= len(HEAD):
        return HEAD.startswith(piece)
    return piece.startswith(HEAD) and piece[len(HEAD):].isdigit()


def owner_of_the_rest(pipe: Any, fd: int, data: bytes,
                      running: Callable[[], int]) -> tuple[bytes, int, bool]:
    """Read on until whose the output after the last mark is known: (the output read, the
    call that wrote its rest, whether the pipe reached EOF).

    The rest is one call's (a call that wrote is marked before the next runs). Take the
    running call from the shared state, then read again: if that read finds nothing, no mark
    was on its way, so the call that wrote the rest was not done when its successor was
    counted as running: it is the running one. A mark found means read on."""
    for _ in range(_MORE_READS):
        call = running()
        if not select.select([fd], [], [], 0)[0]:
            return data, call, False
        more = pipe.read(65536)
        if not more:
            return data, call, True
        data += more
    return data, running(), False
