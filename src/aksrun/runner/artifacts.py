"""The runner's side of artifacts: each call gets its own directory (AKSRUN_OUTPUT_DIR, under
the task's temporary directory: an emptyDir volume in a pod); when the call has finished, its
files are uploaded to the store, and listed with their sha256 in the task's output."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..core.artifacts import artifact_key, file_sha256

OUTPUT_DIR_ENV = "AKSRUN_OUTPUT_DIR"


def output_root() -> Path:
    return Path(tempfile.gettempdir()) / f"aksrun-outputs-{os.getpid()}"


def call_dir(root: str | os.PathLike[str], call: int) -> str:
    return f"{os.fspath(root)}/{call:07d}"


def running_dir(root: str | os.PathLike[str], worker: int) -> str:
    """A worker's artifacts directory, $AKSRUN_OUTPUT_DIR for each call it runs, filed under
    the call's index (file_away) when the call has ended."""
    return f"{os.fspath(root)}/running-{worker}"


def file_away(directory: str, destination: str) -> bool:
    """Move a call's files from its worker's directory to the call's: whether there were
    any to move (the directory existed)."""
    try:
        os.rename(directory, destination)
    except FileNotFoundError:
        return False
    except OSError:  # the call's directory has files already (a crashed attempt's): merge
        shutil.copytree(directory, destination, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
    return True


class ArtifactUploader:
    def __init__(self, store: Any, job_id: str, root: Path) -> None:
        self.store, self.job_id, self.root = store, job_id, root
        self.manifests: dict[str, list[dict[str, Any]]] = {}

    def collect(self, call: int) -> None:
        """Upload what the call left in its directory (even if it crashed: what it wrote
        before is kept), then remove the directory. Regular files only: a symlink is
        reported and skipped (it could point anywhere on the node)."""
        path = call_dir(self.root, call)
        if not os.path.isdir(path):  # most calls write nothing: one stat
            return
        directory = Path(path)
        entries = []
        for path in sorted(p for p in directory.rglob("*") if not p.is_dir()):
            relative = path.relative_to(directory).as_posix()
            if path.is_symlink() or not path.is_file():
                print(f"[aksrun] artifact {relative} of call {call} is not a regular file "
                      "(a symlink, socket or device); it was not kept", file=sys.stderr)
                continue
            sha256, size = file_sha256(path)
            self.store.put_file(artifact_key(self.job_id, call, relative), str(path))
            entries.append({"path": relative, "size": size, "sha256": sha256})
        shutil.rmtree(directory, ignore_errors=True)
        if entries:
            self.manifests[str(call)] = entries

    def left(self) -> list[int]:
        """The calls whose directories are still there: written to without asking for
        `aksrun.output_dir()` (a subprocess given $AKSRUN_OUTPUT_DIR), so collected at the
        task's end."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return sorted(int(name) for name in names if name.isdigit())

    def discard(self, call: int) -> None:
        """A call about to run again: what its failed attempt wrote goes."""
        shutil.rmtree(call_dir(self.root, call), ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
