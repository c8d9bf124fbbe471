"""Every shared scenario (tests/scenarios) on the simulated AKS: KubernetesCompute on the real
control plane (kube-apiserver, Job controller, scheduler; the node agent runs the real runner)
and BlobStore on Azurite, through the
`simulated_target` fixture. These are the very scenarios tests/integration runs, marked
`integration`, on real AKS: their logic is proven here, offline, on every `make test`."""

from __future__ import annotations

import pytest

from tests.scenarios import LIFECYCLE_SCENARIOS, STORAGE_SCENARIOS, Target, scenario_id

pytestmark = [pytest.mark.cluster, pytest.mark.azurite]


@pytest.mark.parametrize("scenario", LIFECYCLE_SCENARIOS, ids=scenario_id)
def test_lifecycle_scenario_simulated(simulated_target: Target, scenario) -> None:
    scenario(simulated_target)


@pytest.mark.parametrize("scenario", STORAGE_SCENARIOS, ids=scenario_id)
def test_storage_scenario_simulated(simulated_target: Target, scenario) -> None:
    scenario(simulated_target)
