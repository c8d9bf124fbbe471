"""The container registry the runner and dependency images live in.

Found by name (`--registry` / AZURE_CONTAINER_REGISTRY, in AKSRUN_REGISTRY_RESOURCE_GROUP or
the cluster's resource group), else the one tagged as aksrun's, else created (Standard SKU,
admin user off: pulls go through the kubelet identity's AcrPull, builds through ACR Tasks).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ..core import naming
from . import arm
from .context import AdminContext
from .errors import NameTakenError
from .steps import CREATED, FOUND, REMOVED, WOULD_CREATE, WOULD_REMOVE

_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")


@dataclass(frozen=True)
class RegistryRef:
    name: str
    id: str
    resource_group: str
    login_server: str
    planned: bool = False


def default_name(subscription_id: str, resource_group: str, cluster: str) -> str:
    digest = hashlib.sha256(f"acr/{subscription_id}/{resource_group}/{cluster}".lower().encode())
    return "aksrun" + digest.hexdigest()[:16]


def resource_group(ctx: AdminContext) -> str:
    return getattr(ctx.config, "registry_resource_group", None) or ctx.target.resource_group


def registry_id(ctx: AdminContext, name: str) -> str:
    return (f"/subscriptions/{ctx.target.subscription_id}/resourceGroups/{resource_group(ctx)}"
            f"/providers/Microsoft.ContainerRegistry/registries/{name}")


def ensure_registry(ctx: AdminContext, name: str | None, location: str) -> RegistryRef:
    existing = find_registry(ctx, name)
    if existing is not None:
        owner = "aksrun's" if _is_aksrun(existing.tags) else "not created by aksrun"
        ctx.log.add("container registry", existing.name, FOUND,
                    f"{existing.login_server} ({owner})")
        return _ref(ctx, existing)
    t = ctx.target
    name = name or default_name(t.subscription_id, t.resource_group, t.cluster_name)
    if not _NAME.match(name):
        from ..errors import ConfigError

        raise ConfigError(f"registry name {name!r} is not valid: use 5-50 letters and digits.")
    login = f"{name.lower()}.azurecr.io"
    if ctx.dry_run:
        ctx.log.add("container registry", name, WOULD_CREATE, f"Standard, in {location}")
        return RegistryRef(name, registry_id(ctx, name), resource_group(ctx), login, True)
    created = _create(ctx, name, location)
    ctx.log.add("container registry", name, CREATED,
                f"{created.login_server}, Standard, in {location}")
    return _ref(ctx, created)


def find_registry(ctx: AdminContext, name: str | None) -> Any:
    group = resource_group(ctx)
    name = name or ctx.config.registry
    client = ctx.registry
    if name:
        return arm.get_or_none(f"reading container registry {name!r}",
                               lambda: client.registries.get(group, name),
                               **ctx.target.where())
    tagged = list_tagged(ctx)
    if len(tagged) > 1:
        from ..errors import ConfigError

        raise ConfigError(f"several registries in {group!r} are aksrun's "
                          f"({', '.join(sorted(r.name for r in tagged))}): pass --registry.")
    if tagged:
        return tagged[0]
    t = ctx.target
    default = default_name(t.subscription_id, t.resource_group, t.cluster_name)
    return arm.get_or_none(f"reading container registry {default!r}",
                           lambda: client.registries.get(group, default), **t.where())


def list_tagged(ctx: AdminContext) -> list[Any]:
    group = resource_group(ctx)
    found = arm.call(f"listing the registries of {group!r}",
                     lambda: list(ctx.registry.registries.list_by_resource_group(group)),
                     **ctx.target.where())
    return [r for r in found if _is_aksrun(r.tags)]


def _create(ctx: AdminContext, name: str, location: str) -> Any:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.containerregistry import models

    from ..adapters.azure.arm import arm_error_code

    group = resource_group(ctx)
    body = models.Registry(location=location, sku=models.Sku(name="Standard"),
                           admin_user_enabled=False, tags=naming.tags())
    ctx.on_progress(f"creating container registry {name}")

    def create() -> Any:
        try:
            return ctx.registry.registries.begin_create(group, name, body).result()
        except HttpResponseError as exc:
            if arm_error_code(exc) in ("AlreadyInUse", "RegistryNameNotAvailable"):
                raise NameTakenError(f"registry name {name!r} is taken (names are global "
                                     "across Azure): pass another with --registry.") from exc
            raise

    return arm.call(f"creating container registry {name!r}", create, **ctx.target.where())


def remove_registry(ctx: AdminContext, resource: Any) -> None:
    group = resource_group(ctx)
    if ctx.dry_run:
        ctx.log.add("container registry", resource.name, WOULD_REMOVE, "with every image")
        return
    arm.get_or_none(f"removing container registry {resource.name!r}",
                    lambda: ctx.registry.registries.begin_delete(group, resource.name).result(),
                    **ctx.target.where())
    ctx.log.add("container registry", resource.name, REMOVED, "with every image")


def _ref(ctx: AdminContext, resource: Any) -> RegistryRef:
    return RegistryRef(resource.name, resource.id, resource_group(ctx), resource.login_server)


def _is_aksrun(tags: Any) -> bool:
    return (tags or {}).get(naming.MANAGED_BY_TAG) == naming.MANAGED_BY
