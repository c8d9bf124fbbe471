"""The AKS cluster as the admin commands need it: its identity facts, and workload identity.

Enabling the OIDC issuer and workload identity is done as `az aks update
--enable-oidc-issuer --enable-workload-identity` does it: GET the managed cluster, set
`oidcIssuerProfile.enabled` and `securityProfile.workloadIdentity.enabled` on that very
object, PUT it back (with its ETag, so a concurrent change is refused rather than undone).
Nothing else on the cluster is touched: the object sent is the one read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import arm
from .context import AdminContext
from .errors import ClusterNotFoundError
from .steps import CHANGED, FOUND, MISSING, WOULD_CHANGE


@dataclass(frozen=True)
class ClusterFacts:
    """What provisioning reads from the managed cluster."""

    id: str
    name: str
    location: str
    oidc_enabled: bool
    issuer_url: str | None
    workload_identity: bool
    azure_rbac: bool
    entra: bool  # AKS-managed Entra ID integration
    local_accounts_disabled: bool
    kubelet_object_id: str | None

    @property
    def workload_identity_ready(self) -> bool:
        return self.oidc_enabled and self.workload_identity and bool(self.issuer_url)


def read_cluster(ctx: AdminContext) -> Any:
    """The managed cluster (SDK model), or ClusterNotFoundError with the fix."""
    t = ctx.target
    found = arm.get_or_none(f"reading AKS cluster {t.cluster_name!r}",
                            lambda: ctx.containerservice.managed_clusters.get(
                                t.resource_group, t.cluster_name), **t.where())
    if found is None:
        raise ClusterNotFoundError(
            f"no AKS cluster {t.cluster_name!r} in resource group {t.resource_group!r} "
            f"(subscription {t.subscription_id}): check --cluster and --resource-group "
            "(`az aks list -o table`).")
    return found


def facts(cluster: Any) -> ClusterFacts:
    oidc = cluster.oidc_issuer_profile
    security = cluster.security_profile
    workload = security.workload_identity if security is not None else None
    aad = cluster.aad_profile
    kubelet = (cluster.identity_profile or {}).get("kubeletidentity")
    return ClusterFacts(
        id=cluster.id, name=cluster.name, location=cluster.location,
        oidc_enabled=bool(oidc and oidc.enabled),
        issuer_url=(oidc.issuer_url if oidc else None) or None,
        workload_identity=bool(workload and workload.enabled),
        azure_rbac=bool(aad and aad.enable_azure_rbac),
        entra=bool(aad and aad.managed),
        local_accounts_disabled=bool(cluster.disable_local_accounts),
        kubelet_object_id=getattr(kubelet, "object_id", None) if kubelet else None,
    )


def ensure_workload_identity(ctx: AdminContext, enable: bool) -> ClusterFacts:
    """Report (and with `enable`, turn on) the OIDC issuer and workload identity."""
    cluster = read_cluster(ctx)
    current = facts(cluster)
    name = ctx.target.cluster_name
    if current.workload_identity_ready:
        ctx.log.add("workload identity", name, FOUND, f"OIDC issuer {current.issuer_url}")
        return current
    off = [part for part, on in (("the OIDC issuer", current.oidc_enabled),
                                 ("workload identity", current.workload_identity)) if not on]
    what = " and ".join(off) or "the OIDC issuer URL"
    if not enable:
        ctx.log.add("workload identity", name, MISSING,
                    f"{what} off: re-run with --enable-workload-identity (what `az aks update "
                    "--enable-oidc-issuer --enable-workload-identity` does)")
        return current
    if ctx.dry_run:
        ctx.log.add("workload identity", name, WOULD_CHANGE, f"would enable {what}")
        return current
    _enable(ctx, cluster)
    updated = facts(read_cluster(ctx))
    ctx.log.add("workload identity", name, CHANGED,
                f"enabled {what}; OIDC issuer {updated.issuer_url}")
    return updated


def _enable(ctx: AdminContext, cluster: Any) -> None:
    from azure.mgmt.containerservice import models

    if cluster.oidc_issuer_profile is None:
        cluster.oidc_issuer_profile = models.ManagedClusterOIDCIssuerProfile(enabled=True)
    else:
        cluster.oidc_issuer_profile.enabled = True
    if cluster.security_profile is None:
        cluster.security_profile = models.ManagedClusterSecurityProfile()
    if cluster.security_profile.workload_identity is None:
        cluster.security_profile.workload_identity = (
            models.ManagedClusterSecurityProfileWorkloadIdentity(enabled=True))
    else:
        cluster.security_profile.workload_identity.enabled = True
    t = ctx.target
    from azure.core import MatchConditions

    # The ETag read: a change made meanwhile is refused (412), never silently undone.
    extra = ({"etag": cluster.e_tag, "match_condition": MatchConditions.IfNotModified}
             if cluster.e_tag else {})
    ctx.on_progress(f"enabling workload identity on {t.cluster_name} (a cluster update takes "
                    "minutes)")
    arm.call(f"enabling workload identity on AKS cluster {t.cluster_name!r}",
             lambda: ctx.containerservice.managed_clusters.begin_create_or_update(
                 t.resource_group, t.cluster_name, cluster, **extra).result(), **t.where())


def require_workload_identity(ctx: AdminContext) -> ClusterFacts:
    """The cluster's facts, or NotBootstrappedError when workload identity is off."""
    from .errors import NotBootstrappedError

    current = facts(read_cluster(ctx))
    if not current.workload_identity_ready:
        t = ctx.target
        raise NotBootstrappedError(
            f"AKS cluster {t.cluster_name!r} has no OIDC issuer or workload identity on, so no "
            "pod could act as the new identity: run `aksrun admin bootstrap --resource-group "
            f"{t.resource_group} --cluster {t.cluster_name} --enable-workload-identity` first.")
    return current
