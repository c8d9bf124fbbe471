"""Where the admin commands work and the clients they work with, made once per command.

`Target` is the subscription, resource group and cluster named on the command line (or in
the settings); `AdminContext` adds the one credential, the ARM clients (pointed where the
settings say: `AKSRUN_ARM_ENDPOINT`), the cluster's Kubernetes client, the step log and
whether this is a dry run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .steps import StepLog

# ARM's long-running operations say when to look again (Retry-After); without it, this.
POLLING_INTERVAL = 5.0


@dataclass(frozen=True)
class Target:
    subscription_id: str
    resource_group: str
    cluster_name: str

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def cluster_id(self) -> str:
        return (f"{self.group_id}/providers/Microsoft.ContainerService/managedClusters/"
                f"{self.cluster_name}")

    def where(self) -> dict[str, str]:
        """For `arm.call`: what a missing-resource-group message names."""
        return {"subscription_id": self.subscription_id, "resource_group": self.resource_group}


def target_from(config: Any) -> Target:
    """The target from the settings, or a ConfigError naming what is missing."""
    missing = [f"{flag} (or {env})" for field, flag, env in (
        ("subscription_id", "--subscription", "AZURE_SUBSCRIPTION_ID"),
        ("resource_group", "--resource-group", "AZURE_RESOURCE_GROUP"),
        ("cluster_name", "--cluster", "AZURE_AKS_CLUSTER_NAME"),
    ) if not getattr(config, field, None)]
    if missing:
        raise ConfigError(f"aksrun admin needs {', '.join(missing)}.")
    return Target(config.subscription_id, config.resource_group, config.cluster_name)


class AdminContext:
    """Everything one admin command uses; clients are made on first use."""

    def __init__(self, config: Any, *, credential: Any = None, dry_run: bool = False,
                 on_step: Callable[[Any], None] | None = None,
                 on_progress: Callable[[str], None] | None = None,
                 kubeconfig: str | None = None,
                 polling_interval: float | None = None) -> None:
        self.config = config
        self.target = target_from(config)
        self.dry_run = dry_run
        self.log = StepLog(on_step)
        self.on_progress = on_progress or (lambda text: None)
        self.kubeconfig = kubeconfig
        self.polling_interval = polling_interval or POLLING_INTERVAL
        self._credential = credential
        self._clients: dict[str, Any] = {}
        self._kube: Any = None

    @property
    def credential(self) -> Any:
        if self._credential is None:
            from ..adapters.azure.credentials import default_credential

            self._credential = default_credential()
        return self._credential

    def with_config(self, **changes: Any) -> Any:
        """The settings with `changes` (e.g. the registry bootstrap found), for other parts
        of aksrun that read them (the image builder)."""
        return dataclasses.replace(self.config, **changes)

    # --- ARM clients ---------------------------------------------------------------------------

    def _client(self, key: str, factory: Callable[[], type]) -> Any:
        if key not in self._clients:
            from ..adapters.azure.arm import management_client

            self._clients[key] = management_client(factory(), self.config, self.credential,
                                                   polling_interval=self.polling_interval)
        return self._clients[key]

    @property
    def containerservice(self) -> Any:
        def cls() -> type:
            from azure.mgmt.containerservice import ContainerServiceClient

            return ContainerServiceClient

        return self._client("containerservice", cls)

    @property
    def msi(self) -> Any:
        def cls() -> type:
            from azure.mgmt.msi import ManagedServiceIdentityClient

            return ManagedServiceIdentityClient

        return self._client("msi", cls)

    @property
    def authorization(self) -> Any:
        def cls() -> type:
            from azure.mgmt.authorization import AuthorizationManagementClient

            return AuthorizationManagementClient

        return self._client("authorization", cls)

    @property
    def storage(self) -> Any:
        def cls() -> type:
            from azure.mgmt.storage import StorageManagementClient

            return StorageManagementClient

        return self._client("storage", cls)

    @property
    def registry(self) -> Any:
        def cls() -> type:
            from azure.mgmt.containerregistry import ContainerRegistryManagementClient

            return ContainerRegistryManagementClient

        return self._client("registry", cls)

    # --- Kubernetes ----------------------------------------------------------------------------

    def kube(self) -> Any:
        """The cluster's admin `ApiClient` (see kube_access)."""
        if self._kube is None:
            from .kube_access import admin_api_client

            self._kube = admin_api_client(self)
        return self._kube
