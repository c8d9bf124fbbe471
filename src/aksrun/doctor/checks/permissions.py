"""Every verb aksrun calls in the namespace, asked of the API server itself: one
SelfSubjectAccessReview each, the verdict that holds under Kubernetes RBAC and Azure RBAC for
Kubernetes alike (a rules review is incomplete under a webhook authorizer)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ...adapters import kubernetes_rbac
from ..context import Context
from ..model import Outcome
from ..scope import add_user_command


def check_permissions(context: Context) -> Outcome:
    from kubernetes import client

    api, namespace = context.get("api_client"), context.config.effective_namespace
    authz = client.AuthorizationV1Api(api)
    wanted = [(g, r, v, "") for g, r, v in kubernetes_rbac.required_access()]
    wanted += kubernetes_rbac.named_access()

    def allowed(item: tuple[str, str, str, str]) -> bool:
        group, resource, verb, name = item
        resource, _, sub = resource.partition("/")
        attributes = {"namespace": namespace, "group": group, "resource": resource,
                      "verb": verb, **({"subresource": sub} if sub else {}),
                      **({"name": name} if name else {})}
        review = authz.create_self_subject_access_review(
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
             "spec": {"resourceAttributes": attributes}},
            _request_timeout=context.k8s_timeout())
        return bool(review.status and review.status.allowed)

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="doctor-ssar") as pool:
        verdicts = list(pool.map(allowed, wanted))
    missing = [_verb(item) for item, ok in zip(wanted, verdicts, strict=True) if not ok]
    if missing:
        return Outcome.fail(
            f"in {namespace} you may not: {', '.join(missing)}",
            f"ask your admin to run {add_user_command(context.config)} again to restore Role "
            f"{kubernetes_rbac.ROLE_NAME} (it grants {', '.join(missing)}).",
            missing=missing, namespace=namespace)
    return Outcome.ok(f"all {len(wanted)} verbs aksrun uses are allowed in {namespace}",
                      checked=[_verb(item) for item in wanted], namespace=namespace)


def _verb(item: tuple[str, str, str, str]) -> str:
    group, resource, verb, name = item
    return f"{verb} {resource}{'.' + group if group else ''}{'/' + name if name else ''}"
