"""End-to-end job lifecycle on real AKS: submit a function, wait for its result, verify the
output; a map; a remote exception with its traceback; a timeout; cancel; logs.

The scenarios are written once in tests/scenarios/lifecycle.py and also run, unmarked, on the
local backend and on the simulated cluster in `make test`; here they run against the real
cluster only (skipped, with the reason, without it)."""

from __future__ import annotations

import pytest

from tests.scenarios import LIFECYCLE_SCENARIOS, Target, scenario_id


@pytest.mark.integration
@pytest.mark.parametrize("scenario", LIFECYCLE_SCENARIOS, ids=scenario_id)
def test_job_lifecycle_on_aks(aks_target: Target, scenario) -> None:
    scenario(aks_target)
