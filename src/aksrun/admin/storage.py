"""The storage account that holds every user's container, and the per-user containers.

Bootstrap finds the account (by name, or the one in the resource group tagged as aksrun's)
or creates it with secure defaults: TLS 1.2 at least, HTTPS only, no anonymous blob access,
and shared-key access off, since aksrun reaches blobs with Entra ID tokens only (the runner
with its workload identity, clients with DefaultAzureCredential). An account aksrun did not
create is used as it is: its settings belong to whoever made it, so they are only reported.

Containers are made through ARM (the management plane), which needs no data-plane role for
the admin, and carry metadata naming aksrun and the user, so removal takes only its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ..core import naming
from . import arm
from .context import AdminContext
from .errors import NameTakenError, NotBootstrappedError, UserConflictError
from .steps import ABSENT, CREATED, FOUND, REMOVED, WOULD_CREATE, WOULD_REMOVE

# Container metadata names must be C# identifiers: no '-' as in the resource tags.
META_MANAGED_BY = naming.MANAGED_BY_TAG.replace("-", "_")
META_USER = naming.USER_TAG.replace("-", "_")
SECURE = {"minimum_tls_version": "TLS1_2", "allow_blob_public_access": False,
          "allow_shared_key_access": False, "enable_https_traffic_only": True}
_NAME = re.compile(r"^[a-z0-9]{3,24}$")


@dataclass(frozen=True)
class Account:
    name: str
    id: str
    blob_endpoint: str | None
    planned: bool = False  # only in a dry run: it would be created


def default_name(subscription_id: str, resource_group: str, cluster: str) -> str:
    """A name that stays the same for this cluster (so a re-run finds it), 24 characters."""
    digest = hashlib.sha256(f"{subscription_id}/{resource_group}/{cluster}".lower().encode())
    return "aksrun" + digest.hexdigest()[:18]


def account_id(ctx: AdminContext, name: str) -> str:
    return f"{ctx.target.group_id}/providers/Microsoft.Storage/storageAccounts/{name}"


def container_scope(account: Account, container: str) -> str:
    return f"{account.id}/blobServices/default/containers/{container}"


def ensure_account(ctx: AdminContext, name: str | None, location: str) -> Account:
    """Bootstrap's step: find the account or create it (secure defaults)."""
    existing = find_account(ctx, name)
    if existing is not None:
        ctx.log.add("storage account", existing.name, FOUND, _found_detail(existing))
        return account_ref(existing)
    name = name or default_name(ctx.target.subscription_id, ctx.target.resource_group,
                                ctx.target.cluster_name)
    if not _NAME.match(name):
        from ..errors import ConfigError

        raise ConfigError(f"storage account name {name!r} is not valid: use 3-24 lowercase "
                          "letters and digits.")
    if ctx.dry_run:
        ctx.log.add("storage account", name, WOULD_CREATE, f"in {location}, TLS 1.2, no public "
                    "blob access, shared-key access off")
        return Account(name, account_id(ctx, name), None, planned=True)
    created = _create_account(ctx, name, location)
    ctx.log.add("storage account", name, CREATED, f"in {location}, TLS 1.2, no public blob "
                "access, shared-key access off")
    return account_ref(created)


def require_account(ctx: AdminContext, name: str | None) -> Account:
    """add-user's step: the account bootstrap set up, or NotBootstrappedError."""
    existing = find_account(ctx, name)
    if existing is None:
        t = ctx.target
        which = f"storage account {name!r}" if name else "no storage account tagged by aksrun"
        raise NotBootstrappedError(
            f"{which} in resource group {t.resource_group!r}: run `aksrun admin bootstrap "
            f"--resource-group {t.resource_group} --cluster {t.cluster_name}` first (or pass "
            "--storage-account).")
    return account_ref(existing)


def find_account(ctx: AdminContext, name: str | None) -> Any:
    """The named account, else the one tagged as aksrun's in the resource group, else None."""
    t = ctx.target
    name = name or getattr(ctx.config, "storage_account", None)
    if name:
        return arm.get_or_none(f"reading storage account {name!r}",
                               lambda: ctx.storage.storage_accounts.get_properties(
                                   t.resource_group, name), **t.where())
    tagged = [a for a in list_tagged_accounts(ctx)]
    if len(tagged) > 1:
        from ..errors import ConfigError

        names = ", ".join(sorted(a.name for a in tagged))
        raise ConfigError(f"several storage accounts in {t.resource_group!r} are aksrun's "
                          f"({names}): pass --storage-account.")
    if tagged:
        return tagged[0]
    default = default_name(t.subscription_id, t.resource_group, t.cluster_name)
    return arm.get_or_none(f"reading storage account {default!r}",
                           lambda: ctx.storage.storage_accounts.get_properties(
                               t.resource_group, default), **t.where())


def list_tagged_accounts(ctx: AdminContext) -> list[Any]:
    t = ctx.target
    accounts = arm.call(f"listing the storage accounts of {t.resource_group!r}",
                        lambda: list(ctx.storage.storage_accounts.list_by_resource_group(
                            t.resource_group)), **t.where())
    return [a for a in accounts if _is_aksrun(a.tags)]


def _create_account(ctx: AdminContext, name: str, location: str) -> Any:
    from azure.mgmt.storage import models

    t = ctx.target
    parameters = models.StorageAccountCreateParameters(
        sku=models.Sku(name="Standard_LRS"), kind="StorageV2", location=location,
        tags=naming.tags(), **SECURE)
    ctx.on_progress(f"creating storage account {name}")
    from azure.core.exceptions import HttpResponseError

    from ..adapters.azure.arm import arm_error_code

    def create() -> Any:
        try:
            return ctx.storage.storage_accounts.begin_create(
                t.resource_group, name, parameters).result()
        except HttpResponseError as exc:
            if arm_error_code(exc) in ("StorageAccountAlreadyTaken", "AccountNameInvalid"):
                raise NameTakenError(
                    f"storage account name {name!r} is taken (names are global across Azure): "
                    "pass another with --storage-account.") from exc
            raise

    return arm.call(f"creating storage account {name!r}", create, **t.where())


def account_ref(resource: Any) -> Account:
    """The parts of an account resource the commands use."""
    endpoints = resource.primary_endpoints
    return Account(resource.name, resource.id, getattr(endpoints, "blob", None))


def _found_detail(resource: Any) -> str:
    loose = [text for field, want, text in (
        ("minimum_tls_version", "TLS1_2", "TLS below 1.2 allowed"),
        ("allow_blob_public_access", False, "public blob access allowed"),
        ("allow_shared_key_access", False, "shared-key access on"),
    ) if getattr(resource, field, want) not in (want, None)
        or (field == "allow_shared_key_access" and getattr(resource, field, None) is None)]
    owner = "aksrun's" if _is_aksrun(resource.tags) else "not created by aksrun: left as it is"
    return owner + (f"; note: {', '.join(loose)}" if loose else "")


def _is_aksrun(tags: Any, user: str | None = None) -> bool:
    tags = tags or {}
    if tags.get(naming.MANAGED_BY_TAG) != naming.MANAGED_BY:
        return False
    return user is None or tags.get(naming.USER_TAG) == user


# --- containers --------------------------------------------------------------------------------


def ensure_container(ctx: AdminContext, account: Account, user: str) -> str:
    """Find or create the user's container; returns the step's state."""
    name = naming.container(user)
    if not account.planned:
        found = _get_container(ctx, account, name)
        if found is not None:
            meta = found.metadata or {}
            if meta.get(META_MANAGED_BY) != naming.MANAGED_BY or meta.get(META_USER) != user:
                raise UserConflictError(
                    f"container {name!r} in storage account {account.name!r} exists and is not "
                    f"aksrun's for user {user!r}: remove or rename it, or choose another user "
                    "name.")
            ctx.log.add("blob container", name, FOUND, f"in {account.name}")
            return FOUND
    if ctx.dry_run:
        ctx.log.add("blob container", name, WOULD_CREATE, f"in {account.name}")
        return WOULD_CREATE
    from azure.mgmt.storage import models

    t = ctx.target
    body = models.BlobContainer(public_access="None",
                                metadata={META_MANAGED_BY: naming.MANAGED_BY, META_USER: user})
    arm.call(f"creating blob container {name!r}",
             lambda: ctx.storage.blob_containers.create(t.resource_group, account.name, name,
                                                        body), **t.where())
    ctx.log.add("blob container", name, CREATED, f"in {account.name}")
    return CREATED


def remove_container(ctx: AdminContext, account: Account, user: str) -> str:
    name = naming.container(user)
    found = _get_container(ctx, account, name)
    meta = (found.metadata or {}) if found is not None else {}
    if found is None or meta.get(META_MANAGED_BY) != naming.MANAGED_BY \
            or meta.get(META_USER) != user:
        detail = "" if found is None else "exists but is not aksrun's: left as it is"
        ctx.log.add("blob container", name, ABSENT, detail)
        return ABSENT
    if ctx.dry_run:
        ctx.log.add("blob container", name, WOULD_REMOVE, f"in {account.name}, with its blobs")
        return WOULD_REMOVE
    t = ctx.target
    arm.get_or_none(f"removing blob container {name!r}",
                    lambda: ctx.storage.blob_containers.delete(t.resource_group, account.name,
                                                               name), **t.where())
    ctx.log.add("blob container", name, REMOVED, f"in {account.name}, with its blobs")
    return REMOVED


def list_user_containers(ctx: AdminContext, account: Account) -> list[str]:
    """The users whose aksrun containers are in the account. A listing shows no metadata
    (as the service answers), so each `aksrun-*` container is read."""
    t = ctx.target
    listed = arm.get_or_none(f"listing the containers of {account.name!r}",
                             lambda: list(ctx.storage.blob_containers.list(
                                 t.resource_group, account.name)),
                             **t.where()) or []
    users = []
    for item in listed:
        if not (item.name or "").startswith("aksrun-"):
            continue
        found = _get_container(ctx, account, item.name)
        meta = (found.metadata or {}) if found is not None else {}
        if meta.get(META_MANAGED_BY) == naming.MANAGED_BY and meta.get(META_USER):
            users.append(meta[META_USER])
    return users


def _get_container(ctx: AdminContext, account: Account, name: str) -> Any:
    t = ctx.target
    return arm.get_or_none(f"reading blob container {name!r}",
                           lambda: ctx.storage.blob_containers.get(t.resource_group,
                                                                   account.name, name),
                           **t.where())


def remove_account(ctx: AdminContext, resource: Any) -> None:
    """Teardown: delete an account aksrun created (tagged), with everything in it."""
    t = ctx.target
    if ctx.dry_run:
        ctx.log.add("storage account", resource.name, WOULD_REMOVE, "with every container")
        return
    arm.get_or_none(f"removing storage account {resource.name!r}",
                    lambda: ctx.storage.storage_accounts.delete(t.resource_group,
                                                                resource.name), **t.where())
    ctx.log.add("storage account", resource.name, REMOVED, "with every container")
