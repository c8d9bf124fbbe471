from __future__ import annotations

import pytest

from tests.support.cluster_fixtures import ClusterSetup, use_cluster


@pytest.fixture
def k8s(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ClusterSetup:
    """aksrun configured for the real test cluster (a fresh namespace, signed in as a person
    holding only aksrun's Role there) and Azurite (a fresh container)."""
    return use_cluster(request, monkeypatch)


@pytest.fixture
def simulated_target(k8s: ClusterSetup, artifact_collector):
    """The integration scenarios' target on the simulated AKS (the real control plane, the node
    agent and Azurite); a failed scenario leaves the same artifacts as on real AKS."""
    from aksrun.api.session import default_client
    from tests.scenarios.target import Target

    client = default_client()
    return artifact_collector.track(Target(
        name="simulated", store=client.store, namespace=k8s.namespace, client=client,
        timeout=120.0, details={"api_server": k8s.cluster.url},
    ))
