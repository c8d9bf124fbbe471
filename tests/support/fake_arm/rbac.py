"""Azure RBAC for the fake: built-in role definitions, assignments at scopes, ARM's check.

The definitions are the published ones (`actions`/`notActions` as listed in Microsoft's
"Azure built-in roles" reference, 2025), so a test that grants "AcrPush" gets exactly what
AcrPush allows in Azure (no control-plane reads, no ACR Tasks) and the code under test cannot
pass on a role that would be refused for real. Add a role by copying its definition.

Assignments made with `grant` (test set-up) are in force at once; those made through the
role-assignments API (`authorization.py`) carry a name, a principal type and `effective_at`,
the moment RBAC starts honouring them (ARM's caches take minutes to see a new assignment:
403 AuthorizationFailed meanwhile). `effective_roles` / `allows_data_action` answer the same
question for other stand-ins, such as a storage data-plane gate (data actions).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from .auth import Principal


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    id: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    description: str = ""

    def allows(self, action: str) -> bool:
        return any(_matches(p, action) for p in self.actions) and not any(
            _matches(p, action) for p in self.not_actions
        )

    def allows_data(self, data_action: str) -> bool:
        """Data actions are separate: `*` in `actions` (Owner) grants none of them."""
        return any(_matches(p, data_action) for p in self.data_actions) and not any(
            _matches(p, data_action) for p in self.not_data_actions
        )

    def resource(self, scope: str = "") -> dict[str, object]:
        """The definition as `GET .../roleDefinitions/{id}` shows it (at `scope`)."""
        return {
            "id": f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{self.id}",
            "name": self.id,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.name,
                "type": "BuiltInRole",
                "description": self.description,
                "assignableScopes": ["/"],
                "permissions": [{
                    "actions": list(self.actions), "notActions": list(self.not_actions),
                    "dataActions": list(self.data_actions),
                    "notDataActions": list(self.not_data_actions),
                }],
                "createdOn": "2015-02-02T21:55:09.8806423Z",
                "updatedOn": "2024-01-01T00:00:00.0000000Z",
            },
        }


_ACR = "Microsoft.ContainerRegistry/registries"
_AKS = "Microsoft.ContainerService/managedClusters"
_BLOB = "Microsoft.Storage/storageAccounts/blobServices"
_MSI = "Microsoft.ManagedIdentity/userAssignedIdentities"
_SUPPORT = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Support/*",
)

BUILTIN_ROLES: dict[str, RoleDefinition] = {
    role.name.lower(): role
    for role in (
        RoleDefinition("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", ("*",)),
        RoleDefinition(
            "Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c", ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
            ),
        ),
        RoleDefinition("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7", ("*/read",)),
        RoleDefinition("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d", (f"{_ACR}/pull/read",)),
        RoleDefinition(
            "AcrPush", "8311e382-0749-4cb8-b61a-304f252e45ec",
            (f"{_ACR}/pull/read", f"{_ACR}/push/write"),
        ),
        RoleDefinition(
            "AcrDelete", "c2f4ef07-c644-48eb-af81-4b1b4947fb11", (f"{_ACR}/artifacts/delete",)
        ),
        RoleDefinition(
            "Container Registry Tasks Contributor", "fb382eab-e894-4461-af04-94435c366c3f",
            (
                f"{_ACR}/agentpools/read",
                f"{_ACR}/agentpools/write",
                f"{_ACR}/agentpools/delete",
                f"{_ACR}/agentpools/listQueueStatus/action",
                f"{_ACR}/agentpools/operationResults/status/read",
                f"{_ACR}/agentpools/operationStatuses/read",
                f"{_ACR}/tasks/read",
                f"{_ACR}/tasks/write",
                f"{_ACR}/tasks/delete",
                f"{_ACR}/tasks/listDetails/action",
                f"{_ACR}/scheduleRun/action",
                f"{_ACR}/listBuildSourceUploadUrl/action",
                f"{_ACR}/runs/read",
                f"{_ACR}/runs/write",
                f"{_ACR}/runs/listLogSasUrl/action",
                f"{_ACR}/runs/cancel/action",
                f"{_ACR}/taskruns/read",
                f"{_ACR}/taskruns/write",
                f"{_ACR}/taskruns/delete",
                f"{_ACR}/taskruns/listDetails/action",
                f"{_ACR}/taskruns/operationStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                f"{_ACR}/read",
            ),
        ),
        RoleDefinition(
            "User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
            ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
            description="Lets you manage user access to Azure resources.",
        ),
        RoleDefinition(
            "Role Based Access Control Administrator", "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
            (
                "Microsoft.Authorization/roleAssignments/write",
                "Microsoft.Authorization/roleAssignments/delete",
                "*/read",
                "Microsoft.Support/*",
            ),
        ),
        RoleDefinition(
            "Storage Account Contributor", "17d1049b-9a84-46fb-8f53-869881c3d3ab",
            (
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Insights/diagnosticSettings/*",
                "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
                "Microsoft.ResourceHealth/availabilityStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Storage/storageAccounts/*",
                "Microsoft.Support/*",
            ),
        ),
        RoleDefinition(
            "Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            (
                f"{_BLOB}/containers/delete",
                f"{_BLOB}/containers/read",
                f"{_BLOB}/containers/write",
                f"{_BLOB}/generateUserDelegationKey/action",
            ),
            data_actions=(
                f"{_BLOB}/containers/blobs/delete",
                f"{_BLOB}/containers/blobs/read",
                f"{_BLOB}/containers/blobs/write",
                f"{_BLOB}/containers/blobs/move/action",
                f"{_BLOB}/containers/blobs/add/action",
            ),
            description="Allows for read, write and delete access to Azure Storage blob "
            "containers and data",
        ),
        RoleDefinition(
            "Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
            (f"{_BLOB}/containers/*", f"{_BLOB}/generateUserDelegationKey/action"),
            data_actions=(f"{_BLOB}/containers/blobs/*",),
        ),
        RoleDefinition(
            "Storage Blob Data Reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
            (f"{_BLOB}/containers/read", f"{_BLOB}/generateUserDelegationKey/action"),
            data_actions=(f"{_BLOB}/containers/blobs/read",),
        ),
        RoleDefinition(
            "Azure Kubernetes Service Cluster User Role", "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
            (f"{_AKS}/listClusterUserCredential/action", f"{_AKS}/read"),
            description="List cluster user credential action.",
        ),
        RoleDefinition(
            "Azure Kubernetes Service Cluster Admin Role", "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
            (
                f"{_AKS}/listClusterAdminCredential/action",
                f"{_AKS}/accessProfiles/listCredential/action",
                f"{_AKS}/read",
                f"{_AKS}/runcommand/action",
            ),
            description="List cluster admin credential action.",
        ),
        RoleDefinition(
            "Azure Kubernetes Service RBAC Writer", "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",
            (
                "Microsoft.Authorization/*/read",
                "Microsoft.Resources/subscriptions/operationresults/read",
                "Microsoft.Resources/subscriptions/read",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
            ),
            data_actions=tuple(f"{_AKS}/{kind}" for kind in (
                "apps/controllerrevisions/read", "apps/daemonsets/*", "apps/deployments/*",
                "apps/replicasets/*", "apps/statefulsets/*",
                "autoscaling/horizontalpodautoscalers/*", "batch/cronjobs/*",
                "coordination.k8s.io/leases/read", "coordination.k8s.io/leases/write",
                "coordination.k8s.io/leases/delete", "discovery.k8s.io/endpointslices/read",
                "batch/jobs/*", "configmaps/*", "endpoints/*", "events.k8s.io/events/read",
                "events/*", "extensions/daemonsets/*", "extensions/deployments/*",
                "extensions/ingresses/*", "extensions/networkpolicies/*",
                "extensions/replicasets/*", "limitranges/read", "metrics.k8s.io/pods/read",
                "metrics.k8s.io/nodes/read", "namespaces/read",
                "networking.k8s.io/ingresses/*", "networking.k8s.io/networkpolicies/*",
                "persistentvolumeclaims/*", "pods/*", "policy/poddisruptionbudgets/*",
                "replicationcontrollers/*", "resourcequotas/read", "secrets/*",
                "serviceaccounts/*", "services/*",
            )),
            description="Allows read/write access to most objects in a namespace.",
        ),
        RoleDefinition(
            "Managed Identity Operator", "f1a07417-d97a-45cb-824c-7a7467783830",
            (f"{_MSI}/*/read", f"{_MSI}/*/assign/action", *_SUPPORT),
            description="Read and Assign User Assigned Identity",
        ),
        RoleDefinition(
            "Managed Identity Contributor", "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
            (
                f"{_MSI}/read", f"{_MSI}/write", f"{_MSI}/delete",
                f"{_MSI}/federatedIdentityCredentials/read",
                f"{_MSI}/federatedIdentityCredentials/write",
                f"{_MSI}/federatedIdentityCredentials/delete",
                f"{_MSI}/revokeTokens/action",
                *_SUPPORT,
            ),
            description="Create, Read, Update, and Delete User Assigned Identity",
        ),
    )
}


def role(name_or_id: str) -> RoleDefinition:
    """A built-in role by name (any case) or definition id; ValueError names the known ones."""
    key = name_or_id.strip().lower()
    if key in BUILTIN_ROLES:
        return BUILTIN_ROLES[key]
    for definition in BUILTIN_ROLES.values():
        if definition.id == key or key.endswith(f"/roledefinitions/{definition.id}"):
            return definition
    known = ", ".join(sorted(r.name for r in BUILTIN_ROLES.values()))
    raise ValueError(f"unknown role {name_or_id!r}; the fake knows: {known}")


@dataclass(frozen=True)
class RoleAssignment:
    principal: str  # object id or app (client) id
    role: RoleDefinition
    scope: str
    # Set for assignments made through the role-assignments API:
    name: str | None = None  # the assignment's GUID name
    principal_type: str | None = None  # as the request gave it (None: ARM looked it up)
    description: str | None = None
    created_by: str | None = None  # object id of the caller that made it
    created_on: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    effective_at: float = 0.0  # time.monotonic() from which RBAC honours it

    @property
    def effective(self) -> bool:
        return time.monotonic() >= self.effective_at


class Rbac:
    """Role assignments and ARM's allow/deny decision; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assignments: list[RoleAssignment] = []

    @property
    def assignments(self) -> list[RoleAssignment]:
        with self._lock:
            return list(self._assignments)

    def grant(self, principal: str, role_name: str, scope: str) -> RoleAssignment:
        assignment = RoleAssignment(principal.lower(), role(role_name), normalize_scope(scope))
        with self._lock:
            self._assignments.append(assignment)
        return assignment

    def add(self, assignment: RoleAssignment) -> RoleAssignment:
        """Store an assignment made through the API (named, maybe not yet effective)."""
        with self._lock:
            self._assignments.append(assignment)
        return assignment

    def named(self, scope: str, name: str) -> RoleAssignment | None:
        """The API-made assignment `name` at exactly `scope` (any case)."""
        where = normalize_scope(scope).lower()
        with self._lock:
            for a in self._assignments:
                if a.name and a.name.lower() == name.lower() and a.scope.lower() == where:
                    return a
        return None

    def remove(self, assignment: RoleAssignment) -> bool:
        with self._lock:
            for i, a in enumerate(self._assignments):
                if a is assignment:
                    del self._assignments[i]
                    return True
        return False

    def remove_principal(self, principal: str) -> int:
        """Drop every assignment of a principal (its identity was deleted); returns how many.
        Azure leaves such assignments behind as 'Unknown'; they grant nothing either way."""
        with self._lock:
            keep = [a for a in self._assignments if a.principal != principal.lower()]
            removed = len(self._assignments) - len(keep)
            self._assignments = keep
        return removed

    def effective_roles(self, principals: str | Iterable[str], scope: str) -> list[RoleDefinition]:
        """The roles in force for these ids (object and/or app id) over `scope`."""
        ids = {principals.lower()} if isinstance(principals, str) else {
            p.lower() for p in principals if p
        }
        return [
            a.role for a in self.assignments
            if a.principal in ids and a.effective and scope_covers(a.scope, scope)
        ]

    def allows_data_action(
        self, principals: str | Iterable[str], data_action: str, scope: str
    ) -> bool:
        return any(r.allows_data(data_action) for r in self.effective_roles(principals, scope))

    def revoke(self, principal: str, role_name: str | None = None, scope: str | None = None) -> int:
        """Remove matching assignments; returns how many went."""
        wanted = role(role_name) if role_name else None
        where = normalize_scope(scope) if scope else None
        with self._lock:
            keep = [
                a for a in self._assignments
                if not (
                    a.principal == principal.lower()
                    and (wanted is None or a.role == wanted)
                    and (where is None or a.scope.lower() == where.lower())
                )
            ]
            removed = len(self._assignments) - len(keep)
            self._assignments = keep
        return removed

    def allows(self, principal: Principal, action: str, scope: str) -> bool:
        ids = {principal.object_id.lower(), principal.app_id.lower()} - {""}
        return any(r.allows(action) for r in self.effective_roles(ids, scope))


def normalize_scope(scope: str) -> str:
    return "/" + scope.strip().strip("/")


def scope_covers(assignment_scope: str, scope: str) -> bool:
    """An assignment applies to its scope and everything below it (segment-wise, any case)."""
    outer = [s.lower() for s in assignment_scope.strip("/").split("/") if s]
    inner = [s.lower() for s in scope.strip("/").split("/") if s]
    return inner[: len(outer)] == outer


def _matches(pattern: str, action: str) -> bool:
    return _compiled(pattern).fullmatch(action) is not None


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    """RBAC wildcards: `*` stands for any run of characters, slashes included; no case."""
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.IGNORECASE)
