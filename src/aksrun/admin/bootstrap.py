"""`admin bootstrap`: what every user of a cluster shares, found or made once.

1. the cluster's OIDC issuer and workload identity (enabled only when asked: it is a change
   to the cluster, made as `az aks update` makes it);
2. the storage account (secure defaults when created);
3. the container registry;
4. AcrPull on the registry for the cluster's kubelet identity: nodes pull images with it,
   so pods' own identities never need registry rights;
5. the runner image for this client's Python and aksrun, built with ACR Tasks if missing.

Each step finds before it creates, so a second run prints only "found"; `--dry-run` reads
everything and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import cluster as clusters
from . import registry as registries
from . import roles, storage
from .context import AdminContext
from .steps import CREATED, FOUND, MISSING, SKIPPED, WOULD_CREATE


@dataclass
class BootstrapResult:
    steps: list[Any] = field(default_factory=list)
    storage_account: str | None = None
    registry: str | None = None
    login_server: str | None = None
    runner_image: str | None = None

    @property
    def missing(self) -> list[Any]:
        return [s for s in self.steps if s.state == MISSING]


def bootstrap(ctx: AdminContext, *, storage_account: str | None = None,
              registry: str | None = None, enable_workload_identity: bool = False,
              runner_image: bool = True) -> BootstrapResult:
    facts = clusters.ensure_workload_identity(ctx, enable_workload_identity)
    account = storage.ensure_account(ctx, storage_account, facts.location)
    acr = registries.ensure_registry(ctx, registry, facts.location)
    if facts.kubelet_object_id:
        roles.ensure(ctx, roles.Grant(acr.id, roles.ACR_PULL, facts.kubelet_object_id,
                                      "ServicePrincipal", "the cluster's kubelet identity"),
                     scope_planned=acr.planned)
    else:
        ctx.log.add("role assignment", "AcrPull for the cluster's kubelet identity", MISSING,
                    "the cluster has no kubelet managed identity (a service-principal cluster):"
                    " grant its service principal AcrPull on the registry by hand")
    result = BootstrapResult(storage_account=account.name, registry=acr.name,
                             login_server=acr.login_server)
    if runner_image:
        result.runner_image = _runner_image(ctx, acr)
    else:
        ctx.log.add("runner image", "aksrun-runner", SKIPPED, "--no-image")
    result.steps = list(ctx.log.steps)
    return result


def _runner_image(ctx: AdminContext, acr: registries.RegistryRef) -> str | None:
    from ..errors import ConfigError
    from ..images.resolve import Images

    config = ctx.with_config(registry=acr.name, registry_login_server=acr.login_server,
                             registry_resource_group=acr.resource_group,
                             subscription_id=ctx.target.subscription_id,
                             resource_group=ctx.target.resource_group)
    if acr.planned:
        images = Images(config)
        ctx.log.add("runner image", images.reference_by_tag(), WOULD_CREATE,
                    "built with ACR Tasks once the registry exists")
        return None

    def on_status(run_id: str, status: str) -> None:
        ctx.on_progress(f"building the runner image with ACR Tasks: run {run_id} {status}")

    images = Images(config, credential=ctx.credential, on_status=on_status)
    name = images.reference_by_tag()
    if ctx.dry_run:
        try:
            found = images.runner(build=False)
        except ConfigError:
            ctx.log.add("runner image", name, WOULD_CREATE, "built with ACR Tasks")
            return None
        ctx.log.add("runner image", found.reference, FOUND)
        return found.reference
    ctx.on_progress(f"looking up {name}")
    resolved = images.runner()
    if resolved.built:
        ctx.log.add("runner image", resolved.reference, CREATED,
                    f"built in {resolved.seconds:.0f} s (ACR run {resolved.run_id})")
    else:
        ctx.log.add("runner image", resolved.reference, FOUND)
    return resolved.reference
