"""The AKS cluster as ARM describes it: that it exists and runs, and that it has the OIDC
issuer and workload identity pods need to sign in to Azure as their own identity."""

from __future__ import annotations

from typing import Any

from ...adapters.azure.arm import arm_error_code, arm_error_message
from ..context import Context
from ..model import Outcome
from ..text import first_line


def check_aks_cluster(context: Context) -> Outcome:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError
    from azure.mgmt.containerservice import ContainerServiceClient

    config = context.config
    where = (f"AKS cluster {config.cluster_name!r} in resource group {config.resource_group!r}"
             f" (subscription {config.subscription_id})")
    try:
        cluster = context.arm(ContainerServiceClient).managed_clusters.get(
            config.resource_group, config.cluster_name)
    except HttpResponseError as exc:
        return _arm_failure(exc, where, config)
    except ServiceRequestError as exc:
        return Outcome.fail(f"Azure Resource Manager at {config.arm_endpoint} did not answer: "
                            f"{first_line(exc)}",
                            "check your network or proxy (HTTPS_PROXY) and AKSRUN_ARM_ENDPOINT.")
    facts = cluster_facts(cluster)
    context.put("aks", facts)
    if (facts["power_state"] or "Running") != "Running":
        return Outcome.fail(f"{where} is {facts['power_state']}",
                            f"start it: `az aks start -g {config.resource_group} -n "
                            f"{config.cluster_name}`.", **facts)
    return Outcome.ok(f"{config.cluster_name}: Kubernetes {facts['kubernetes_version']}, "
                      f"{facts['provisioning_state']}", **facts)


def check_workload_identity(context: Context) -> Outcome:
    facts = context.get("aks") or {}
    config = context.config
    missing = [what for what, on in (("the OIDC issuer", facts.get("oidc_issuer_enabled")),
                                     ("workload identity", facts.get("workload_identity")))
               if not on]
    if missing:
        return Outcome.fail(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} off on cluster "
            f"{config.cluster_name!r}, so pods can't sign in to Azure",
            f"ask an admin to run `aksrun admin bootstrap --resource-group "
            f"{config.resource_group} --cluster {config.cluster_name} "
            "--enable-workload-identity`.", **facts)
    if not facts.get("oidc_issuer_url"):
        return Outcome.fail(f"cluster {config.cluster_name!r} has the OIDC issuer on but no "
                            "issuer URL yet", "wait a minute for AKS to publish it, then run "
                            "`aksrun doctor` again.", **facts)
    return Outcome.ok(f"OIDC issuer {facts['oidc_issuer_url']}, workload identity on", **facts)


def cluster_facts(cluster: Any) -> dict[str, Any]:
    oidc = getattr(cluster, "oidc_issuer_profile", None)
    security = getattr(cluster, "security_profile", None)
    workload = getattr(security, "workload_identity", None) if security else None
    power = getattr(cluster, "power_state", None)
    return {
        "kubernetes_version": (getattr(cluster, "current_kubernetes_version", None)
                               or getattr(cluster, "kubernetes_version", None) or "?"),
        "provisioning_state": getattr(cluster, "provisioning_state", None) or "?",
        "power_state": getattr(power, "code", None),
        "oidc_issuer_enabled": bool(getattr(oidc, "enabled", False)),
        "oidc_issuer_url": getattr(oidc, "issuer_url", None),
        "workload_identity": bool(getattr(workload, "enabled", False)),
        "entra_id": getattr(cluster, "aad_profile", None) is not None,
        "fqdn": getattr(cluster, "fqdn", None) or getattr(cluster, "private_fqdn", None),
    }


def _arm_failure(exc: Any, where: str, config: Any) -> Outcome:
    code = arm_error_code(exc) or ""
    status = getattr(exc, "status_code", None)
    said = arm_error_message(exc)
    if code == "ResourceGroupNotFound":
        return Outcome.fail(f"resource group {config.resource_group!r} does not exist: {said}",
                            "set AZURE_RESOURCE_GROUP to the cluster's resource group "
                            "(`az aks list -o table`).")
    if code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
        return Outcome.fail(f"subscription {config.subscription_id} was not found: {said}",
                            "set AZURE_SUBSCRIPTION_ID to one you can see "
                            "(`az account list -o table`).")
    if status == 404:
        return Outcome.fail(f"{where} was not found", "set AZURE_AKS_CLUSTER_NAME and "
                            "AZURE_RESOURCE_GROUP to an existing cluster (`az aks list -o table`).")
    if status == 403:  # ARM says 403, not 404, to who may not read the resource group
        return Outcome.fail(f"ARM won't show you {where}: it does not exist, or you lack a "
                            "role on it", "check AZURE_AKS_CLUSTER_NAME and "
                            "AZURE_RESOURCE_GROUP (`az aks list -o table`), and if they are "
                            "right ask an owner for the 'Azure Kubernetes Service Cluster User "
                            "Role' on the cluster.", arm_said=said)
    if status == 401:
        return Outcome.fail(f"ARM refused your token: {said}",
                            "sign in to the cluster's tenant (`az login --tenant <tenant id>`).")
    return Outcome.fail(f"ARM answered HTTP {status} {code} for {where}: {said}",
                        "try again in a minute; if it persists, check Azure's status page.")
