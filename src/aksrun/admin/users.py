"""`add-user` and `remove-user`: everything one person needs, and its removal.

add-user checks everything it can before it writes anything (the name, the person in Entra
ID, the cluster's workload identity, the storage account, that nothing of that name belongs
to someone else), then finds or creates each piece in an order where every piece's
prerequisites come first. Each step is idempotent, so a failure midway leaves a state that
running the same command again completes, and running it on a complete user changes nothing
and says so.

remove-user removes what add-user made, recognised by aksrun's tags, labels, container
metadata and role-assignment names, role assignments first (they are found through their
scopes, which must still exist), then the container, the identity and the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core import naming
from . import cluster as clusters
from . import identity as identities
from . import kube_objects, principals, roles, storage
from . import registry as registries
from .context import AdminContext
from .errors import UserConflictError
from .probe import DEFAULT_TIMEOUT, ProbeTarget, service_account_token, wait_until_reachable
from .steps import ABSENT, READY, SKIPPED, WOULD_CREATE


@dataclass
class UserResult:
    user: str
    steps: list[Any] = field(default_factory=list)
    changed: bool = False
    exists: bool = True  # remove-user: whether there was anything of the user's
    waited: float | None = None
    init_command: str = ""  # add-user: what the person runs next


def add_user(ctx: AdminContext, user: str, principal: str, *,
             storage_account: str | None = None, registry: str | None = None,
             wait: float | None = DEFAULT_TIMEOUT,
             probe_interval: float | None = None) -> UserResult:
    naming.check_user(user)
    person = principals.resolve(ctx.config, ctx.credential, principal)
    facts = clusters.require_workload_identity(ctx)
    account = storage.require_account(ctx, storage_account)
    acr = registries.find_registry(ctx, registry)
    _preflight(ctx, user, person)
    person_label = f"{person.display} ({user})"
    # First write: ARM itself checks the person exists (PrincipalNotFound) before anything
    # else is made; it lets their client fetch the kubeconfig (listClusterUserCredential).
    roles.ensure(ctx, roles.Grant(facts.id, roles.AKS_CLUSTER_USER, person.object_id,
                                  person.principal_type, person_label))

    identity = identities.ensure_identity(ctx, user, facts.location)
    identities.ensure_federated_credential(ctx, user, identity, facts.issuer_url)
    # The person may read their identity and its federated credential (`aksrun doctor`).
    roles.ensure(ctx, roles.Grant(identity.id, roles.READER, person.object_id,
                                  person.principal_type, person_label),
                 scope_planned=identity.planned)
    exists = kube_objects.ensure_namespace(ctx, user, person)
    kube_objects.ensure_service_account(ctx, user, identity.client_id, planned=not exists)
    kube_objects.ensure_role(ctx, user, planned=not exists)
    kube_objects.ensure_role_binding(ctx, user, person, planned=not exists)
    kube_objects.ensure_node_reader(ctx, user, person)
    if acr is not None:
        # The client looks the runner image up by tag before each new function's first call
        # (and `aksrun doctor` checks it): reading the registry takes AcrPull. Pods never
        # need it: nodes pull with the kubelet identity.
        roles.ensure(ctx, roles.Grant(acr.id, roles.ACR_PULL, person.object_id,
                                      person.principal_type, person_label))
    else:
        ctx.log.add("role assignment", f"AcrPull for {person_label}", SKIPPED,
                    "no container registry found: run `aksrun admin bootstrap`, then add-user "
                    "again")
    if facts.azure_rbac:
        roles.ensure(ctx, roles.Grant(f"{facts.id}/namespaces/{naming.namespace(user)}",
                                      roles.AKS_RBAC_WRITER, person.object_id,
                                      person.principal_type, person_label),
                     scope_planned=not exists)
    container_planned = storage.ensure_container(ctx, account, user) == WOULD_CREATE
    scope = storage.container_scope(account, naming.container(user))
    if identity.principal_id:
        roles.ensure(ctx, roles.Grant(scope, roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
                                      identity.principal_id, "ServicePrincipal",
                                      f"{user}'s identity"), scope_planned=container_planned)
    else:
        ctx.log.add("role assignment", f"Storage Blob Data Contributor for {user}'s identity",
                    WOULD_CREATE, f"on container {naming.container(user)}")
    roles.ensure(ctx, roles.Grant(scope, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, person.object_id,
                                  person.principal_type, person_label),
                 scope_planned=container_planned)

    result = UserResult(user, changed=ctx.log.changed,
                        init_command=_init_command(ctx, user, account, acr))
    if ctx.dry_run:
        ctx.log.add("access check", user, SKIPPED, "dry run: nothing to wait for")
    elif wait is None or wait <= 0:
        ctx.log.add("access check", user, SKIPPED, "--no-wait: not checked")
    else:
        from . import probe

        result.waited = _wait(ctx, user, identity, account, wait,
                              probe_interval or probe.INTERVAL)
    result.steps = list(ctx.log.steps)
    return result


def _init_command(ctx: AdminContext, user: str, account: storage.Account, acr: Any) -> str:
    """Every name init would otherwise ask ARM for: a person needs no Reader on the group."""
    t = ctx.target
    words = ["aksrun", "init", "--subscription", t.subscription_id, "--resource-group",
             t.resource_group, "--cluster", t.cluster_name, "--storage-account", account.name]
    if acr is not None:
        words += ["--registry", acr.name]
        if registries.resource_group(ctx) != t.resource_group:
            words += ["--registry-resource-group", registries.resource_group(ctx)]
    return " ".join([*words, "--user", user])


def _preflight(ctx: AdminContext, user: str, person: principals.Principal) -> None:
    """Refuse before any write when the name is someone else's."""
    namespace = kube_objects.read_namespace(ctx, user)
    if namespace is not None and kube_objects.is_aksrun(namespace, user):
        owner = kube_objects.owner_of(namespace)
        if owner and owner.lower() != person.object_id.lower():
            raise UserConflictError(
                f"aksrun user {user!r} already belongs to principal {owner} "
                f"({namespace.metadata.annotations.get(kube_objects.PRINCIPAL_NAME_ANNOTATION, '')}"
                f"), not {person.display}: choose another user name, or `aksrun admin "
                f"remove-user {user}` first.")
    elif namespace is not None:
        raise UserConflictError(f"namespace {naming.namespace(user)!r} exists and was not made "
                                f"by aksrun for {user!r}: choose another user name.")
    found = identities.get_identity(ctx, user)
    if found is not None and not identities.is_aksrun(found.tags, user):
        raise UserConflictError(f"managed identity {naming.identity(user)!r} exists and is not "
                                f"aksrun's for {user!r}: choose another user name.")


def _wait(ctx: AdminContext, user: str, identity: identities.IdentityRef,
          account: storage.Account, timeout: float, interval: float) -> float:
    from kubernetes import client

    if not account.blob_endpoint:
        ctx.log.add("access check", user, SKIPPED,
                    f"storage account {account.name} shows no blob endpoint")
        return 0.0
    target = ProbeTarget(user, identity.tenant_id or "", identity.client_id or "",
                         account.blob_endpoint, naming.container(user))
    token = service_account_token(client.CoreV1Api(ctx.kube()), user)
    seconds, attempts = wait_until_reachable(target, token, timeout=timeout, interval=interval,
                                             on_progress=ctx.on_progress)
    ctx.log.add("access check", user, READY,
                f"the identity wrote, read and deleted a blob in {target.container} after "
                f"{seconds:.1f} s ({attempts} attempt{'s' if attempts != 1 else ''})")
    return seconds


def remove_user(ctx: AdminContext, user: str, *, storage_account: str | None = None,
                registry: str | None = None,
                other_owners: set[str] | None = None) -> UserResult:
    """Remove the user's things; `other_owners`: object ids of people other aksrun users
    belong to (their cluster-level grants stay). Says so when nothing was there."""
    naming.check_user(user)
    facts = clusters.facts(clusters.read_cluster(ctx))
    namespace = kube_objects.read_namespace(ctx, user)
    person = kube_objects.owner_of(namespace) if kube_objects.is_aksrun(namespace, user) \
        else None
    account_resource = storage.find_account(ctx, storage_account)
    account = storage.account_ref(account_resource) if account_resource is not None else None
    identity = identities.get_identity(ctx, user)
    names = {person: f"{_person_name(namespace) or person} ({user})"} if person else {}
    if identity is not None and identities.is_aksrun(identity.tags, user):
        names[identity.principal_id] = f"{user}'s identity"

    if account is not None:
        scope = storage.container_scope(account, naming.container(user))
        roles.remove_aksrun_assignments(ctx, scope, f"{user} (container)", names=names)
    ns_scope = f"{facts.id}/namespaces/{naming.namespace(user)}"
    roles.remove_aksrun_assignments(ctx, ns_scope, f"{user} (namespace)", names=names)
    if identity is not None and identities.is_aksrun(identity.tags, user):
        # Assignments outlive the resource they are scoped to: remove them first.
        roles.remove_aksrun_assignments(ctx, identity.id, f"{user} (identity)", names=names)
    if person is not None:
        if other_owners is None:
            others = {owner for name, owner in kube_objects.list_user_namespaces(ctx).items()
                      if name != user and owner}
        else:
            others = other_owners
        if person.lower() not in {o.lower() for o in others}:
            roles.remove_aksrun_assignments(ctx, facts.id, f"{user} (cluster credentials)",
                                            principal_id=person, names=names)
            acr = registries.find_registry(ctx, registry)
            if acr is not None:
                roles.remove_aksrun_assignments(ctx, acr.id, f"{user} (registry)",
                                                principal_id=person, names=names)
    if account is not None:
        storage.remove_container(ctx, account, user)
    else:
        ctx.log.add("blob container", naming.container(user), ABSENT, "no storage account")
    identities.remove_identity(ctx, user)
    kube_objects.remove_user_objects(ctx, user)

    steps = list(ctx.log.steps)
    removed = [s for s in steps if s.state not in (ABSENT,)]
    return UserResult(user, steps, changed=ctx.log.changed, exists=bool(removed))


def _person_name(namespace: Any) -> str | None:
    annotations = (namespace.metadata.annotations or {}) if namespace is not None else {}
    return annotations.get(kube_objects.PRINCIPAL_NAME_ANNOTATION)
