"""The cluster's Kubernetes API as its admin, reached with nothing but the Azure credential.

The kubeconfig comes from ARM: `listClusterAdminCredential` (what `az aks get-credentials
--admin` calls). Clusters that disable local accounts refuse it, and admins without the
Cluster Admin role may not call it; then `listClusterUserCredential` with the Entra ID
user, whose tokens `DefaultAzureCredential` supplies (kubeconfig.py). `--kubeconfig` (or
AKSRUN_ADMIN_KUBECONFIG) names a kubeconfig to use instead, for clusters reached otherwise.
"""

from __future__ import annotations

from typing import Any

from ..adapters.azure.kubeconfig import load_kubernetes_client, write_private_kubeconfig
from . import arm
from .context import AdminContext


def admin_api_client(ctx: AdminContext) -> Any:
    if ctx.kubeconfig:
        return load_kubernetes_client(ctx.kubeconfig, ctx.credential)
    data = _admin_kubeconfig(ctx)
    path = write_private_kubeconfig(data)
    return load_kubernetes_client(path, ctx.credential)


def _admin_kubeconfig(ctx: AdminContext) -> bytes:
    from azure.core.exceptions import HttpResponseError

    t = ctx.target
    clusters = ctx.containerservice.managed_clusters

    def admin() -> Any:
        try:
            return clusters.list_cluster_admin_credentials(t.resource_group, t.cluster_name)
        except HttpResponseError as exc:
            # local accounts disabled (400) or no Cluster Admin role (403): the Entra user
            if exc.status_code in (400, 403):
                return None
            raise

    result = arm.call(f"getting the admin credentials of AKS cluster {t.cluster_name!r}", admin,
                      **t.where())
    if result is None:
        result = arm.call(f"getting the credentials of AKS cluster {t.cluster_name!r}",
                          lambda: clusters.list_cluster_user_credentials(
                              t.resource_group, t.cluster_name, format="exec"), **t.where())
    kubeconfigs = list(getattr(result, "kubeconfigs", None) or [])
    if not kubeconfigs or not kubeconfigs[0].value:
        from .errors import AdminError

        raise AdminError(f"Azure returned no kubeconfig for AKS cluster {t.cluster_name!r}.")
    value = kubeconfigs[0].value
    return value.encode() if isinstance(value, str) else bytes(value)
