"""Listing jobs pages through the API server instead of asking for everything at once
(issue 11, item 9): a namespace with many Jobs is read in pages of `page_size`."""

from __future__ import annotations

import pytest

from aksrun.adapters import kubernetes_manifest as km
from aksrun.api.session import default_client
from tests.support.cluster_fixtures import use_cluster

pytestmark = pytest.mark.cluster


def _suspended_job(name: str) -> dict:
    """An aksrun-labelled Job that never starts a pod (suspended): cheap to have many."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {km.MANAGED_BY: "aksrun", km.LABEL_JOB_ID: name}},
        "spec": {"suspend": True, "completions": 1, "completionMode": "Indexed",
                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "runner", "image": "r.io/none:1"}]}}},
    }


def test_list_reads_the_jobs_a_page_at_a_time(request, monkeypatch):
    setup = use_cluster(request, monkeypatch, validate_manifests=False)
    from aksrun.api import session

    monkeypatch.setattr(session, "_cached", None)
    batch = setup.admin_api("BatchV1Api")
    names = [f"many-20261130-000000-{i:05d}" for i in range(12)]
    for name in names:
        batch.create_namespaced_job(setup.namespace, _suspended_job(name))
    compute = default_client().compute
    compute.page_size = 5
    before = setup.requests()[("list", "jobs")]
    listed = compute.list()
    assert sorted(s.job_id for s in listed) == names
    assert setup.requests()[("list", "jobs")] - before == 3  # 5 + 5 + 2
