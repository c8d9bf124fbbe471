"""The job record (`job.json`) and where each object of a job lives in the store."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from typing import Any

from .. import __version__
from ..errors import ConfigError, IntegrityError
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


CANCELLED_PREFIX = "cancelled/"


def cancelled_index_key(job_id: str) -> str:
    """Also written on cancel, outside the job's folder: the jobs cancelled are then one
    short listing away (`jobs ls` shows them after Kubernetes deleted their Jobs)."""
    return f"{CANCELLED_PREFIX}{job_id}"


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
    # A map without return_exceptions stops at its first error: each runner stops its chunk
    # after the first call that raised, so the caller hears of it at once.
    stop_on_error: bool = False
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
    def from_json(cls, raw: bytes | bytearray | memoryview, expected_sha256: str | None = None,
                  *, job_id: str | None = None) -> JobRecord:
        """Parse a record strictly: every field present with its type, and chunks that add
        up. Clients re-read records with no digest to check them against, so a record that
        was edited or corrupted must fail here, as an IntegrityError naming the job and its
        store key, not as a TypeError later or a wrong result."""
        raw = bytes(raw)
        where = (f"job.json of job {job_id} (store key {record_key(job_id)})" if job_id
                 else "job.json")
        corrupted = _CORRUPTED.format(job_id=job_id or "JOB_ID")
        if expected_sha256 is not None and digest([raw]) != expected_sha256:
            raise IntegrityError(
                f"{where} does not match the digest the job was launched with: the job record "
                "was changed in the store after submission, so nothing was run."
            )
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise IntegrityError(f"{where} is not valid JSON ({exc}); {corrupted}") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{where} is not a JSON object; {corrupted}")
        if data.get("format") != FORMAT:
            raise IntegrityError(f"{where} has format {data.get('format')!r}, expected {FORMAT}.")
        problem = _record_problem(data, job_id)
        if problem:
            raise IntegrityError(f"{where} {problem}; {corrupted}")
        data["chunks"] = tuple(Chunk(**c) for c in data["chunks"])
        return cls(**data)


_CORRUPTED = ("it was changed or corrupted in the store, so the job's results can't be "
              "trusted. Remove it (`aksrun jobs rm {job_id}`) and re-submit the job.")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STRINGS = ("function_name", "user", "backend", "python", "cloudpickle", "aksrun")
_COUNTS = ("calls", "chunksize", "max_parallel")


def _record_problem(data: dict[str, Any], job_id: str | None) -> str | None:
    """What is wrong with a parsed record (None if nothing): the fields a writer of this
    version produces, with their types, and chunks that tile the calls."""
    fields = {f.name for f in dataclasses.fields(JobRecord)}
    data.setdefault("stop_on_error", False)  # records written before it existed
    if set(data) != fields:
        missing, extra = sorted(fields - set(data)), sorted(set(data) - fields)
        return f"has the wrong fields (missing: {missing or 'none'}, unexpected: {extra or 'none'})"
    if not isinstance(data["job_id"], str) or (job_id is not None and data["job_id"] != job_id):
        return f"names another job ({data['job_id']!r})"
    for name in _STRINGS:
        if not isinstance(data[name], str):
            return f"has {name}={data[name]!r}, not a string"
    for name in _COUNTS:
        if not _is_int(data[name]) or data[name] < 1:
            return f"has {name}={data[name]!r}, not a whole number of at least 1"
    if not isinstance(data["function_sha256"], str) or not _SHA256.match(data["function_sha256"]):
        return f"has function_sha256={data['function_sha256']!r}, not a sha256"
    if not isinstance(data["stop_on_error"], bool):
        return f"has stop_on_error={data['stop_on_error']!r}, not true or false"
    if data["kind"] not in ("call", "map"):
        return f"has kind={data['kind']!r}, not 'call' or 'map'"
    if data["kind"] == "call" and data["calls"] != 1:
        return f"is a single call but records {data['calls']!r} calls"
    created = data["created"]
    if isinstance(created, bool) or not isinstance(created, int | float) or created != created:
        return f"has created={created!r}, not a time"
    if not isinstance(data["options"], dict):
        return "has options that are not a JSON object"
    from .options import FunctionOptions

    try:
        FunctionOptions.from_dict(data["options"])
    except (ConfigError, TypeError) as exc:
        return f"has invalid options ({exc})"
    return _chunks_problem(data["chunks"], data["calls"], data["chunksize"])


def _chunks_problem(chunks: Any, calls: int, chunksize: int) -> str | None:
    if not isinstance(chunks, list) or not chunks:
        return "has no list of chunks"
    start = 0
    for position, chunk in enumerate(chunks):
        if not isinstance(chunk, dict) or set(chunk) != {"index", "start", "calls", "sha256"}:
            return f"has a malformed chunk #{position}"
        if chunk["index"] != position or not _is_int(chunk["index"]):
            return f"has chunk #{position} with index {chunk['index']!r}"
        if chunk["start"] != start or not _is_int(chunk["start"]):
            return f"has chunk {position} starting at call {chunk['start']!r}, not {start}"
        last = position == len(chunks) - 1
        if not _is_int(chunk["calls"]) or not (
                1 <= chunk["calls"] <= chunksize and (last or chunk["calls"] == chunksize)):
            return f"has chunk {position} of {chunk['calls']!r} calls (chunksize {chunksize})"
        if not isinstance(chunk["sha256"], str) or not _SHA256.match(chunk["sha256"]):
            return f"has chunk {position} with sha256={chunk['sha256']!r}"
        start += chunk["calls"]
    if start != calls:
        return f"records {calls} calls but its chunks hold {start}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def digest_of(raw: bytes) -> str:
    return digest([raw])


# --- outputs ---------------------------------------------------------------------------------
# A task's output carries the digest of the job record its runner verified (against the digest
# compute launched it with). The output itself is verified against the digest compute reports,
# so a client that re-read job.json from the store (with no digest of its own to check it
# against) can still tell whether that record is the one the job ran.


def pack_outputs(job_digest: str, outcomes: list[Any],
                 artifacts: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A task's output document; `artifacts`: call index (as text) -> its files (path, size,
    sha256), only for calls that wrote any."""
    document: dict[str, Any] = {"job_digest": job_digest, "outcomes": outcomes}
    if artifacts:
        document["artifacts"] = artifacts
    return document


def output_artifacts(document: Any) -> dict[int, list[dict[str, Any]]]:
    """The artifact lists of a (verified) output document, by call index."""
    found = document.get("artifacts") if isinstance(document, dict) else None
    if not isinstance(found, dict):
        return {}
    return {int(call): list(entries) for call, entries in found.items()}


def unpack_outputs(document: Any) -> tuple[str | None, list[Any]]:
    """(the job digest, the outcomes) of a task's output; a runner of an earlier version wrote
    the bare list of outcomes (no digest)."""
    if isinstance(document, list):
        return None, document
    if (isinstance(document, dict) and isinstance(document.get("job_digest"), str)
            and isinstance(document.get("outcomes"), list)):
        return document["job_digest"], document["outcomes"]
    raise IntegrityError(f"a task's output has an unknown layout ({type(document).__name__}).")
