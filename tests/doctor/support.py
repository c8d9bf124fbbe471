"""Running doctor and init as a user does (the click commands, in this process so the test's
environment applies), and reading their one-line-per-check output."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

LINE = re.compile(r"^(?P<mark>[✓✗-]) (?P<title>[^:]+): (?P<rest>.*)$")


@dataclass
class Run:
    exit_code: int
    output: str
    stderr: str
    seconds: float
    lines: dict[str, str] = field(default_factory=dict)  # title -> the whole line
    marks: dict[str, str] = field(default_factory=dict)  # title -> ✓ ✗ -

    def failed(self) -> list[str]:
        return [title for title, mark in self.marks.items() if mark == "✗"]

    def fix(self, title: str) -> str:
        line = self.lines[title]
        assert " — fix: " in line, line
        return line.split(" — fix: ", 1)[1]


def doctor(*args: str, cwd: Path | None = None) -> Run:
    from aksrun.cli.doctor import doctor as command

    return _invoke(command, list(args), cwd)


def doctor_json(cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    run = doctor("--json", cwd=cwd)
    return run.exit_code, json.loads(run.output)


def init(*args: str, cwd: Path | None = None) -> Run:
    from aksrun.cli.doctor import init as command

    return _invoke(command, list(args), cwd)


def _invoke(command: Any, args: list[str], cwd: Path | None) -> Run:
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    started = time.monotonic()
    try:
        result = CliRunner().invoke(command, args, catch_exceptions=False)
    finally:
        os.chdir(here)
    run = Run(result.exit_code, result.stdout, result.stderr, time.monotonic() - started)
    for line in result.stdout.splitlines():
        found = LINE.match(line)
        if found:
            run.lines[found["title"]] = line
            run.marks[found["title"]] = found["mark"]
    return run


def single_failure(run: Run, title: str) -> str:
    """Assert exactly one check failed, this one, with exit 1 (the rest passed or were
    skipped because they build on it); its fix."""
    assert run.exit_code == 1, run.output
    assert run.failed() == [title], run.output
    return run.fix(title)
