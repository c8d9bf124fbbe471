"""Container logs in the CRI format, written and read as containerd and the kubelet do.

Each container instance gets one file of lines `<RFC3339Nano> <stdout|stderr> <P|F> <text>`
(P = partial: a line longer than 16 KiB, or the last bytes before exit without a newline).
Reading follows the kubelet's ReadLogs: tailLines counts file lines from the end, sinceTime
drops earlier lines, timestamps prefixes each line, limitBytes caps the output, follow waits
for more until the container has ended.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_LINE = 16 * 1024  # containerd's default max_container_log_line_size
STREAMS = ("stdout", "stderr")


def rfc3339nano(ns: int) -> str:
    """The kubelet's fixed-width RFC3339Nano (nine fraction digits, UTC)."""
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> int:
    """RFC3339 (any fraction width, Z or offset) -> nanoseconds since the epoch."""
    text = text.strip()
    frac_ns = 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9])
        text = head + rest
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9 + frac_ns


class ContainerLog:
    """The log file of one container instance, with a condition followers wait on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open while the container runs
        self._partial = {s: b"" for s in STREAMS}
        self.cond = threading.Condition()
        self.done = False

    def write(self, stream: str, data: bytes) -> None:
        """Raw bytes from the container's stdout/stderr; complete lines are written now."""
        buf = self._partial[stream] + data
        lines = []
        while True:
            nl = buf.find(b"\n", 0, MAX_LINE + 1)
            if nl >= 0:
                lines.append((b"F", buf[:nl]))
                buf = buf[nl + 1:]
            elif len(buf) > MAX_LINE:
                lines.append((b"P", buf[:MAX_LINE]))
                buf = buf[MAX_LINE:]
            else:
                break
        self._partial[stream] = buf
        self._emit(stream, lines)

    def _emit(self, stream: str, lines: list[tuple[bytes, bytes]]) -> None:
        if not lines:
            return
        ts = rfc3339nano(time.time_ns()).encode()
        out = b"".join(b"%s %s %s %s\n" % (ts, stream.encode(), tag, text)
                       for tag, text in lines)
        with self.cond:
            if self._file.closed:
                return
            self._file.write(out)
            self._file.flush()
            self.cond.notify_all()

    def close(self) -> None:
        """The container ended: flush unterminated output as partial lines, wake followers."""
        for stream in STREAMS:
            if self._partial[stream]:
                self._emit(stream, [(b"P", self._partial[stream])])
                self._partial[stream] = b""
        with self.cond:
            if not self._file.closed:
                self._file.close()
            self.done = True
            self.cond.notify_all()

    def wait_for_change(self, size: int, timeout: float) -> None:
        with self.cond:
            if not self.done and _size(self.path) <= size:
                self.cond.wait(timeout)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass
class LogOptions:
    """The kubelet's PodLogOptions, from the /containerLogs query string."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None
    stream: str = "All"

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> LogOptions:
        def flag(name: str) -> bool:
            return (query.get(name) or ["false"])[-1].lower() in ("true", "1")

        def number(name: str) -> int | None:
            value = (query.get(name) or [None])[-1]
            return int(value) if value not in (None, "") else None

        since = None
        if number("sinceSeconds") is not None:
            since = time.time_ns() - (number("sinceSeconds") or 0) * 10**9
        elif (query.get("sinceTime") or [""])[-1]:
            since = parse_rfc3339(query["sinceTime"][-1])
        tail = number("tailLines")
        return cls(follow=flag("follow"), previous=flag("previous"),
                   timestamps=flag("timestamps"),
                   tail_lines=tail if tail is None or tail >= 0 else None,
                   limit_bytes=number("limitBytes"), since_ns=since,
                   stream=(query.get("stream") or ["All"])[-1] or "All")


def _tail_offset(f, lines: int) -> int:
    """Offset of the start of the last `lines` lines of an open file."""
    if lines <= 0:
        f.seek(0, os.SEEK_END)
        return f.tell()
    f.seek(0, os.SEEK_END)
    end = pos = f.tell()
    seen = 0
    block = 8192
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        if pos + step == end and chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        idx = len(chunk)
        while True:
            idx = chunk.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            seen += 1
            if seen == lines:
                return pos + idx + 1
    return 0


def read_log(log: ContainerLog, opts: LogOptions, write: Callable[[bytes], None],
             running: Callable[[], bool], stopping: Callable[[], bool] = lambda: False) -> None:
    """Write the log's content per `opts`; with follow, keep going until the container ends."""
    remaining = opts.limit_bytes
    wanted = {"All": STREAMS, "Stdout": ("stdout",), "Stderr": ("stderr",)}.get(opts.stream,
                                                                                STREAMS)
    try:
        f = open(log.path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    with f:
        if opts.tail_lines is not None:
            f.seek(_tail_offset(f, opts.tail_lines))
        else:
            f.seek(0)
        pending = b""
        while not stopping():
            chunk = f.read(65536)
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                out = []
                for line in complete:
                    piece = _format(line, opts, wanted)
                    if piece:
                        out.append(piece)
                if out:
                    data = b"".join(out)
                    if remaining is not None:
                        data = data[:remaining]
                        remaining -= len(data)
                    write(data)
                    if remaining is not None and remaining <= 0:
                        return
                continue
            if not opts.follow:
                return
            if log.done or not running():
                # one last read: the writer may have flushed between our read and the check
                if not f.read(1):
                    return
                f.seek(-1, os.SEEK_CUR)
                continue
            log.wait_for_change(f.tell(), 1.0)


def _format(line: bytes, opts: LogOptions, wanted: tuple[str, ...]) -> bytes:
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return b""
    ts, stream, tag = parts[0], parts[1].decode(), parts[2]
    text = parts[3] if len(parts) == 4 else b""
    if stream not in wanted:
        return b""
    if opts.since_ns is not None:
        try:
            if parse_rfc3339(ts.decode()) < opts.since_ns:
                return b""
        except ValueError:
            return b""
    prefix = ts + b" " if opts.timestamps else b""
    return prefix + text + (b"\n" if tag == b"F" else b"")


def last_log_text(log: ContainerLog, max_lines: int = 80, max_bytes: int = 2048) -> str:
    """The kubelet's FallbackToLogsOnError message: the last 80 lines, at most 2048 bytes."""
    out: list[bytes] = []
    read_log(log, LogOptions(tail_lines=max_lines), out.append, lambda: False)
    return b"".join(out)[-max_bytes:].decode("utf-8", "replace")
