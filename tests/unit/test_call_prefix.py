"""The runner's call prefixes in a map's output (runner/chunk.py, runner/call_marks.py): each
line carries the index of the call that printed it, across reads, redraws and unfinished
lines, whether its call was marked or is the one still running."""

from __future__ import annotations

import io
import os
import threading

from aksrun.runner import call_marks
from aksrun.runner.call_marks import mark
from aksrun.runner.chunk import _CallLines


def lines_of(*reads: bytes | tuple[bytes, int], first_call: int = 4) -> str:
    """`reads`: what each read returned, alone or with the call running when it was read."""
    out = io.StringIO()
    lines = _CallLines(out, first_call)
    for read in reads:
        data, owner = read if isinstance(read, tuple) else (read, None)
        lines.feed(data, owner)
    lines.close()
    return out.getvalue()


def test_call_prefixes_follow_the_marks_even_when_a_mark_is_cut_between_reads():
    cut = len(mark(4)) // 2
    assert lines_of(b"a\nb", mark(4)[:cut], mark(4)[cut:] + b"c\n" + mark(5)) == (
        "[call 4] a\n[call 4] b\n[call 5] c\n")
    digits = len(call_marks.HEAD) + 2  # cut inside the index
    assert lines_of((b"x\n" + mark(1234)[:digits], 1234), mark(1234)[digits:] + b"y\n",
                    first_call=0) == "[call 1234] x\n[call 1235] y\n"


def test_output_after_silent_calls_is_credited_by_its_mark_or_the_running_call():
    """Calls 5 to 8 printed nothing, so left no mark: what follows the mark of call 4 is the
    marked call's (9), or, before its mark, the running call's."""
    assert lines_of(b"a\n" + mark(4) + b"b\n" + mark(9) + b"c\n", first_call=4) == (
        "[call 4] a\n[call 9] b\n[call 10] c\n")
    assert lines_of((b"a\n" + mark(4) + b"b\n", 9), (b"more of b\n" + mark(9), 10)) == (
        "[call 4] a\n[call 9] b\n[call 9] more of b\n")


def test_call_prefixes_on_redrawn_lines_crlf_and_split_characters():
    assert lines_of(b"\r 0%\r50%\r100%\n") == "[call 4]  0%\r[call 4] 50%\r[call 4] 100%\n"
    assert lines_of(b"x\r\ny\n") == "[call 4] x\r\n[call 4] y\n"
    snow = "\u2603".encode()
    assert lines_of(b"a" + snow[:1], snow[1:] + b"\n") == "[call 4] a\u2603\n"


def test_an_unfinished_line_is_written_when_its_call_ends():
    assert lines_of(b"loading", mark(4), (b"next\n", 5)) == "[call 4] loading\n[call 5] next\n"


def test_output_ending_a_read_is_the_running_calls_once_no_mark_follows():
    """owner_of_the_rest reads on while output comes; the running call, taken before a read
    that finds nothing more, wrote the rest."""
    reader, writer = os.pipe()
    os.write(writer, b"x\n")
    state = {"running": 3}
    with open(reader, "rb", buffering=0) as pipe:
        data = pipe.read(100)
        assert call_marks.owner_of_the_rest(pipe, reader, data, lambda: state["running"]) == (
            b"x\n", 3, False)
        # the running call's mark arrives with the next read, and the next call is counted
        os.write(writer, b"y\n" + mark(3))
        state["running"] = 4

        def late() -> None:
            os.write(writer, b"z\n")
            os.close(writer)

        data = pipe.read(100)
        thread = threading.Thread(target=late)
        thread.start()
        thread.join()
        data, owner, eof = call_marks.owner_of_the_rest(pipe, reader, data,
                                                         lambda: state["running"])
        assert data == b"y\n" + mark(3) + b"z\n" and owner == 4 and eof
