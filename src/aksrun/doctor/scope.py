"""What applies to a configuration, and the names doctor's fixes use: one place, so the plan
and the checks agree on when a cluster, an identity or a registry is involved."""

from __future__ import annotations

from ..core import naming
from ..core.config import Config
from ..errors import ConfigError


def person(config: Config) -> str:
    """The name `aksrun admin add-user NAME` was given: from an `aksrun-NAME` namespace, else
    the configured user."""
    namespace = config.effective_namespace
    if namespace.startswith("aksrun-") and len(namespace) > len("aksrun-"):
        return namespace[len("aksrun-"):]
    return config.user


def add_user_command(config: Config) -> str:
    return f"`aksrun admin add-user {person(config)}`"


def has_cluster_settings(config: Config) -> bool:
    """AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_AKS_CLUSTER_NAME are all set:
    the cluster can be asked about through ARM."""
    return bool(config.subscription_id and config.resource_group and config.cluster_name)


def store_needs_identity(config: Config) -> bool:
    """An Azure store reached with Entra ID tokens (not a connection string): the client
    needs a credential, and pods need workload identity."""
    return config.store_url.startswith("az://") and not config.storage_connection_string


def uses_workload_identity(config: Config) -> bool:
    return config.backend != "local" and store_needs_identity(config)


def needs_credential(config: Config) -> bool:
    if config.backend == "local":
        return store_needs_identity(config)
    return (config.backend == "aks" or has_cluster_settings(config)
            or store_needs_identity(config) or bool(config.registry))


def subject(config: Config) -> str:
    """The service-account subject the federated credential must trust."""
    return f"system:serviceaccount:{config.effective_namespace}:{config.service_account}"


def identity_name(config: Config) -> str | None:
    """The user-assigned identity `admin add-user` creates for this person, if nameable."""
    try:
        return naming.identity(person(config))
    except ConfigError:
        return None
