"""`admin teardown`: remove everything aksrun created for a cluster, and nothing else.

Every user (found from aksrun's namespaces, identities and containers, so a half-removed
user is still found), then the shared pieces aksrun made: the node-reader ClusterRole, the
kubelet identity's AcrPull, and the storage account and registry if aksrun created them
(tagged). A storage account or registry that existed before bootstrap stays, and so does the
cluster's workload identity: other workloads may rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import cluster as clusters
from . import identity as identities
from . import kube_objects, roles, storage, users
from . import registry as registries
from .context import AdminContext
from .steps import SKIPPED


@dataclass
class TeardownResult:
    users: list[str] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)


def find_users(ctx: AdminContext, storage_account: str | None = None) -> dict[str, str | None]:
    """user -> the person's object id (None when only Azure parts are left)."""
    found: dict[str, str | None] = dict(kube_objects.list_user_namespaces(ctx))
    for user in identities.list_user_identities(ctx):
        found.setdefault(user, None)
    account = storage.find_account(ctx, storage_account)
    if account is not None:
        for user in storage.list_user_containers(ctx, storage.account_ref(account)):
            found.setdefault(user, None)
    return found


def teardown(ctx: AdminContext, *, storage_account: str | None = None,
             registry: str | None = None) -> TeardownResult:
    clusters.read_cluster(ctx)  # the resource group and cluster exist (typed errors if not)
    people = find_users(ctx, storage_account)
    result = TeardownResult(users=sorted(people))
    for user in sorted(people):
        users.remove_user(ctx, user, storage_account=storage_account, registry=registry,
                          other_owners=set())
    kube_objects.remove_node_reader_role(ctx)
    acr = registries.find_registry(ctx, registry)
    if acr is not None:
        roles.remove_aksrun_assignments(ctx, acr.id, "the cluster's kubelet identity")
    for resource in storage.list_tagged_accounts(ctx):
        storage.remove_account(ctx, resource)
    for resource in registries.list_tagged(ctx):
        registries.remove_registry(ctx, resource)
    ctx.log.add("workload identity", ctx.target.cluster_name, SKIPPED,
                "left on: other workloads may use it")
    result.steps = list(ctx.log.steps)
    return result

