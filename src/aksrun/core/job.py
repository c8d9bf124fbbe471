"""The job record (`job.json`) and where each object of a job lives in the store."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

from .. import __version__
from ..errors import IntegrityError
from .envelope import digest

FORMAT = 1


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def record_key(job_id: str) -> str:
    return f"jobs/{job_id}/job.json"


def input_key(job_id: str, index: int) -> str:
    return f"jobs/{job_id}/inputs/{index:05d}.pkl"


def output_key(job_id: str, index: int) -> str:
    return f"jobs/{job_id}/outputs/{index:05d}.pkl"


def log_key(job_id: str, index: int) -> str:
    return f"jobs/{job_id}/logs/{index:05d}.log"


def outcome_key(job_id: str) -> str:
    """How a job ended when compute said so (a Job deleted after failing fast keeps no
    reason of its own)."""
    return f"jobs/{job_id}/outcome.json"


def cancel_key(job_id: str) -> str:
    """Written when a user cancels: the store outlives the compute's own record."""
    return f"jobs/{job_id}/cancelled"


def function_key(sha256: str) -> str:
    return f"functions/{sha256}.pkl"


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def cloudpickle_version() -> str:
    import cloudpickle

    return cloudpickle.__version__


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # index of its first call in the job
    calls: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """Everything a runner (or a re-attaching client) needs, and the digest of every object."""

    job_id: str
    function_name: str
    function_sha256: str
    kind: str  # "call" | "map"
    calls: int
    chunksize: int
    chunks: tuple[Chunk, ...]
    options: dict[str, Any]
    max_parallel: int
    user: str
    backend: str
    created: float = dataclasses.field(default_factory=time.time)
    python: str = dataclasses.field(default_factory=python_version)
    cloudpickle: str = dataclasses.field(default_factory=cloudpickle_version)
    aksrun: str = __version__
    format: int = FORMAT

    def to_json(self) -> bytes:
        data = dataclasses.asdict(self)
        data["chunks"] = [dataclasses.asdict(c) for c in self.chunks]
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @property
    def sha256(self) -> str:
        return digest([self.to_json()])

    @classmethod
    def from_json(cls, raw: bytes | bytearray | memoryview, expected_sha256: str | None = None):
        raw = bytes(raw)
        if expected_sha256 is not None and digest([raw]) != expected_sha256:
            raise IntegrityError(
                "job.json does not match the digest the job was launched with: the job record "
                "was changed in the store after submission, so nothing was run."
            )
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise IntegrityError(f"job.json has format {data.get('format')!r}, expected {FORMAT}.")
        data["chunks"] = tuple(Chunk(**c) for c in data["chunks"])
        return cls(**data)


def digest_of(raw: bytes) -> str:
    return digest([raw])
