"""Every shared scenario (tests/scenarios) on the local backend: LocalCompute + LocalStore,
configured as a user would (AKSRUN_BACKEND=local). The same scenarios run on the simulated
cluster (tests/cluster) and, marked `integration`, on real AKS (tests/integration)."""

from __future__ import annotations

import pytest

from aksrun.api.session import default_client
from tests.scenarios import LIFECYCLE_SCENARIOS, STORAGE_SCENARIOS, Target, scenario_id
from tests.support import artifacts

artifact_collector = artifacts.artifact_collector  # a failed scenario's jobs are saved


@pytest.fixture
def local_target(monkeypatch: pytest.MonkeyPatch, artifact_collector) -> Target:
    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    client = default_client()
    target = Target(name="local", store=client.store, namespace=None, client=client,
                    timeout=60.0, details={"backend": "local"})
    return artifact_collector.track(target)


@pytest.mark.parametrize("scenario", LIFECYCLE_SCENARIOS, ids=scenario_id)
def test_lifecycle_scenario_local(local_target: Target, scenario) -> None:
    scenario(local_target)


@pytest.mark.parametrize("scenario", STORAGE_SCENARIOS, ids=scenario_id)
def test_storage_scenario_local(local_target: Target, scenario) -> None:
    scenario(local_target)
