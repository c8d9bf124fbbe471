"""Write aksrun's settings into the file aksrun reads, changing only the keys given.

The file is the one `core.config` would read from here (an `aksrun.toml`, or `[tool.aksrun]`
in a `pyproject.toml`, in this folder or above), else a new `aksrun.toml` here (or
`[tool.aksrun]` in ./pyproject.toml on request). Edits are line by line, so comments, other
keys and other tables stay as they were; the result is parsed back before anything is
written, and an existing file is only replaced when the caller says so.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

TABLE = ("tool", "aksrun")
_HEADER = re.compile(r"^\s*\[")
_TOOL_AKSRUN = re.compile(r"^\s*\[\s*tool\s*\.\s*aksrun\s*\]\s*(#.*)?$")


@dataclass(frozen=True)
class Target:
    path: Path
    table: tuple[str, ...] | None  # None: the whole file (aksrun.toml); else [tool.aksrun]

    @property
    def label(self) -> str:
        return f"{self.path} [tool.aksrun]" if self.table else str(self.path)


@dataclass(frozen=True)
class Change:
    target: Target
    old: str | None  # None: the file does not exist yet
    new: str

    @property
    def unchanged(self) -> bool:
        return self.old == self.new

    def diff(self) -> str:
        name = str(self.target.path)
        return "".join(difflib.unified_diff(
            (self.old or "").splitlines(keepends=True), self.new.splitlines(keepends=True),
            fromfile=name if self.old is not None else "/dev/null", tofile=name))


def find_target(cwd: str | os.PathLike[str], pyproject: bool = False) -> Target:
    """The file aksrun reads from `cwd` (as core.config looks for it), else a new one here."""
    here = Path(cwd).resolve()
    for folder in (here, *here.parents):
        if (folder / "aksrun.toml").is_file():
            return Target(folder / "aksrun.toml", None)
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            if _has_table(candidate):
                return Target(candidate, TABLE)
            break  # core.config stops at the first pyproject.toml
    if pyproject:
        return Target(here / "pyproject.toml", TABLE)
    return Target(here / "aksrun.toml", None)


def plan_change(target: Target, values: Mapping[str, Any]) -> Change:
    """The file's text with `values` set (other content kept), checked by parsing it back."""
    old = target.path.read_text() if target.path.is_file() else None
    new = _render(old or "", target.table, values)
    try:
        data = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{target.label} could not be updated safely ({exc}); add these "
                          f"keys by hand: {_assignments(values)}") from None
    for key in target.table or ():
        data = data.get(key, {})
    wrong = [k for k, v in values.items() if data.get(k) != v]
    if wrong:
        raise ConfigError(f"{target.label} could not be updated safely (keys {wrong} would not "
                          f"read back); add these keys by hand: {_assignments(values)}")
    return Change(target, old, new)


def write(change: Change) -> None:
    """Replace the file atomically (a crash leaves the old or the new file, never half)."""
    path = change.target.path
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(change.new)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _render(text: str, table: tuple[str, ...] | None, values: Mapping[str, Any]) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if table is None:
        start = 0
        end = next((i for i, line in enumerate(lines) if _HEADER.match(line)), len(lines))
    else:
        header = next((i for i, line in enumerate(lines) if _TOOL_AKSRUN.match(line)), None)
        if header is None:
            if lines and lines[-1].strip():
                lines.append("\n")
            lines.append("[tool.aksrun]\n")
            header = len(lines) - 1
        start = header + 1
        end = next((i for i in range(start, len(lines)) if _HEADER.match(lines[i])), len(lines))
    if table is None and not text.strip():
        lines = ["# aksrun settings, written by `aksrun init` (see README: Configuration)\n"]
        start = end = 1
    for key, value in values.items():
        assignment = f"{key} = {_toml(value)}\n"
        pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), None)
        if found is not None:
            lines[found] = assignment
            continue
        at = end
        while at > start and not lines[at - 1].strip():  # before the table's trailing blanks
            at -= 1
        lines.insert(at, assignment)
        end += 1
    return "".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a valid TOML basic string


def _assignments(values: Mapping[str, Any]) -> str:
    return "; ".join(f"{k} = {_toml(v)}" for k, v in values.items())


def _has_table(path: Path) -> bool:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance((data.get("tool") or {}).get("aksrun"), dict)
