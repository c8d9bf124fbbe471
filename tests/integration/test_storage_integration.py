"""Upload and download through real Azure Storage: round trips, a large object, appends,
listing and deleting, and the job layout a run leaves behind.

The scenarios are written once in tests/scenarios/storage.py and also run, unmarked, on the
local store and on Azurite in `make test`; here they run against the real storage account
only (skipped, with the reason, without the cluster)."""

from __future__ import annotations

import pytest

from tests.scenarios import STORAGE_SCENARIOS, Target, scenario_id


@pytest.mark.integration
@pytest.mark.parametrize("scenario", STORAGE_SCENARIOS, ids=scenario_id)
def test_storage_on_azure(aks_target: Target, scenario) -> None:
    scenario(aks_target)
