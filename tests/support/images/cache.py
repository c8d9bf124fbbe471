"""Where the image toolchain keeps what it made once, and the lock that stops two processes
from making the same thing at the same time.

Everything here is slow to make (a Debian root file system, a few dozen wheels from PyPI, a
built image) and never changes for the same recipe, so it lives outside the repository in
one directory that `make test`, CI on the same machine and a person's shell all share:
`AKSRUN_IMAGES_CACHE`, else `$XDG_CACHE_HOME/aksrun-images` (~/.cache/aksrun-images).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_VAR = "AKSRUN_IMAGES_CACHE"
# as the process started: the test session clears AKSRUN_* variables around every test
_AT_START = os.environ.get(ENV_VAR, "")


def cache_root() -> Path:
    """The cache directory (created on first use)."""
    chosen = os.environ.get(ENV_VAR) or _AT_START
    if chosen:
        root = Path(chosen)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "aksrun-images"
    root.mkdir(parents=True, exist_ok=True)
    return root


def recipe_hash(*parts: str | bytes) -> str:
    """A short digest of everything a cached artifact depends on: a changed recipe is a new
    cache entry, an unchanged one is never rebuilt."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


@contextmanager
def locked(name: str, root: Path | None = None) -> Iterator[None]:
    """Exclusive across processes (flock): a second builder waits, then finds the result."""
    folder = (root or cache_root()) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
