"""`aksrun init`'s search: each setting from a flag, the environment, `.env` or the file
already there, and what is still unknown from ARM: the resource group's managed cluster,
storage account and registry (those tagged `managed-by=aksrun` when there are several).

A choice ARM can't make alone (none, or several untagged) is an error that lists the
candidates and names the flag that settles it: init never guesses between two clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..adapters.azure.arm import arm_error_code, arm_error_message
from ..core import naming
from ..core.config import Config
from ..errors import AksrunError, ConfigError
from .context import Context

# What init writes, in this order: the resources, then who you are. Secrets never.
KEYS = ("subscription_id", "resource_group", "cluster_name", "storage_account", "registry",
        "registry_resource_group", "user", "namespace")
FLAGS = {"subscription_id": "--subscription", "resource_group": "--resource-group",
         "cluster_name": "--cluster", "storage_account": "--storage-account",
         "registry": "--registry", "registry_resource_group": "--registry-resource-group",
         "user": "--user", "namespace": "--namespace"}


@dataclass(frozen=True)
class Found:
    value: str
    source: str


def resolve(config: Config, context: Context) -> dict[str, Found]:
    """Every setting init writes, with where it came from; asks ARM for what is missing."""
    found: dict[str, Found] = {}
    for key in KEYS:
        value = getattr(config, key, None)
        if value and key in config.sources:
            found[key] = Found(str(value), _source(config.sources[key], key))
    for key, env in (("subscription_id", "AZURE_SUBSCRIPTION_ID"),
                     ("resource_group", "AZURE_RESOURCE_GROUP")):
        if key not in found:
            raise ConfigError(f"init needs the {key.replace('_', ' ')}: pass {FLAGS[key]} or set "
                              f"{env} (`az account show` / `az group list -o table`).")
    group = found["resource_group"].value
    if "cluster_name" not in found:
        found["cluster_name"] = _discover(context, "managed cluster", group, _clusters)
    if "storage_account" not in found and not _store_elsewhere(config):
        found["storage_account"] = _discover(context, "storage account", group, _accounts)
    if "registry" not in found and not config.image:
        registry_group = found.get("registry_resource_group", Found(group, "")).value
        found["registry"] = _discover(context, "container registry", registry_group,
                                      _registries)
    if "user" not in found:
        found["user"] = Found(config.user, "your login name (pass --user to change it)")
    naming.check_user(found["user"].value)
    return {key: found[key] for key in KEYS if key in found}


def _store_elsewhere(config: Config) -> bool:
    """The store is reached some other way than a storage account name."""
    return bool(config.storage_account_url or config.storage_connection_string
                or (config.store and not config.store.startswith("az://")))


def _discover(context: Context, kind: str, group: str,
              lister: Callable[[Context, str], Iterable[Any]]) -> Found:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    try:
        items = list(lister(context, group))
    except HttpResponseError as exc:
        code, said = arm_error_code(exc) or "", arm_error_message(exc)
        if code == "ResourceGroupNotFound":
            raise ConfigError(f"resource group {group!r} does not exist: {said}") from None
        if getattr(exc, "status_code", None) == 403:  # ARM's answer for a group you can't
            raise AksrunError(  # see, existing or not
                f"ARM won't list the {kind}s in resource group {group!r} for you (it does "
                f"not exist, or you lack Reader on it): pass {_flag(kind)}, or ask for "
                "Reader on the resource group.") from None
        raise AksrunError(f"listing the {kind}s in {group!r} failed: {said}") from None
    except ServiceRequestError as exc:
        raise AksrunError(f"Azure Resource Manager did not answer ({exc}); check your "
                          f"network, or pass {_flag(kind)}.") from None
    return choose(kind, group, items)


def choose(kind: str, group: str, items: list[Any]) -> Found:
    """The one candidate, else the one tagged managed-by=aksrun, else an error naming them."""
    tagged = [i for i in items if _tags(i).get(naming.MANAGED_BY_TAG) == naming.MANAGED_BY]
    if len(tagged) == 1:
        return Found(tagged[0].name, f"ARM: the {kind} tagged "
                     f"{naming.MANAGED_BY_TAG}={naming.MANAGED_BY} in {group}")
    if len(items) == 1:
        return Found(items[0].name, f"ARM: the only {kind} in {group}")
    if not items:
        raise ConfigError(f"resource group {group!r} has no {kind}: ask your admin to run "
                          f"`aksrun admin bootstrap`, or pass {_flag(kind)}.")
    names = ", ".join(sorted(i.name for i in (tagged or items)))
    raise ConfigError(f"resource group {group!r} has several {kind}s ({names}); pick one with "
                      f"{_flag(kind)}.")


def _clusters(context: Context, group: str) -> Iterable[Any]:
    from azure.mgmt.containerservice import ContainerServiceClient

    return context.arm(ContainerServiceClient).managed_clusters.list_by_resource_group(group)


def _accounts(context: Context, group: str) -> Iterable[Any]:
    from azure.mgmt.storage import StorageManagementClient

    return context.arm(StorageManagementClient).storage_accounts.list_by_resource_group(group)


def _registries(context: Context, group: str) -> Iterable[Any]:
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    client = context.arm(ContainerRegistryManagementClient)
    return client.registries.list_by_resource_group(group)


def _tags(item: Any) -> Mapping[str, str]:
    return getattr(item, "tags", None) or {}


def _flag(kind: str) -> str:
    return {"managed cluster": "--cluster", "storage account": "--storage-account",
            "container registry": "--registry"}[kind]


def _source(source: str, key: str) -> str:
    return FLAGS[key] if source == "argument" else source
