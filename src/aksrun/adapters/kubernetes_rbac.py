"""What aksrun may do in a user's namespace: the Role `aksrun admin add-user` grants, as data.

One list of rules serves three readers: the admin commands that create the Role, `doctor`
(one SelfSubjectAccessReview per rule), and the message a refused request gets. Only what
the client really calls is granted; the cluster's own controllers create and delete the pods.

- batch/jobs: create (a submission), get (re-attach), list + watch (the merged watch and
  `jobs ls`), patch (verified output digests kept on the Job, see kubernetes_digests),
  delete (cancel and `jobs rm`; foreground propagation needs nothing more).
- pods: get, list, watch (task states and termination messages); pods/log: get (logs).
- events: list, watch (why a pod or the Job is stuck: scheduling, image pulls, FailedCreate).
- serviceaccounts/aksrun only: get (`doctor` reads its workload-identity annotation).
- nodes (cluster-wide, read-only, optional): whether a waiting pod could ever fit.
"""

from __future__ import annotations

import json
import re
from typing import Any

ROLE_NAME = "aksrun-user"
RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": ["aksrun"],
     "verbs": ["get"]},
)
# Cluster-scoped and read-only: lets the client tell a pod that fits no node (fail at once,
# saying which resource) from one that waits for capacity (queued). Optional: without it,
# only the pending timeout ends a wait.
NODE_READER = "aksrun-node-reader"
NODE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
)
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)"'
    r'(?: in API group "(?P<group>[^"]*)")?')


def user_role(namespace: str) -> dict[str, Any]:
    """The Role aksrun needs in `namespace`, nothing more."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": ROLE_NAME, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "aksrun"}},
        "rules": [dict(rule) for rule in RULES],
    }


def user_role_binding(namespace: str, user: str, kind: str = "User") -> dict[str, Any]:
    """Binds the aksrun Role in `namespace` to one person (`kind` User or Group)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": ROLE_NAME, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "aksrun"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": user}],
    }


def node_reader_role() -> dict[str, Any]:
    """The ClusterRole reading nodes (shared by every aksrun user)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": NODE_READER, "labels": {"app.kubernetes.io/managed-by": "aksrun"}},
        "rules": [dict(rule) for rule in NODE_RULES],
    }


def node_reader_binding(user: str, kind: str = "User") -> dict[str, Any]:
    """Binds the node reader to one person; named after them, so removal finds it."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{NODE_READER}-{_name_part(user)}",
                     "labels": {"app.kubernetes.io/managed-by": "aksrun"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": NODE_READER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": user}],
    }


def _name_part(user: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", user.lower()).strip("-.")[:200] or "user"


def required_access() -> list[tuple[str, str, str]]:
    """(API group, resource, verb) for every namespace-wide permission in the Role, for
    access reviews (rules limited to named objects: `named_access`)."""
    return [(group, resource, verb) for rule in RULES if not rule.get("resourceNames")
            for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]]


def named_access() -> list[tuple[str, str, str, str]]:
    """(API group, resource, verb, name) for the Role's rules on named objects only (an
    access review of those must name the object, or it is denied)."""
    return [(group, resource, verb, name) for rule in RULES if rule.get("resourceNames")
            for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"] for name in rule["resourceNames"]]


def forbidden_message(body: str | None, doing: str, namespace: str) -> str:
    """A refused request in words: who, which verb on what, where, and the Role to ask for."""
    message = ""
    try:
        message = json.loads(body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = body or ""
    found = _FORBIDDEN.search(message)
    if found:
        resource = found["resource"] + (f".{found['group']}" if found["group"] else "")
        who = f"user {found['user']!r} may not {found['verb']} {resource}"
    else:
        who = "your identity lacks a permission"
    return (f"{doing} was refused: {who} in namespace {namespace!r}. Ask your cluster admin "
            f"for aksrun's Role there (`aksrun admin add-user` grants Role {ROLE_NAME!r}: "
            "jobs create/get/list/watch/patch/delete, pods get/list/watch, pods/log get, events "
            "list/watch), or set AKSRUN_NAMESPACE to your own namespace.")
