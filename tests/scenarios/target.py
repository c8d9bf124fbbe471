"""What a scenario runs against: a `Target`.

The fixture that makes a target has already applied the aksrun configuration to the
environment (AKSRUN_BACKEND, AKSRUN_STORE, KUBECONFIG, ...), exactly as a user would, so a
scenario only uses the public API and `target.store`. The target adds what the scenarios and
the artifact collector need around that:

- `tag`: unique per test. Remote functions run through `target.function(...)` get the job name
  `<tag>-<function>`, so every job a test created can be found again by prefix (in the store:
  `jobs/<tag>-...`), even a map's, whose id the iterator does not expose;
- `jobs`: job ids the scenarios registered with `track()` (merged with those found by tag);
- `collect(target, job_id, directory)`: compute-side artifacts of one job of a failed test
  (default: found from the client's compute: Kubernetes pod logs, manifests and events, or
  the local supervisor's job folder); the store's side is collected for every target;
- `client`: the aksrun Client the fixture configured (default: `default_client()` when used);
- `cleanup`: what to remove after the test (real AKS: the test's Jobs and store objects);
- `timeout`: how long one job may take end to end. Real AKS needs generous values (a pod can
  take tens of seconds to be scheduled and pull its image); every wait is still bounded.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aksrun.core.ids import slug
from aksrun.ports.store import Store

MiB = 1024 * 1024
# Small requests so the jobs fit on any node pool (and start fast on a busy cluster).
DEFAULT_OPTIONS: dict[str, Any] = {"cpu": "250m", "memory": "512Mi"}


def _new_tag() -> str:
    return "s" + secrets.token_hex(3)  # `s1a2b3c`: short, so job names keep the function's


@dataclass(repr=False)
class Target:
    """One place the scenarios run: local, simulated (real control plane + node agent +
    Azurite), or AKS."""

    name: str
    store: Store
    namespace: str | None = None
    collect: Callable[[Target, str, Path], None] | None = None
    cleanup: Callable[[Target], None] | None = None
    timeout: float = 120.0
    large_object_bytes: int = 40 * MiB  # above BlobStore's 16 MiB single-put size: parallel blocks
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))
    tag: str = field(default_factory=_new_tag)
    jobs: list[str] = field(default_factory=list)
    client: Any = None
    details: dict[str, Any] = field(default_factory=dict)  # shown in the artifacts' summary

    def __repr__(self) -> str:
        return f"Target({self.name!r}, tag={self.tag!r}, namespace={self.namespace!r})"

    def function(self, func: Callable[..., Any], **options: Any):
        """`aksrun.function(**options)(func)`, named `<tag>-<function>` so its jobs can be
        found again, with this target's default resources unless overridden."""
        import aksrun

        merged = {**self.options, **options}
        merged.setdefault("name", f"{self.tag}-{func.__name__}")
        return aksrun.function(**merged)(func)

    def track(self, job_id: str) -> str:
        """Register a job this test created (for the artifacts and the clean-up)."""
        if job_id not in self.jobs:
            self.jobs.append(job_id)
        return job_id

    @property
    def job_prefix(self) -> str:
        """The prefix of every job id of this test's `target.function(...)` calls."""
        return f"{slug(self.tag)}-"

    def job_ids(self) -> list[str]:
        """Every job of this test: the tracked ones and those found in the store by tag."""
        found = list(self.jobs)
        try:
            keys = list(self.store.list(f"jobs/{self.job_prefix}"))
        except Exception:  # the collector must work even when the store does not
            keys = []
        for key in keys:
            job_id = key.split("/")[1]
            if job_id not in found:
                found.append(job_id)
        return found

    def jobs_of(self, func: Callable[..., Any]) -> list[str]:
        """The job ids (in the store) of `target.function(func)`, oldest first."""
        prefix = f"jobs/{slug(f'{self.tag}-{func.__name__}')}-"
        ids = sorted({key.split("/")[1] for key in self.store.list(prefix)})
        for job_id in ids:
            self.track(job_id)
        return ids

    def scratch(self, what: str = "") -> str:
        """A store prefix of this test's own for storage scenarios: `scenarios/<tag>/<what>`."""
        return f"scenarios/{self.tag}/{what}".rstrip("/")
