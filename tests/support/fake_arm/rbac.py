"""Azure RBAC for the fake: built-in role definitions, assignments at scopes, ARM's check.

The definitions are the published ones (`actions`/`notActions` as listed in Microsoft's
"Azure built-in roles" reference, 2025), so a test that grants "AcrPush" gets exactly what
AcrPush allows in Azure (no control-plane reads, no ACR Tasks) and the code under test cannot
pass on a role that would be refused for real. Add a role by copying its definition.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from .auth import Principal


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    id: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    def allows(self, action: str) -> bool:
        return any(_matches(p, action) for p in self.actions) and not any(
            _matches(p, action) for p in self.not_actions
        )


_ACR = "Microsoft.ContainerRegistry/registries"

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
        return any(
            a.principal in ids and scope_covers(a.scope, scope) and a.role.allows(action)
            for a in self.assignments
        )


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
