"""`aksrun gc` on the real control plane: a finished job's Kubernetes Job goes too."""

from __future__ import annotations

import time

import pytest

import aksrun
from aksrun.api.session import default_client
from aksrun.gc.collect import collect
from tests.support.cluster_fixtures import use_cluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@aksrun.function(cpu="100m", memory="128Mi")
def triple(x):
    return 3 * x


def test_gc_removes_the_job_from_kubernetes_and_the_store(request, monkeypatch):
    setup = use_cluster(request, monkeypatch)
    from aksrun.api import session

    monkeypatch.setattr(session, "_cached", None)
    client = default_client()
    fut = triple.submit(7)
    assert fut.result(timeout=180) == 21
    wait_for(lambda: client.status(fut.job_id).state == "succeeded", timeout=60)
    assert len(setup.jobs(live_only=True)) == 1
    report = collect(client, 3600, now=time.time() + 86400)
    assert report.jobs == [fut.job_id]
    wait_for(lambda: setup.jobs(live_only=True) == [], timeout=60)
    assert list(client.store.list("jobs/")) == []
