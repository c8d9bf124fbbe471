"""A strict fake of Azure Resource Manager for tests: see `server.FakeArm`.

Core: `server` (HTTPS, ARM's checks and headers), `routing` (what a provider plugs in),
`auth`, `rbac`, `errors`, `validation` (bodies against the SDK's own models). Providers: one
module per namespace (`container_registry`). `builds` is the ACR executor contract.
"""

from .builds import BuildJob, BuildResult, Executor
from .container_registry import ContainerRegistry, Registry, Run
from .errors import ArmError
from .routing import ArmRequest, ArmResponse, Provider, Route
from .server import FakeArm, RequestRecord, ResourceGroup, Subscription

__all__ = [
    "ArmError",
    "ArmRequest",
    "ArmResponse",
    "BuildJob",
    "BuildResult",
    "ContainerRegistry",
    "Executor",
    "FakeArm",
    "Provider",
    "Registry",
    "RequestRecord",
    "ResourceGroup",
    "Route",
    "Run",
    "Subscription",
]
