"""A progress bar for long maps, only when stderr is a terminal (rich is imported then only).

Output printed while the bar is shown (a map's live output) goes through `print`, above the
bar: written to stderr directly, it would land on the bar's line and the bar redraw over it.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    def __init__(self, total: int, description: str, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        if self.enabled and total > 1:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task(description, total=total)
            self._bar.start()

    def advance(self, count: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)

    def print(self, text: str) -> None:
        """Whole lines (each ending in a newline) to stderr, above the bar if one is shown."""
        bar = self._bar
        if bar is not None:
            bar.console.out(text[:-1] if text.endswith("\n") else text, highlight=False)
            return
        sys.stderr.write(text)
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
