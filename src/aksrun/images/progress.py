"""What a person sees while an image builds: the run's log as it is written, and one status
line (run id, status, elapsed) kept at the bottom when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


class BuildProgress:
    """`on_line` / `on_status` callbacks for AcrTasks; a context manager around a build."""

    def __init__(self, what: str, enabled: bool | None = None, stream: Any = None) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.live = (self.stream.isatty() if enabled is None else enabled)
        self.run_id = ""
        self.status = "Queued"
        self.started = time.monotonic()
        self._status: Any = None
        self._console: Any = None

    def __enter__(self) -> BuildProgress:
        return self  # nothing shows unless a build starts (a registry hit is silent)

    def _start(self) -> None:
        if self.live and self._status is None:
            from rich.console import Console

            self.started = time.monotonic()
            self._console = Console(file=self.stream, highlight=False)
            self._status = self._console.status(self._line())
            self._status.start()

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def on_line(self, line: str) -> None:
        if self._console is not None:
            from rich.markup import escape

            self._console.print(f"[dim]{escape(line)}[/]")
            self._status.update(self._line())
        else:
            print(line, file=self.stream, flush=True)

    def on_status(self, run_id: str, status: str) -> None:
        self._start()
        first = not self.run_id
        self.run_id, self.status = run_id, status
        if self._status is not None:
            self._status.update(self._line())
        elif first:
            print(f"building {self.what} (ACR run {run_id})", file=self.stream, flush=True)

    def _line(self) -> str:
        seconds = time.monotonic() - self.started
        run = f"ACR run {self.run_id}, " if self.run_id else ""
        return f"building {self.what} ({run}{self.status}, {seconds:.0f} s)"
