"""Scenarios written once, run on every target: the local backend, the simulated cluster (the real
Kubernetes control plane built from upstream, its node agent, and Azurite) and real AKS.

A scenario is a plain function `scenario_xxx(target) -> None` that asserts. The fixture that
produces the target has already configured aksrun through the environment, so a scenario uses
the public API (`aksrun.function`, `.submit`, `.map`, `aksrun.get`,
`aksrun.api.session.default_client()`) and, for storage, `target.store`.

`LIFECYCLE_SCENARIOS` and `STORAGE_SCENARIOS` list them; the test files parametrize over these
lists, so a scenario added here runs on every target without touching a test file.
"""

from __future__ import annotations

from collections.abc import Callable

from .lifecycle import LIFECYCLE_SCENARIOS
from .storage import STORAGE_SCENARIOS
from .target import Target

Scenario = Callable[[Target], None]

ALL_SCENARIOS: list[Scenario] = [*LIFECYCLE_SCENARIOS, *STORAGE_SCENARIOS]


def scenario_id(scenario: Scenario) -> str:
    """A readable test id: `scenario_map_results_in_order` -> `map_results_in_order`."""
    return scenario.__name__.removeprefix("scenario_")


__all__ = [
    "ALL_SCENARIOS",
    "LIFECYCLE_SCENARIOS",
    "STORAGE_SCENARIOS",
    "Scenario",
    "Target",
    "scenario_id",
]
