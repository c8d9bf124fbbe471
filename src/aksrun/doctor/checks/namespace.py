"""What a person's namespace must hold: the namespace itself (and that it is theirs), and the
`aksrun` service account the pods run as, annotated with the client id of their identity."""

from __future__ import annotations

from ...core import naming
from ...errors import AksrunError
from ..context import Context
from ..model import Outcome
from ..scope import add_user_command, uses_workload_identity


def check_namespace(context: Context) -> Outcome:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api, namespace = context.get("api_client"), context.config.effective_namespace
    fix = (f"ask your admin to run {add_user_command(context.config)} to create namespace "
           f"{namespace} with your Role in it, or set AKSRUN_NAMESPACE to yours.")
    try:
        client.CoreV1Api(api).read_namespace(namespace, _request_timeout=context.k8s_timeout())
        return Outcome.ok(f"{namespace} exists", namespace=namespace)
    except ApiException as exc:
        if exc.status == 404:
            return Outcome.fail(f"namespace {namespace} does not exist", fix, namespace=namespace)
        if exc.status != 403:
            raise AksrunError(f"reading namespace {namespace}: HTTP {exc.status} {exc.reason}")
    # People hold a Role in their namespace, not the right to read namespaces: a namespace
    # in which they may list anything exists (a RoleBinding can't outlive its namespace).
    timeout = context.k8s_timeout()
    for what, lister in (("jobs", client.BatchV1Api(api).list_namespaced_job),
                         ("pods", client.CoreV1Api(api).list_namespaced_pod),
                         ("events", client.CoreV1Api(api).list_namespaced_event)):
        try:  # the answer's status is the finding: its body is not even parsed
            lister(namespace, limit=1, _request_timeout=timeout,
                   _preload_content=False).release_conn()
        except ApiException as exc:
            if exc.status in (403, 404):
                continue
            raise AksrunError(f"listing {what} in {namespace}: HTTP {exc.status} {exc.reason}")
        return Outcome.ok(f"{namespace} is yours (you may list its {what})", namespace=namespace)
    return Outcome.fail(f"namespace {namespace} does not exist or grants you nothing", fix,
                        namespace=namespace)


def check_service_account(context: Context) -> Outcome:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    config = context.config
    api, namespace, name = context.get("api_client"), config.effective_namespace, \
        config.service_account
    try:
        account = client.CoreV1Api(api).read_namespaced_service_account(
            name, namespace, _request_timeout=context.k8s_timeout())
    except ApiException as exc:
        if exc.status == 404:
            return Outcome.fail(f"no service account {name!r} in {namespace}: pods can't start",
                                f"ask your admin to run {add_user_command(config)} to create "
                                f"service account {name} in {namespace}.")
        if exc.status == 403:
            return Outcome.fail(f"you may not read service account {name!r} in {namespace}",
                                f"ask your admin to run {add_user_command(config)} again: its "
                                f"Role lets you read service account {name}.")
        raise AksrunError(f"reading service account {name}: HTTP {exc.status} {exc.reason}")
    annotations = dict(account.metadata.annotations or {})
    client_id = annotations.get(naming.WORKLOAD_IDENTITY_CLIENT_ID)
    context.put("client_id", client_id)
    if not uses_workload_identity(config):
        return Outcome.ok(f"{name} in {namespace} (workload identity not needed: the store is "
                          "not reached with Entra ID)", client_id=client_id)
    if not client_id:
        return Outcome.fail(
            f"service account {name} in {namespace} has no "
            f"{naming.WORKLOAD_IDENTITY_CLIENT_ID} annotation: pods can't sign in to Azure",
            f"ask your admin to run {add_user_command(config)}, or annotate it: `kubectl "
            f"annotate serviceaccount {name} -n {namespace} "
            f"{naming.WORKLOAD_IDENTITY_CLIENT_ID}=<client id of your identity>`.")
    return Outcome.ok(f"{name} in {namespace}, workload identity client id {client_id}",
                      client_id=client_id)
