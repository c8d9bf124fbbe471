from __future__ import annotations

import pytest

from tests.support.cluster_fixtures import ClusterSetup, use_fake_cluster


@pytest.fixture
def k8s(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ClusterSetup:
    """aksrun configured for the fake cluster (fresh namespace) and Azurite (fresh container)."""
    return use_fake_cluster(request, monkeypatch)
