"""Each user's user-assigned managed identity and the federated credential that lets the pods
of their namespace act as it (Azure Workload Identity).

The federated credential trusts exactly one service account of one cluster: the cluster's
OIDC issuer URL, subject `system:serviceaccount:aksrun-<user>:aksrun`, audience
`api://AzureADTokenExchange`. Writes under one identity must not overlap (Azure answers 409
ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity): aksrun writes one at
a time and, should another writer be busy on the same identity, waits and writes again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..core import naming
from . import arm
from .context import AdminContext
from .errors import UserConflictError
from .steps import (
    ABSENT,
    CHANGED,
    CREATED,
    FOUND,
    REMOVED,
    WOULD_CHANGE,
    WOULD_CREATE,
    WOULD_REMOVE,
)

CONFLICT_RETRIES = 6
CONFLICT_WAIT = 2.0  # seconds, doubled per retry


@dataclass(frozen=True)
class IdentityRef:
    name: str
    id: str
    principal_id: str | None  # None in a dry run before it exists
    client_id: str | None
    tenant_id: str | None

    @property
    def planned(self) -> bool:
        return self.principal_id is None


def identity_id(ctx: AdminContext, name: str) -> str:
    return (f"{ctx.target.group_id}/providers/Microsoft.ManagedIdentity/"
            f"userAssignedIdentities/{name}")


def get_identity(ctx: AdminContext, user: str) -> Any:
    t = ctx.target
    name = naming.identity(user)
    return arm.get_or_none(f"reading managed identity {name!r}",
                           lambda: ctx.msi.user_assigned_identities.get(t.resource_group, name),
                           **t.where())


def ensure_identity(ctx: AdminContext, user: str, location: str) -> IdentityRef:
    name = naming.identity(user)
    found = get_identity(ctx, user)
    if found is not None:
        if not is_aksrun(found.tags, user):
            raise UserConflictError(
                f"managed identity {name!r} exists in {ctx.target.resource_group!r} and is not "
                f"aksrun's for user {user!r}: remove it, or choose another user name.")
        ctx.log.add("managed identity", name, FOUND, f"client id {found.client_id}")
        return _ref(found)
    if ctx.dry_run:
        ctx.log.add("managed identity", name, WOULD_CREATE, f"in {location}")
        return IdentityRef(name, identity_id(ctx, name), None, None, None)
    from azure.mgmt.msi.models import Identity

    t = ctx.target
    made = arm.call(f"creating managed identity {name!r}",
                    lambda: ctx.msi.user_assigned_identities.create_or_update(
                        t.resource_group, name, Identity(location=location,
                                                         tags=naming.tags(user))), **t.where())
    ctx.log.add("managed identity", name, CREATED, f"client id {made.client_id}")
    return _ref(made)


def ensure_federated_credential(ctx: AdminContext, user: str, identity: IdentityRef,
                                issuer: str | None) -> None:
    """The identity trusts the user's service account on this cluster's issuer."""
    name = naming.federated_credential(user)
    subject = naming.subject(user)
    want = (issuer or "", subject, [naming.TOKEN_AUDIENCE])
    detail = f"issuer {issuer}, subject {subject}"
    if not identity.planned:
        found = _get_credential(ctx, identity.name, name)
        if found is not None:
            have = (found.issuer or "", found.subject or "", list(found.audiences or []))
            if have == want:
                ctx.log.add("federated credential", name, FOUND, detail)
                return
            if ctx.dry_run:
                ctx.log.add("federated credential", name, WOULD_CHANGE, detail)
                return
            _write_credential(ctx, identity.name, name, issuer or "", subject)
            ctx.log.add("federated credential", name, CHANGED,
                        f"{detail} (was issuer {have[0]}, subject {have[1]})")
            return
    if ctx.dry_run:
        ctx.log.add("federated credential", name, WOULD_CREATE, detail)
        return
    _write_credential(ctx, identity.name, name, issuer or "", subject)
    ctx.log.add("federated credential", name, CREATED, detail)


def _write_credential(ctx: AdminContext, identity: str, name: str, issuer: str,
                      subject: str) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.msi.models import FederatedIdentityCredential

    t = ctx.target
    body = FederatedIdentityCredential(issuer=issuer, subject=subject,
                                       audiences=[naming.TOKEN_AUDIENCE])
    wait = CONFLICT_WAIT

    def write() -> Any:
        nonlocal wait
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                return ctx.msi.federated_identity_credentials.create_or_update(
                    t.resource_group, identity, name, body)
            except HttpResponseError as exc:
                if exc.status_code != 409 or attempt == CONFLICT_RETRIES:
                    raise
                ctx.on_progress(f"another write to identity {identity} is in progress: "
                                f"writing federated credential {name} again in {wait:.0f} s")
                time.sleep(wait)
                wait *= 2
        return None

    arm.call(f"writing federated credential {name!r} of identity {identity!r}", write,
             **t.where())


def _get_credential(ctx: AdminContext, identity: str, name: str) -> Any:
    t = ctx.target
    return arm.get_or_none(f"reading federated credential {name!r}",
                           lambda: ctx.msi.federated_identity_credentials.get(
                               t.resource_group, identity, name), **t.where())


def remove_identity(ctx: AdminContext, user: str) -> IdentityRef | None:
    """Remove the user's federated credential and identity (when aksrun's); returns what the
    identity was, so its role assignments can be found."""
    name = naming.identity(user)
    found = get_identity(ctx, user)
    if found is None or not is_aksrun(found.tags, user):
        detail = "" if found is None else "exists but is not aksrun's: left as it is"
        ctx.log.add("managed identity", name, ABSENT, detail)
        return None
    ref = _ref(found)
    credential = naming.federated_credential(user)
    t = ctx.target
    if _get_credential(ctx, name, credential) is not None:
        if ctx.dry_run:
            ctx.log.add("federated credential", credential, WOULD_REMOVE)
        else:
            arm.get_or_none(f"removing federated credential {credential!r}",
                            lambda: ctx.msi.federated_identity_credentials.delete(
                                t.resource_group, name, credential), **t.where())
            ctx.log.add("federated credential", credential, REMOVED)
    if ctx.dry_run:
        ctx.log.add("managed identity", name, WOULD_REMOVE, f"client id {ref.client_id}")
        return ref
    arm.get_or_none(f"removing managed identity {name!r}",
                    lambda: ctx.msi.user_assigned_identities.delete(t.resource_group, name),
                    **t.where())
    ctx.log.add("managed identity", name, REMOVED, f"client id {ref.client_id}")
    return ref


def list_user_identities(ctx: AdminContext) -> list[str]:
    """The users with an aksrun identity in the resource group."""
    t = ctx.target
    found = arm.call(f"listing the managed identities of {t.resource_group!r}",
                     lambda: list(ctx.msi.user_assigned_identities.list_by_resource_group(
                         t.resource_group)), **t.where())
    return [i.tags[naming.USER_TAG] for i in found
            if is_aksrun(i.tags) and (i.tags or {}).get(naming.USER_TAG)]


def is_aksrun(tags: Any, user: str | None = None) -> bool:
    tags = tags or {}
    if tags.get(naming.MANAGED_BY_TAG) != naming.MANAGED_BY:
        return False
    return user is None or tags.get(naming.USER_TAG) == user


def _ref(resource: Any) -> IdentityRef:
    return IdentityRef(resource.name, resource.id, resource.principal_id, resource.client_id,
                       resource.tenant_id)
