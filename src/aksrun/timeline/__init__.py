"""A picture of a job: each task on a time axis, waiting, running, each retry and why, and
how it ended, with its calls' counts (`aksrun jobs show ID --timeline FILE.png`).

Drawn from what the store and the compute already record (no client needs to have watched
the job); matplotlib comes with the `plot` extra and is imported only to draw.
"""

from __future__ import annotations

import os
from pathlib import Path


def save(job_id: str, path: str | os.PathLike[str],
         size: tuple[int, int] | None = None) -> Path:
    """Draw `job_id`'s timeline into `path`: .png, .svg or .html (an SVG with a tooltip per
    attempt, in a page with a table of every attempt). `size` is (width, height) in pixels;
    by default it fits the number of tasks."""
    from ..api.session import default_client
    from .collect import collect
    from .draw import output_format, render, require_matplotlib

    output_format(path)  # bad input and a missing extra are said before any work
    require_matplotlib()
    return render(collect(default_client(), job_id), path, size)
