"""The Kubernetes API server: reached the way aksrun reaches it (on AKS through ARM's
cluster-user kubeconfig and the same credential, otherwise KUBECONFIG or in-cluster), and
its version. The checks of what is in the namespace build on the client made here."""

from __future__ import annotations

import os
from typing import Any

from ...errors import AksrunError, ConfigError
from ..context import Context
from ..model import Outcome
from ..text import one_line

UNREACHABLE_FIX = ("start the cluster or fix KUBECONFIG; a private cluster is reachable only "
                   "from its network (VPN, peered VNet or jump host), or by its public FQDN "
                   "with AKSRUN_SERVER_FQDN=public if it has one.")


def api_client(context: Context) -> Any:
    """A kubernetes ApiClient as aksrun would make one: on AKS from ARM's cluster-user
    kubeconfig (with the same credential), otherwise from KUBECONFIG or in-cluster."""
    config = context.config
    from ...adapters.azure.kubeconfig import load_kubernetes_client

    if config.backend == "aks":
        from azure.mgmt.containerservice import ContainerServiceClient

        from ...adapters.azure.kubeconfig import fetch_kubeconfig, write_private_kubeconfig

        data = fetch_kubeconfig(config.subscription_id, config.resource_group,
                                config.cluster_name, context.credential(),
                                client=context.arm(ContainerServiceClient),
                                server_fqdn=getattr(config, "server_fqdn", None))
        return load_kubernetes_client(write_private_kubeconfig(data), context.credential())
    path = (os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config"))
    path = path.split(os.pathsep)[0]
    if os.path.isfile(path):
        return load_kubernetes_client(path)
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)
    except kube_config.ConfigException:
        raise ConfigError(f"no kubeconfig at {path} and not running in a cluster") from None
    return client.ApiClient(configuration)


def check_kubernetes(context: Context) -> Outcome:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        api = api_client(context)
    except ConfigError as exc:
        return Outcome.fail(one_line(exc), "set KUBECONFIG to your cluster's kubeconfig, or "
                            "use AKSRUN_BACKEND=aks with the AZURE_* cluster settings.")
    except AksrunError as exc:
        text = one_line(exc)
        if "Cluster User Role" in text:
            return Outcome.fail("you may not get the cluster's user credentials from ARM",
                                "ask an owner for the 'Azure Kubernetes Service Cluster User "
                                "Role' on the cluster.")
        return Outcome.fail(text, "do what the message says, then run `aksrun doctor` again.")
    host = api.configuration.host
    try:
        version = client.VersionApi(api).get_code(_request_timeout=context.k8s_timeout())
    except ApiException as exc:
        if exc.status == 401:
            return Outcome.fail(f"the API server at {host} refused your credentials",
                                "renew them: `az login` for AKS, or a fresh kubeconfig.",
                                server=host)
        return Outcome.fail(f"the API server at {host} answered HTTP {exc.status} "
                            f"{exc.reason}", UNREACHABLE_FIX, server=host)
    except Exception as exc:  # urllib3's connection errors, TLS failures, timeouts
        return Outcome.fail(f"cannot reach the API server at {host}: {_reason(exc)}",
                            UNREACHABLE_FIX, server=host)
    context.put("api_client", api)
    return Outcome.ok(f"{host}: Kubernetes {version.git_version}", server=host,
                      version=version.git_version)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return one_line(reason)
