"""A strict fake of Azure Resource Manager for tests: see `server.FakeArm`.

Core: `server` (HTTPS, ARM's checks and headers), `routing` (what a provider plugs in),
`auth`, `rbac`, `errors`, `validation` (bodies against the SDK's own models), `operations`
(long-running operations), `directory` (Entra ID objects) and `graph` (Microsoft Graph's
lookups on the same server). Providers: one module per namespace (`container_registry`,
`container_service`, `managed_identity`, `authorization`, `storage`). `builds` is the ACR
executor contract.
"""

from .builds import BuildJob, BuildResult, Executor
from .container_registry import ContainerRegistry, Registry, Run
from .container_service import ContainerService, ManagedCluster
from .directory import DirectoryObject
from .errors import ArmError
from .managed_identity import Federation, ManagedIdentity, UserAssignedIdentity
from .rbac import RoleAssignment, RoleDefinition
from .routing import ArmRequest, ArmResponse, Provider, Route
from .server import FakeArm, RequestRecord, ResourceGroup, Subscription
from .storage import Storage, StorageAccount

__all__ = [
    "ArmError",
    "ArmRequest",
    "ArmResponse",
    "BuildJob",
    "BuildResult",
    "ContainerRegistry",
    "ContainerService",
    "DirectoryObject",
    "Executor",
    "FakeArm",
    "Federation",
    "ManagedCluster",
    "ManagedIdentity",
    "Provider",
    "Registry",
    "RequestRecord",
    "ResourceGroup",
    "RoleAssignment",
    "RoleDefinition",
    "Route",
    "Run",
    "Storage",
    "StorageAccount",
    "Subscription",
    "UserAssignedIdentity",
]
