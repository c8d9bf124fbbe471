"""Artifacts: the files a call writes under `aksrun.output_dir()`, kept in the store beside
its job, each with its sha256 in the task's output (which is verified as a whole), so a file
is checked like every other object before anyone gets it.

Store layout: jobs/<job id>/artifacts/<call, 7 digits>/<relative path>. The list of a call's
files (path, size, sha256) travels in its task's output document, written only after every
upload finished: a file whose upload failed or was cut is never listed, so never handed out.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import AksrunError, IntegrityError
from ..ports.store import Store

HASH_BLOCK = 1 << 20
# How many times this process handed out a call's output directory (`aksrun.output_dir()`).
# The runner's worker reads it after each call: a call that asked for none (most) costs the
# runner no look at the disk; files written there by other means are collected at the end.
handed_out = 0


def artifact_key(job_id: str, call: int, path: str) -> str:
    return f"jobs/{job_id}/artifacts/{call:07d}/{path}"


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256, size) of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as src:
        while block := src.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def safe_relative(path: str) -> PurePosixPath:
    """A manifest's path, refused if it could land outside the destination."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or any(part in ("", ".", "..") for part in pure.parts):
        raise IntegrityError(f"an artifact's recorded path {path!r} is not a plain relative "
                             "path; nothing was downloaded.")
    return pure


def download(store: Store, job_id: str, entries: Sequence[Mapping[str, Any]], call: int,
             dest: Path) -> list[Path]:
    """Download one call's files under `dest`, each verified against its sha256 before it
    appears there (through a temporary file beside it). A file already at a destination
    path is kept if it is identical and refused (ArtifactExistsError) if not: nothing of
    the user's is overwritten."""
    targets = []
    for entry in entries:
        relative = safe_relative(str(entry["path"]))
        target = dest.joinpath(*relative.parts)
        if target.exists() and (not target.is_file()
                                or file_sha256(target)[0] != entry["sha256"]):
            raise ArtifactExistsError(
                f"{target} already exists and differs from artifact {relative} of call {call} "
                f"of job {job_id}; nothing was overwritten. Choose another destination "
                "(--dest) or move that file away.")
        targets.append((entry, relative, target))
    written = []
    for entry, relative, target in targets:
        if target.exists():  # identical: already there
            written.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".aksrun-")
        os.close(fd)
        try:
            store.get_file(artifact_key(job_id, call, str(relative)), tmp)
            actual, size = file_sha256(tmp)
            if actual != entry["sha256"] or size != entry["size"]:
                raise IntegrityError(
                    f"artifact {relative} of call {call} of job {job_id} does not match its "
                    f"recorded sha256 (expected {str(entry['sha256'])[:16]}..., found "
                    f"{actual[:16]}...): it was changed or corrupted in the store, so it was "
                    "not written to the destination.")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(target)
    return written


class ArtifactExistsError(AksrunError, FileExistsError):
    """A different file is already where an artifact would be downloaded."""
