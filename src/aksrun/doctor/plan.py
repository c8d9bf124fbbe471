"""Which checks apply to a configuration, and what each builds on.

The local backend gets the configuration and its store; Kubernetes adds the API server, the
namespace, the service account and the verbs; AZURE_* cluster settings add ARM's view of the
cluster and the workload-identity chain; a registry adds the image checks.
"""

from __future__ import annotations

from ..core.config import Config
from .checks import (
    aks,
    configuration,
    credential,
    federation,
    images,
    kubernetes,
    namespace,
    permissions,
    store,
)
from .model import Check
from .scope import has_cluster_settings, needs_credential, uses_workload_identity

NETWORK = "check your network connection, then run `aksrun doctor` again."
CLUSTER_DOWN = ("check the cluster is running and reachable from here (a private cluster: "
                "connect to its network).")


def plan(config: Config) -> list[Check]:
    checks = [Check("configuration", "configuration", configuration.check_configuration)]
    azure = needs_credential(config)
    on_k8s = config.backend in ("kubernetes", "aks")
    arm_cluster = has_cluster_settings(config)
    signed_in = ("credential",) if azure else ()
    if azure:
        checks.append(Check("credential", "Azure credential", credential.check_credential,
                            ("configuration",),
                            "check `az login` works, or the AZURE_* identity variables."))
    if arm_cluster:
        checks += [
            Check("aks-cluster", "AKS cluster", aks.check_aks_cluster, signed_in, NETWORK),
            Check("workload-identity", "OIDC issuer and workload identity",
                  aks.check_workload_identity, ("aks-cluster",)),
        ]
    if on_k8s:
        reach = ("aks-cluster", *signed_in) if config.backend == "aks" else ("configuration",)
        checks += [
            Check("kubernetes", "Kubernetes API", kubernetes.check_kubernetes, reach,
                  CLUSTER_DOWN),
            Check("namespace", "namespace", namespace.check_namespace, ("kubernetes",),
                  CLUSTER_DOWN),
            Check("service-account", "service account", namespace.check_service_account,
                  ("namespace",), CLUSTER_DOWN),
            Check("permissions", "Kubernetes permissions", permissions.check_permissions,
                  ("namespace",), CLUSTER_DOWN),
        ]
        if arm_cluster and uses_workload_identity(config):
            checks.append(Check("federated-credential", "federated credential",
                                federation.check_federated_credential,
                                ("service-account", "workload-identity", *signed_in), NETWORK))
    store_needs = ("credential",) if azure and config.store_url.startswith("az://") else ()
    checks.append(Check("store", "store", store.check_store, ("configuration", *store_needs),
                        "check the storage account's name and your network."))
    if on_k8s:
        if config.registry:
            checks.append(Check("registry", "container registry", images.check_registry,
                                signed_in, "check AZURE_CONTAINER_REGISTRY and your network."))
        checks.append(Check("runner-image", "runner image", images.check_runner_image,
                            ("registry",) if config.registry else ("configuration",), NETWORK))
        if config.registry:
            checks.append(Check("versions", "Python and cloudpickle", images.check_versions,
                                ("runner-image",), NETWORK))
    return checks


def note(config: Config) -> str:
    if config.backend == "local":
        return ("local backend: jobs run as processes on this machine, so only the "
                "configuration and the store apply; set AZURE_AKS_CLUSTER_NAME (with "
                "AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP) to check a cluster.")
    return f"{config.backend} backend, namespace {config.effective_namespace}"
