"""`aksrun.output_dir()`: where a call writes the files it wants back."""

from __future__ import annotations

import os
from pathlib import Path

from ..core import artifacts as core_artifacts


def output_dir() -> Path:
    """This call's own, initially empty, directory: the files written under it are uploaded
    with the call's outcome and fetched with `future.artifacts(dest)` or `aksrun jobs
    artifacts JOB_ID --dest DIR`. Outside a remote call (`.local()`, a plain run) it is
    `./aksrun-output`, so the same code runs and leaves its files where you can see them."""
    path = Path(os.environ.get("AKSRUN_OUTPUT_DIR") or "aksrun-output")
    path.mkdir(parents=True, exist_ok=True)
    core_artifacts.handed_out += 1
    return path
