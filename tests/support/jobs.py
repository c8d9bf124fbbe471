"""Which jobs a test made, found in the store rather than in compute's list: on Kubernetes a
cancelled Job is deleted with its pods and leaves the list at once, while the store keeps its
record (and `Client.status` reports it from there)."""

from __future__ import annotations

from aksrun.api.session import default_client
from aksrun.core.lifecycle import Client


def stored_job_ids(client: Client | None = None) -> set[str]:
    """The jobs whose records are in the client's store (by default the current one; each
    test has a store of its own)."""
    store = (client or default_client()).store
    return {key.split("/")[1] for key in store.list("jobs/") if key.endswith("/job.json")}
