"""The Kubernetes objects of one aksrun user, created and removed through the admin client.

In namespace `aksrun-<user>`: the service account `aksrun` annotated with the identity's
client id (Azure Workload Identity), aksrun's Role (kubernetes_rbac: only the verbs the
client uses) and a RoleBinding to the person. Cluster-wide: the read-only node reader
ClusterRole (shared) and one binding per user. Everything carries aksrun's labels (naming),
the namespace also the person's object id, so removal and a second add-user know whose it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..adapters import kubernetes_rbac as rbac
from ..core import naming
from .context import AdminContext
from .errors import AdminError, UserConflictError
from .principals import Principal
from .steps import (
    ABSENT,
    CHANGED,
    CREATED,
    FOUND,
    REMOVED,
    SKIPPED,
    WOULD_CHANGE,
    WOULD_CREATE,
    WOULD_REMOVE,
)

PRINCIPAL_ANNOTATION = "aksrun.io/principal"
PRINCIPAL_NAME_ANNOTATION = "aksrun.io/principal-name"


def _apis(ctx: AdminContext) -> tuple[Any, Any]:
    from kubernetes import client

    api = ctx.kube()
    return client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)


def _kube_call(what: str, fn: Callable[[], Any]) -> Any:
    """`fn()`; None on 404; other refusals as AdminError naming the step."""
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn()
    except ApiException as exc:
        if exc.status == 404:
            return None
        reason = exc.reason
        try:
            import json

            reason = json.loads(exc.body or "{}").get("message") or reason
        except ValueError:
            pass
        fix = (" The admin kubeconfig needs cluster-admin rights (the cluster's admin "
               "credential, or Azure Kubernetes Service RBAC Cluster Admin)."
               if exc.status == 403 else "")
        raise AdminError(f"{what}: the Kubernetes API said {exc.status}: {reason}.{fix}") \
            from exc
    except HTTPError as exc:
        raise AdminError(f"{what}: could not reach the cluster's API server ({exc}).") from exc


def _labels(user: str | None) -> dict[str, str]:
    return naming.labels(user)


def _with_labels(body: dict[str, Any], user: str | None) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"].setdefault("labels", {}).update(_labels(user))
    return body


def read_namespace(ctx: AdminContext, user: str) -> Any:
    core, _ = _apis(ctx)
    name = naming.namespace(user)
    return _kube_call(f"reading namespace {name}", lambda: core.read_namespace(name))


def owner_of(namespace: Any) -> str | None:
    """The object id of the person a namespace aksrun made is for."""
    annotations = (namespace.metadata.annotations or {}) if namespace else {}
    return annotations.get(PRINCIPAL_ANNOTATION)


def is_aksrun(obj: Any, user: str | None = None) -> bool:
    labels = (obj.metadata.labels or {}) if obj is not None else {}
    if labels.get(naming.K8S_MANAGED_BY_LABEL) != naming.MANAGED_BY:
        return False
    return user is None or labels.get(naming.K8S_USER_LABEL) == user


def ensure_namespace(ctx: AdminContext, user: str, person: Principal) -> bool:
    """Returns True when the namespace exists now (False: planned in a dry run)."""
    core, _ = _apis(ctx)
    name = naming.namespace(user)
    found = read_namespace(ctx, user)
    if found is not None:
        if not is_aksrun(found, user):
            raise UserConflictError(f"namespace {name!r} exists and was not made by aksrun for "
                                    f"{user!r}: choose another user name, or remove it.")
        if found.metadata.deletion_timestamp:
            raise AdminError(f"namespace {name!r} is being deleted (a remove-user in progress):"
                             " wait until it is gone, then run add-user again.")
        ctx.log.add("namespace", name, FOUND, f"for {_owner_name(found)}")
        return True
    if ctx.dry_run:
        ctx.log.add("namespace", name, WOULD_CREATE, f"for {person.display}")
        return False
    body = {"metadata": {"name": name, "labels": _labels(user), "annotations": {
        PRINCIPAL_ANNOTATION: person.object_id, PRINCIPAL_NAME_ANNOTATION: person.display}}}
    _kube_call(f"creating namespace {name}", lambda: core.create_namespace(body))
    ctx.log.add("namespace", name, CREATED, f"for {person.display}")
    return True


def _owner_name(namespace: Any) -> str:
    annotations = namespace.metadata.annotations or {}
    return annotations.get(PRINCIPAL_NAME_ANNOTATION) or annotations.get(
        PRINCIPAL_ANNOTATION) or "?"


def ensure_service_account(ctx: AdminContext, user: str, client_id: str | None,
                           planned: bool) -> None:
    core, _ = _apis(ctx)
    namespace = naming.namespace(user)
    name = naming.SERVICE_ACCOUNT
    label = f"{namespace}/{name}"
    want = client_id or "<the identity's client id>"
    if not planned:
        found = _kube_call(f"reading service account {label}",
                           lambda: core.read_namespaced_service_account(name, namespace))
        if found is not None:
            have = (found.metadata.annotations or {}).get(naming.WORKLOAD_IDENTITY_CLIENT_ID)
            if have == client_id:
                ctx.log.add("service account", label, FOUND, f"client id {have}")
                return
            if ctx.dry_run:
                ctx.log.add("service account", label, WOULD_CHANGE, f"client id {want}")
                return
            patch = {"metadata": {"annotations": {naming.WORKLOAD_IDENTITY_CLIENT_ID: client_id},
                                  "labels": _labels(user)}}
            _kube_call(f"annotating service account {label}",
                       lambda: core.patch_namespaced_service_account(name, namespace, patch))
            ctx.log.add("service account", label, CHANGED, f"client id {client_id} (was {have})")
            return
    if ctx.dry_run:
        ctx.log.add("service account", label, WOULD_CREATE, f"client id {want}")
        return
    body = {"metadata": {"name": name, "namespace": namespace, "labels": _labels(user),
                         "annotations": {naming.WORKLOAD_IDENTITY_CLIENT_ID: client_id}}}
    _kube_call(f"creating service account {label}",
               lambda: core.create_namespaced_service_account(namespace, body))
    ctx.log.add("service account", label, CREATED, f"client id {client_id}")


def ensure_role(ctx: AdminContext, user: str, planned: bool) -> None:
    _, api = _apis(ctx)
    namespace = naming.namespace(user)
    body = _with_labels(rbac.user_role(namespace), user)
    label = f"{namespace}/{rbac.ROLE_NAME}"
    _ensure_rbac(ctx, "role", label, planned, body,
                 read=lambda: api.read_namespaced_role(rbac.ROLE_NAME, namespace),
                 create=lambda: api.create_namespaced_role(namespace, body),
                 replace=lambda: api.replace_namespaced_role(rbac.ROLE_NAME, namespace, body),
                 same=lambda found: _rules(found) == body["rules"],
                 detail="jobs create/get/list/watch/patch/delete, pods get/list/watch, pods/log, "
                        "events list/watch, serviceaccounts/aksrun get")


def ensure_role_binding(ctx: AdminContext, user: str, person: Principal, planned: bool) -> None:
    _, api = _apis(ctx)
    namespace = naming.namespace(user)
    body = _with_labels(rbac.user_role_binding(namespace, person.kubernetes_name,
                                               person.kubernetes_kind), user)
    label = f"{namespace}/{rbac.ROLE_NAME}"
    _ensure_rbac(ctx, "role binding", label, planned, body,
                 read=lambda: api.read_namespaced_role_binding(rbac.ROLE_NAME, namespace),
                 create=lambda: api.create_namespaced_role_binding(namespace, body),
                 replace=lambda: api.replace_namespaced_role_binding(rbac.ROLE_NAME, namespace,
                                                                     body),
                 same=lambda found: _subjects(found) == body["subjects"],
                 detail=f"to {person.kubernetes_kind} {person.kubernetes_name}")


def ensure_node_reader(ctx: AdminContext, user: str, person: Principal) -> None:
    """The shared read-only node ClusterRole, and this user's binding to it."""
    _, api = _apis(ctx)
    role = _with_labels(rbac.node_reader_role(), None)
    _ensure_rbac(ctx, "cluster role", rbac.NODE_READER, False, role,
                 read=lambda: api.read_cluster_role(rbac.NODE_READER),
                 create=lambda: api.create_cluster_role(role),
                 replace=lambda: api.replace_cluster_role(rbac.NODE_READER, role),
                 same=lambda found: _rules(found) == role["rules"],
                 detail="nodes get/list (whether a waiting pod could ever fit)")
    binding = _with_labels(rbac.node_reader_binding(person.kubernetes_name,
                                                    person.kubernetes_kind), user)
    name = node_reader_binding_name(user)
    binding["metadata"]["name"] = name
    _ensure_rbac(ctx, "cluster role binding", name, False, binding,
                 read=lambda: api.read_cluster_role_binding(name),
                 create=lambda: api.create_cluster_role_binding(binding),
                 replace=lambda: api.replace_cluster_role_binding(name, binding),
                 same=lambda found: _subjects(found) == binding["subjects"],
                 detail=f"{rbac.NODE_READER} to {person.kubernetes_name}")


def node_reader_binding_name(user: str) -> str:
    """Named after the aksrun user (not the person), so each user's binding is their own."""
    return f"{rbac.NODE_READER}-{naming.check_user(user)}"


def _ensure_rbac(ctx: AdminContext, kind: str, label: str, planned: bool, body: dict,
                 *, read: Callable[[], Any], create: Callable[[], Any],
                 replace: Callable[[], Any], same: Callable[[Any], bool], detail: str) -> None:
    if not planned:
        found = _kube_call(f"reading {kind} {label}", read)
        if found is not None:
            if same(found):
                ctx.log.add(kind, label, FOUND, detail)
                return
            if ctx.dry_run:
                ctx.log.add(kind, label, WOULD_CHANGE, detail)
                return
            body["metadata"]["resourceVersion"] = found.metadata.resource_version
            _kube_call(f"updating {kind} {label}", replace)
            ctx.log.add(kind, label, CHANGED, detail)
            return
    if ctx.dry_run:
        ctx.log.add(kind, label, WOULD_CREATE, detail)
        return
    _kube_call(f"creating {kind} {label}", create)
    ctx.log.add(kind, label, CREATED, detail)


def _rules(obj: Any) -> list[dict[str, Any]]:
    out = []
    for rule in obj.rules or []:
        entry = {"apiGroups": list(rule.api_groups or []), "resources": list(rule.resources or []),
                 "verbs": list(rule.verbs or [])}
        if rule.resource_names:
            entry["resourceNames"] = list(rule.resource_names)
        out.append(entry)
    return out


def _subjects(obj: Any) -> list[dict[str, Any]]:
    return [{"apiGroup": s.api_group, "kind": s.kind, "name": s.name}
            for s in obj.subjects or []]


# --- removal ------------------------------------------------------------------------------------


def remove_user_objects(ctx: AdminContext, user: str) -> None:
    """The user's ClusterRoleBinding, then the namespace (which takes the service account,
    Role and RoleBinding with it). Only objects labelled as aksrun's for this user."""
    core, api = _apis(ctx)
    name = node_reader_binding_name(user)
    binding = _kube_call(f"reading cluster role binding {name}",
                         lambda: api.read_cluster_role_binding(name))
    if binding is not None and is_aksrun(binding, user):
        if ctx.dry_run:
            ctx.log.add("cluster role binding", name, WOULD_REMOVE)
        else:
            _kube_call(f"removing cluster role binding {name}",
                       lambda: api.delete_cluster_role_binding(name))
            ctx.log.add("cluster role binding", name, REMOVED)
    namespace = naming.namespace(user)
    found = read_namespace(ctx, user)
    if found is None or not is_aksrun(found, user) or found.metadata.deletion_timestamp:
        detail = ("" if found is None else "exists but is not aksrun's: left as it is"
                  if not is_aksrun(found, user) else "already being deleted")
        ctx.log.add("namespace", namespace, ABSENT, detail)
        return
    what = "with its service account, Role, RoleBinding, Jobs and pods"
    if ctx.dry_run:
        ctx.log.add("namespace", namespace, WOULD_REMOVE, what)
        return
    _kube_call(f"removing namespace {namespace}",
               lambda: core.delete_namespace(namespace, propagation_policy="Foreground"))
    ctx.log.add("namespace", namespace, REMOVED, what)


def list_user_namespaces(ctx: AdminContext) -> dict[str, str | None]:
    """user -> the person's object id, for every namespace aksrun made."""
    core, _ = _apis(ctx)
    selector = f"{naming.K8S_MANAGED_BY_LABEL}={naming.MANAGED_BY},{naming.K8S_USER_LABEL}"
    listed = _kube_call("listing aksrun's namespaces",
                        lambda: core.list_namespace(label_selector=selector))
    out: dict[str, str | None] = {}
    for item in (listed.items if listed else []):
        out[item.metadata.labels[naming.K8S_USER_LABEL]] = owner_of(item)
    return out


def remove_node_reader_role(ctx: AdminContext) -> None:
    """The shared node reader, unless a binding aksrun did not make for a user still uses it
    (removing it would take that binding's access away)."""
    _, api = _apis(ctx)
    found = _kube_call(f"reading cluster role {rbac.NODE_READER}",
                       lambda: api.read_cluster_role(rbac.NODE_READER))
    if found is None or not is_aksrun(found):
        ctx.log.add("cluster role", rbac.NODE_READER, ABSENT)
        return
    bindings = _kube_call("listing cluster role bindings", api.list_cluster_role_binding)
    others = sorted(b.metadata.name for b in (bindings.items if bindings else [])
                    if b.role_ref.name == rbac.NODE_READER and b.role_ref.kind == "ClusterRole"
                    and not (ctx.dry_run and is_aksrun(b) and
                             (b.metadata.labels or {}).get(naming.K8S_USER_LABEL)))
    if others:
        ctx.log.add("cluster role", rbac.NODE_READER, SKIPPED,
                    f"left: still bound by {', '.join(others)}")
        return
    if ctx.dry_run:
        ctx.log.add("cluster role", rbac.NODE_READER, WOULD_REMOVE)
        return
    _kube_call(f"removing cluster role {rbac.NODE_READER}",
               lambda: api.delete_cluster_role(rbac.NODE_READER))
    ctx.log.add("cluster role", rbac.NODE_READER, REMOVED)
