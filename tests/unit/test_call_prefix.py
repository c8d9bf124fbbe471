"""The runner's call prefixes in a map's output (runner/chunk.py): each line carries the index
of the call that printed it, across reads, redraws and unfinished lines."""

from __future__ import annotations

import io

from aksrun.runner.chunk import CALL_END, _CallLines


def lines_of(*reads: bytes, first_call: int = 4) -> str:
    out = io.StringIO()
    lines = _CallLines(out, first_call)
    for data in reads:
        lines.feed(data)
    lines.close()
    return out.getvalue()


def test_call_prefixes_follow_the_calls_even_when_a_mark_is_cut_between_reads():
    cut = len(CALL_END) // 2
    assert lines_of(b"a\nb", CALL_END[:cut], CALL_END[cut:] + b"c\n") == (
        "[call 4] a\n[call 4] b\n[call 5] c\n")


def test_call_prefixes_on_redrawn_lines_crlf_and_split_characters():
    assert lines_of(b"\r 0%\r50%\r100%\n") == "[call 4]  0%\r[call 4] 50%\r[call 4] 100%\n"
    assert lines_of(b"x\r\ny\n") == "[call 4] x\r\n[call 4] y\n"
    snow = "\u2603".encode()
    assert lines_of(b"a" + snow[:1], snow[1:] + b"\n") == "[call 4] a\u2603\n"


def test_an_unfinished_line_is_written_when_its_call_ends():
    assert lines_of(b"loading", CALL_END, b"next\n") == "[call 4] loading\n[call 5] next\n"
