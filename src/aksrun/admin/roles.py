"""Role assignments aksrun makes: deterministic names, `principalType` always set.

- The name is uuid5 of (scope, role, principal): creating twice finds the first, and removal
  recognises aksrun's own assignments by recomputing the name from an assignment's own
  properties. An assignment someone made by hand never matches, so it is never removed.
- `principalType` is always sent: without it ARM looks the principal up in Entra ID, and a
  brand-new identity is not there yet (PrincipalNotFound for minutes).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from . import arm
from .context import AdminContext
from .steps import ABSENT, CREATED, FOUND, REMOVED, WOULD_CREATE, WOULD_REMOVE

# Built-in role definition ids (the same in every tenant and cloud).
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
# The narrowest built-in Kubernetes data-plane role that can create and delete Jobs: granted
# at the namespace's scope only, on clusters that authorise with Azure RBAC.
AKS_RBAC_WRITER = "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"
# listClusterUserCredential: the person's client fetches the kubeconfig from ARM.
AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
# Reader on the person's own identity: `aksrun doctor` checks its federated credential.
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_NAMES = {
    READER: "Reader",
    ACR_PULL: "AcrPull",
    STORAGE_BLOB_DATA_CONTRIBUTOR: "Storage Blob Data Contributor",
    AKS_RBAC_WRITER: "Azure Kubernetes Service RBAC Writer",
    AKS_CLUSTER_USER: "Azure Kubernetes Service Cluster User Role",
}
_NAMESPACE = uuid.UUID("5f0c6f5e-0b7a-5d59-9a43-61a6b9f0c2a1")  # aksrun's, fixed forever
_GUID_TAIL = re.compile(r"([0-9a-fA-F-]{36})$")


@dataclass(frozen=True)
class Grant:
    """One role for one principal at one scope."""

    scope: str
    role: str  # role definition GUID
    principal_id: str
    principal_type: str  # User | ServicePrincipal | Group
    label: str  # who, in words ("alice's identity")

    @property
    def name(self) -> str:
        return assignment_name(self.scope, self.role, self.principal_id)

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)


def assignment_name(scope: str, role: str, principal_id: str) -> str:
    key = f"{scope.strip('/').lower()}|{role.lower()}|{principal_id.lower()}"
    return str(uuid.uuid5(_NAMESPACE, key))


def role_definition_id(subscription_id: str, role: str) -> str:
    return (f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}")


def ensure(ctx: AdminContext, grant: Grant, *, scope_planned: bool = False) -> str:
    """Assign (or find) `grant`; returns the step's state. `scope_planned`: the scope itself
    would only be created by this dry run, so there is nothing to look up."""
    kind = "role assignment"
    what = f"{grant.role_name} for {grant.label}"
    where = f"on {_short(grant.scope)}"
    if not scope_planned:
        found = _get(ctx, grant.scope, grant.name)
        if found is not None:
            ctx.log.add(kind, what, FOUND, where)
            return FOUND
    if ctx.dry_run:
        ctx.log.add(kind, what, WOULD_CREATE, where)
        return WOULD_CREATE
    state = _create(ctx, grant)
    ctx.log.add(kind, what, state, where if state == CREATED else f"{where} (assigned before, "
                "outside aksrun; left as it is)")
    return state


def _create(ctx: AdminContext, grant: Grant) -> str:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

    from ..adapters.azure.arm import arm_error_code, arm_error_message

    principal_type = grant.principal_type
    for _ in range(2):
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=role_definition_id(ctx.target.subscription_id, grant.role),
            principal_id=grant.principal_id, principal_type=principal_type,
            description=f"aksrun: {grant.role_name} for {grant.label}")

        def create(params: Any = parameters) -> str:
            try:
                ctx.authorization.role_assignments.create(grant.scope, grant.name, params)
            except HttpResponseError as exc:
                code = arm_error_code(exc)
                if code == "RoleAssignmentExists":  # the same grant under another name
                    return FOUND
                if code == "UnmatchedPrincipalType":
                    return "retype:" + arm_error_message(exc)
                raise
            return CREATED

        state = arm.call(f"assigning {grant.role_name} to {grant.label}", create,
                         **ctx.target.where())
        if not state.startswith("retype:"):
            return state
        # ARM names the principal's real type when the guess (Graph unreadable) was wrong.
        real = re.search(r"type '(\w+)'", state)
        if not real or real.group(1) == principal_type:
            from .errors import AdminError

            raise AdminError(f"assigning {grant.role_name} to {grant.label}: {state[7:]}")
        principal_type = real.group(1)
    return CREATED


def _get(ctx: AdminContext, scope: str, name: str) -> Any:
    return arm.get_or_none(f"reading role assignment {name}",
                           lambda: ctx.authorization.role_assignments.get(scope, name),
                           **ctx.target.where())


def remove_aksrun_assignments(ctx: AdminContext, scope: str, label: str,
                              principal_id: str | None = None,
                              names: dict[str, str] | None = None) -> int:
    """Remove the assignments at exactly `scope` whose name is aksrun's for their own scope,
    role and principal (optionally only `principal_id`'s); returns how many went. `names`:
    principal id -> who, in words (else `label`)."""
    names = {k.lower(): v for k, v in (names or {}).items()}
    listed = arm.get_or_none(
        f"listing role assignments on {_short(scope)}",
        lambda: list(ctx.authorization.role_assignments.list_for_scope(scope,
                                                                      filter="atScope()")),
        **ctx.target.where()) or []
    removed = 0
    for assignment in listed:
        if not _is_aksrun(assignment, scope):
            continue
        if principal_id and assignment.principal_id.lower() != principal_id.lower():
            continue
        role = _guid(assignment.role_definition_id)
        who = names.get(assignment.principal_id.lower(), label)
        what = f"{ROLE_NAMES.get(role, role)} for {who}"
        if ctx.dry_run:
            ctx.log.add("role assignment", what, WOULD_REMOVE, f"on {_short(scope)}")
        else:
            arm.get_or_none(f"removing role assignment {assignment.name}",
                            lambda a=assignment: ctx.authorization.role_assignments.delete(
                                scope, a.name), **ctx.target.where())
            ctx.log.add("role assignment", what, REMOVED, f"on {_short(scope)}")
        removed += 1
    return removed


def remove_grant(ctx: AdminContext, grant: Grant) -> str:
    """Remove one known grant (by its deterministic name), if it is there."""
    found = _get(ctx, grant.scope, grant.name)
    what = f"{grant.role_name} for {grant.label}"
    if found is None:
        ctx.log.add("role assignment", what, ABSENT, f"on {_short(grant.scope)}")
        return ABSENT
    if ctx.dry_run:
        ctx.log.add("role assignment", what, WOULD_REMOVE, f"on {_short(grant.scope)}")
        return WOULD_REMOVE
    arm.get_or_none(f"removing role assignment {grant.name}",
                    lambda: ctx.authorization.role_assignments.delete(grant.scope, grant.name),
                    **ctx.target.where())
    ctx.log.add("role assignment", what, REMOVED, f"on {_short(grant.scope)}")
    return REMOVED


def _is_aksrun(assignment: Any, scope: str) -> bool:
    own_scope = (assignment.scope or scope).strip("/").lower()
    if own_scope != scope.strip("/").lower():
        return False  # inherited from above: not this scope's
    role = _guid(assignment.role_definition_id or "")
    principal = assignment.principal_id or ""
    return bool(role and principal) and assignment.name == assignment_name(scope, role,
                                                                           principal)


def _guid(role_definition_id: str) -> str:
    found = _GUID_TAIL.search(role_definition_id or "")
    return found.group(1).lower() if found else ""


def _short(scope: str) -> str:
    """A scope in words: its last `type/name` pairs after the provider."""
    parts = scope.strip("/").split("/")
    if "providers" in [p.lower() for p in parts]:
        at = max(i for i, p in enumerate(parts) if p.lower() == "providers")
        tail = parts[at + 2:]
        return "/".join(tail) if tail else scope
    return scope
