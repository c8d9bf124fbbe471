"""Reach an AKS cluster with nothing but the Azure credential: no `az aks get-credentials`,
no kubelogin binary.

The kubeconfig comes from ARM (`listClusterUserCredential`, the call `az aks get-credentials`
makes). For Entra ID clusters its user runs `kubelogin`; instead of running it, the exec user
is replaced by bearer tokens that `DefaultAzureCredential` issues for the AKS server
application, refreshed shortly before they expire.
"""

from __future__ import annotations

import atexit
import copy
import os
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import AksrunError, ConfigError
from .credentials import default_credential, explain_auth_error

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from kubernetes.client import ApiClient, Configuration

# The Entra ID application every AKS-managed Entra cluster's API server trusts.
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AKS_SCOPE = f"{AKS_SERVER_APP_ID}/.default"
REFRESH_MARGIN_SECONDS = 300  # renew a token 5 minutes before it expires
CLUSTER_USER_ROLE = "Azure Kubernetes Service Cluster User Role"


def cluster_resource_id(subscription_id: str, resource_group: str, cluster_name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.ContainerService/managedClusters/{cluster_name}"
    )


def fetch_kubeconfig(
    subscription_id: str,
    resource_group: str,
    cluster_name: str,
    credential: TokenCredential | None = None,
    *,
    client: Any = None,
    server_fqdn: str | None = None,
    config: Any = None,
) -> bytes:
    """The cluster-user kubeconfig of an AKS cluster, from ARM.

    `server_fqdn` ("public" or "private"): which API server address a private cluster's
    kubeconfig names (a private cluster with a public FQDN is reachable from outside its
    network by the public one). `config` points ARM at sovereign clouds / private links.

    Errors name what to fix: a wrong cluster / resource group / subscription, the missing
    role assignment, or the Azure sign-in.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    if client is None:
        from azure.mgmt.containerservice import ContainerServiceClient

        if config is not None:
            from .arm import management_client

            client = management_client(ContainerServiceClient, config, credential)
        else:
            client = ContainerServiceClient(credential or default_credential(), subscription_id)
    where = (
        f"AKS cluster {cluster_name!r} in resource group {resource_group!r} "
        f"of subscription {subscription_id}"
    )
    try:
        # format="exec": for Entra ID clusters, the kubelogin exec user (replaced on load);
        # ignored for clusters with local accounts.
        extra = {"server_fqdn": server_fqdn} if server_fqdn else {}
        result = client.managed_clusters.list_cluster_user_credentials(
            resource_group, cluster_name, format="exec", **extra
        )
    except ClientAuthenticationError as exc:  # no credential, or Entra ID / ARM said 401
        raise AksrunError(explain_auth_error(exc)) from exc
    except HttpResponseError as exc:
        raise _arm_error(exc, where, subscription_id, resource_group, cluster_name) from exc
    except ServiceRequestError as exc:
        raise AksrunError(
            f"could not reach Azure Resource Manager to get the credentials of {where}: {exc}. "
            "Check your network or proxy settings (HTTPS_PROXY)."
        ) from exc

    kubeconfigs = list(getattr(result, "kubeconfigs", None) or [])
    if not kubeconfigs or not kubeconfigs[0].value:
        raise AksrunError(f"Azure returned no kubeconfig for {where}.")
    value = kubeconfigs[0].value
    return value.encode() if isinstance(value, str) else bytes(value)


def _arm_error(
    exc: Any, where: str, subscription_id: str, resource_group: str, cluster_name: str
) -> AksrunError:
    status = getattr(exc, "status_code", None)
    code = getattr(getattr(exc, "error", None), "code", None) or ""
    detail = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
    if status == 404 or code.endswith("NotFound"):
        if code == "ResourceGroupNotFound":
            what = (
                f"resource group {resource_group!r} does not exist in subscription "
                f"{subscription_id}. Check AZURE_RESOURCE_GROUP (and AZURE_SUBSCRIPTION_ID)"
            )
        elif code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
            what = (
                f"subscription {subscription_id} was not found or is not visible to you. "
                "Check AZURE_SUBSCRIPTION_ID (`az account list -o table`)"
            )
        else:
            what = (
                f"{where} was not found. Check AZURE_AKS_CLUSTER_NAME and "
                f"AZURE_RESOURCE_GROUP (`az aks list -o table`)"
            )
        return ConfigError(f"{what}. Azure said: {detail}")
    if status == 403:
        scope = cluster_resource_id(subscription_id, resource_group, cluster_name)
        return AksrunError(
            f"you are signed in to Azure but may not get the credentials of {where}: "
            f"your identity needs the {CLUSTER_USER_ROLE!r} role on the cluster. Ask an owner "
            f"to run: az role assignment create --assignee <your user or app id> "
            f"--role {CLUSTER_USER_ROLE!r} --scope {scope}. Azure said: {detail}"
        )
    return AksrunError(f"Azure refused the credentials of {where} (HTTP {status}): {detail}")


def write_private_kubeconfig(data: bytes | str, directory: str | None = None) -> str:
    """Write a kubeconfig only its owner can read (0600), removed when the process exits.

    It may hold a client key or token (clusters with local accounts), so it never lands in
    ~/.kube or anywhere shared.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    fd, path = tempfile.mkstemp(prefix="aksrun-kubeconfig-", suffix=".yaml", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
    except BaseException:
        _remove(path)
        raise
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class EntraTokenRefresher:
    """Feeds the kubernetes client bearer tokens for `scope`, renewed `margin` seconds before
    expiry. Installed as `Configuration.refresh_api_key_hook`, which the client calls before
    every request; thread-safe, and shared (not copied) when the Configuration is deep-copied.
    """

    def __init__(
        self,
        credential: TokenCredential,
        scope: str = AKS_SCOPE,
        margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        tenant_id: str | None = None,
    ) -> None:
        self.credential, self.scope, self.margin, self.clock = credential, scope, margin, clock
        # The cluster's tenant (kubelogin's --tenant-id): a guest or multi-tenant user's home
        # tenant would issue a token the cluster refuses (401).
        self.tenant_id = tenant_id
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._expires_on - self.margin <= self.clock():
                from azure.core.exceptions import ClientAuthenticationError

                try:
                    kwargs = {"tenant_id": self.tenant_id} if self.tenant_id else {}
                    access = self.credential.get_token(self.scope, **kwargs)
                except ClientAuthenticationError as exc:
                    raise AksrunError(explain_auth_error(exc)) from exc
                self._token, self._expires_on = access.token, float(access.expires_on)
            return self._token

    def install(self, configuration: Configuration) -> None:
        """Get the first token now (so sign-in problems surface at once) and hook renewal."""
        self(configuration)
        configuration.refresh_api_key_hook = self

    def __call__(self, configuration: Configuration) -> None:
        # `kubernetes` 30-35 read the token from api_key["authorization"], 36+ from
        # api_key["BearerToken"]: set both, so every version pyproject allows sends it.
        token = self.token()
        for key in ("BearerToken", "authorization"):
            configuration.api_key[key] = token
            configuration.api_key_prefix[key] = "Bearer"

    def __deepcopy__(self, memo: dict[int, Any]) -> EntraTokenRefresher:
        return self


def _keepalive_options() -> list[tuple[int, int, int]]:
    """TCP keep-alive on every API connection (not the default of every allowed `kubernetes`
    release): a long watch through an idle load balancer or NAT that dropped it is noticed
    by the kernel within about a minute instead of never."""
    import socket

    from urllib3.connection import HTTPConnection

    options = [*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def load_kubernetes_client(
    kubeconfig_path: str | os.PathLike[str],
    credential: TokenCredential | None = None,
    *,
    context: str | None = None,
) -> ApiClient:
    """An `ApiClient` for the kubeconfig's (current) context, on its own Configuration.

    Never touches the global default configuration, so several clusters can coexist. An
    Entra ID user (kubelogin exec, or the legacy `azure` auth-provider) is served by
    `EntraTokenRefresher` with `credential` (default: `DefaultAzureCredential`).
    """
    import yaml
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.config import load_kube_config, load_kube_config_from_dict
    from kubernetes.config.config_exception import ConfigException

    path = Path(kubeconfig_path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"kubeconfig {path} could not be read: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top).")

    configuration = Configuration()
    configuration.socket_options = _keepalive_options()
    try:
        user_name, user = _active_user(document, context)
        server_id = entra_server_id(user)
        if server_id is None:
            load_kube_config(
                config_file=str(path), context=context,
                client_configuration=configuration, persist_config=False,
            )
            return ApiClient(configuration=configuration)
        stripped = _without_user_auth(document, user_name, path.parent)
        load_kube_config_from_dict(
            stripped, context=context, client_configuration=configuration, persist_config=False
        )
    except ConfigException as exc:
        raise ConfigError(f"kubeconfig {path} is not usable: {exc}") from exc
    tenant = entra_tenant_id(user)
    if credential is None:
        credential = default_credential(allowed_tenants=[tenant] if tenant else None)
    EntraTokenRefresher(credential, f"{server_id}/.default", tenant_id=tenant).install(
        configuration
    )
    return ApiClient(configuration=configuration)


def entra_tenant_id(user: Mapping[str, Any] | None) -> str | None:
    """The tenant the kubeconfig's Entra user signs in to (kubelogin's --tenant-id, or the
    legacy auth-provider's tenant-id)."""
    if not user:
        return None
    exec_ = user.get("exec")
    if isinstance(exec_, Mapping) and _is_kubelogin(exec_.get("command")):
        return _kubelogin_option(exec_, "--tenant-id", "-t")
    provider = user.get("auth-provider")
    if isinstance(provider, Mapping) and provider.get("name") == "azure":
        return (provider.get("config") or {}).get("tenant-id") or None
    return None


def entra_server_id(user: Mapping[str, Any] | None) -> str | None:
    """The AKS server application id if this kubeconfig user signs in with Entra ID."""
    if not user:
        return None
    exec_ = user.get("exec")
    if isinstance(exec_, Mapping) and _is_kubelogin(exec_.get("command")):
        return _kubelogin_option(exec_, "--server-id") or AKS_SERVER_APP_ID
    provider = user.get("auth-provider")
    if isinstance(provider, Mapping) and provider.get("name") == "azure":
        config = provider.get("config") or {}
        return str(config.get("apiserver-id") or AKS_SERVER_APP_ID)
    return None


def _kubelogin_option(exec_: Mapping[str, Any], *names: str) -> str | None:
    """The value of a kubelogin option (`--name value` or `--name=value`) in its exec args."""
    args = [str(a) for a in exec_.get("args") or []]
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


def _is_kubelogin(command: Any) -> bool:
    if not command:
        return False
    first = shlex.split(str(command))[0] if str(command).strip() else ""
    name = os.path.basename(first).lower()
    return name in ("kubelogin", "kubelogin.exe")


def _active_user(document: Mapping[str, Any], context: str | None) -> tuple[str | None, Any]:
    name = context or document.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    if name not in contexts:
        from kubernetes.config.config_exception import ConfigException

        raise ConfigException(f"context {name!r} not found; contexts: {sorted(map(str, contexts))}")
    user_name = contexts[name].get("user")
    for entry in document.get("users") or []:
        if entry.get("name") == user_name:
            return user_name, entry.get("user") or {}
    return user_name, None


def _without_user_auth(document: Mapping[str, Any], user_name: str | None, base: Path) -> dict:
    """A copy whose user has no credentials (the refresher supplies them), with relative
    file paths made absolute, since a dict has no directory to resolve them against."""
    copied = copy.deepcopy(dict(document))
    for entry in copied.get("users") or []:
        if entry.get("name") == user_name:
            entry["user"] = {}
    for entry in copied.get("clusters") or []:
        cluster = entry.get("cluster") or {}
        ca = cluster.get("certificate-authority")
        if ca and not os.path.isabs(ca):
            cluster["certificate-authority"] = str(base / ca)
    return copied
