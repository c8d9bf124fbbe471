"""Job ids: readable, sortable by time, and valid as Kubernetes object names (DNS-1123)."""

from __future__ import annotations

import re
import secrets
import time

from ..errors import UnknownJobError

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_JOB_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?-\d{8}-\d{6}-[a-z0-9]{5}$")
_MAX_PREFIX = 30


def new_job_id(function_name: str, now: float | None = None) -> str:
    """`train-20261124-101500-k3x9q`: function name, UTC time, 5 random characters."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return f"{slug(function_name)}-{stamp}-{suffix}"


def slug(name: str, limit: int = _MAX_PREFIX) -> str:
    """A DNS-1123 label fragment from a Python name (`train_model` -> `train-model`)."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:limit].strip("-")
    return text or "job"


def check_job_id(job_id: str) -> str:
    """Reject anything that isn't a job id before it reaches a store path or an API call."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise UnknownJobError(
            f"{job_id!r} is not an aksrun job id; ids look like "
            "'train-20261124-101500-k3x9q' (see `aksrun jobs ls`)."
        )
    return job_id
