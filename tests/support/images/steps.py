"""One slow step of making an image (debootstrap, pip download, a buildah call), run with
its output in a log file, and the error a person can act on when it fails: which step, how
long it ran, the log and its last lines, and the fix."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class ImageToolError(RuntimeError):
    """A step of the image toolchain failed; the message names the step, the log, the fix."""


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def step_error(step: str, detail: str, log: Path | None, fix: str) -> ImageToolError:
    where = f" Log: {log}. Last lines:\n{tail(log)}\n" if log is not None else " "
    return ImageToolError(f"step '{step}' failed: {detail}.{where}Fix: {fix}")


def run_step(step: str, argv: Sequence[str], log: Path, fix: str, *,
             env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float | None = None) -> float:
    """Run `argv`, appending its output to `log`; returns the seconds it took."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, argv))}\n")
        out.flush()
        try:
            result = subprocess.run(list(map(str, argv)), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=cwd, timeout=timeout,
                                    env={**os.environ, **(env or {})})
        except FileNotFoundError as exc:
            raise step_error(step, f"{argv[0]} is not installed ({exc.strerror})", None, fix)
        except subprocess.TimeoutExpired:
            raise step_error(step, f"timed out after {timeout:.0f} s", log, fix)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise step_error(step, f"exit {result.returncode} after {elapsed:.0f} s", log, fix)
    return elapsed
