"""Garbage collection of finished jobs and unreferenced function objects.

Only what can't matter any more goes: a job is removed when it has ended (succeeded, failed,
cancelled) before the cut-off; a function object when no remaining job references it AND it
was written before the cut-off (never within the last hour): a submission uploads its
function a moment before its job record, and must not lose it to a gc running in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..core import job as jobmod
from ..errors import AksrunError, UnknownJobError

FINISHED = ("succeeded", "failed", "cancelled")
FUNCTION_GRACE = 3600.0  # seconds a fresh function object is kept whatever the cut-off


@dataclass
class GcReport:
    """What was (or, with dry_run, would be) removed, and what was kept and why."""

    dry_run: bool
    cutoff: float
    jobs: list[str] = field(default_factory=list)
    compute_only: list[str] = field(default_factory=list)  # Jobs whose store records were gone
    functions: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    kept_active: int = 0
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "cutoff": self.cutoff, "jobs": self.jobs,
                "compute_only": self.compute_only, "functions": self.functions,
                "objects": self.objects, "bytes": self.bytes, "kept_active": self.kept_active,
                "unreadable": self.unreadable}


def collect(client: Any, older_than: float, *, dry_run: bool = False,
            now: float | None = None) -> GcReport:
    """Remove jobs that ended more than `older_than` seconds ago and orphaned functions."""
    if older_than < 0:
        raise AksrunError("--older-than must not be negative; use e.g. 7d or 12h.")
    now = time.time() if now is None else now
    report = GcReport(dry_run, now - older_than)
    store = client.store
    job_ids = sorted({key.split("/")[1] for key in store.list("jobs/")
                      if key.count("/") == 2 and key.endswith("/job.json")})
    referenced: set[str] = set()
    for job_id in job_ids:
        try:
            record = client.record(job_id)
            status = client.status(job_id)
        except (AksrunError, ValueError) as exc:
            report.unreadable.append(f"{job_id}: {exc}")
            continue
        ended = status.finished or status.started or record.created
        if status.state not in FINISHED or ended >= report.cutoff:
            referenced.add(record.function_sha256)
            report.kept_active += 1
            continue
        keys = list(store.list(jobmod.job_prefix(job_id) + "/"))
        report.objects += len(keys)
        report.bytes += sum(_size(store, key) for key in keys)
        report.jobs.append(job_id)
        if not dry_run:
            try:
                client.remove(job_id)
            except UnknownJobError:
                pass  # removed meanwhile (another gc, `jobs rm`): the goal is met
    known = set(job_ids)
    for status in _compute_jobs(client):
        ended = status.finished or status.started or now
        if (status.job_id not in known and status.state in FINISHED
                and ended < report.cutoff):
            report.compute_only.append(status.job_id)
            if not dry_run:
                try:
                    client.compute.delete(client.compute.attach(status.job_id))
                except UnknownJobError:
                    pass
    for key in list(store.list(jobmod.CANCELLED_PREFIX)):  # entries whose job is gone
        if key.removeprefix(jobmod.CANCELLED_PREFIX) not in known:
            report.objects += 1
            if not dry_run:
                store.delete(key)
    keep_after = min(report.cutoff, now - FUNCTION_GRACE)
    for key in list(store.list("functions/")):
        sha = key.rsplit("/", 1)[-1].removesuffix(".pkl")
        if sha in referenced:
            continue
        try:
            if store.modified(key) >= keep_after:
                continue
            size = _size(store, key)
        except KeyError:
            continue
        report.functions.append(sha)
        report.objects += 1
        report.bytes += size
        if not dry_run:
            store.delete(key)
    return report


def _compute_jobs(client: Any) -> list[Any]:
    try:
        return list(client.list())
    except UnknownJobError:
        return []


def _size(store: Any, key: str) -> int:
    try:
        return int(store.size(key))
    except KeyError:
        return 0
