"""The workload identity webhook stand-in (tests/support/workload_identity_webhook.py): its
mutation as the upstream webhook's, and the real API server applying it to labelled pods
only."""

from __future__ import annotations

import uuid

import pytest

from tests.support.workload_identity_webhook import (
    AUDIENCE,
    TOKEN_DIR,
    VOLUME,
    WorkloadIdentityWebhook,
)

AUTHORITY = "https://login.microsoftonline.com/"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "f2b05b26-29b4-4707-8573-001c59d977d5"


def webhook_with(accounts: dict[str, dict]) -> WorkloadIdentityWebhook:
    return WorkloadIdentityWebhook(None, "cert", "key", TENANT, AUTHORITY,
                                   read_service_account=lambda ns, name: accounts.get(name))


def annotated(**annotations: str) -> dict:
    return {"metadata": {"annotations": {"azure.workload.identity/client-id": CLIENT,
                                         **annotations}}}


def review(pod: dict) -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "namespace": "aksrun-alice", "object": pod}}


def pod(*containers: dict, **spec: object) -> dict:
    return {"metadata": {"generateName": "job-", "annotations": {}},
            "spec": {"serviceAccountName": "aksrun", "containers": list(containers), **spec}}


def patched(answer: dict, original: dict) -> dict:
    import base64
    import copy
    import json

    result = copy.deepcopy(original)
    for op in json.loads(base64.b64decode(answer["response"]["patch"])):
        field = op["path"].rsplit("/", 1)[1]
        result["spec"][field] = op["value"]
    return result


def test_each_container_gets_the_four_variables_and_the_token_volume():
    hook = webhook_with({"aksrun": annotated()})
    original = pod({"name": "runner", "env": [{"name": "AZURE_TENANT_ID", "value": "mine"}]},
                   volumes=[{"name": "tmp", "emptyDir": {}}])
    answer = hook.review(review(original))
    assert answer["response"]["allowed"] is True and answer["response"]["uid"] == "u1"
    spec = patched(answer, original)["spec"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env == {"AZURE_TENANT_ID": "mine",  # a container's own value is kept
                   "AZURE_CLIENT_ID": CLIENT,
                   "AZURE_FEDERATED_TOKEN_FILE": f"{TOKEN_DIR}/azure-identity-token",
                   "AZURE_AUTHORITY_HOST": AUTHORITY}
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {}}, {
        "name": VOLUME, "projected": {"sources": [{"serviceAccountToken": {
            "path": "azure-identity-token", "expirationSeconds": 3600,
            "audience": AUDIENCE}}]}}]


def test_skipped_containers_and_empty_values_are_left_alone():
    hook = webhook_with({"aksrun": {"metadata": {"annotations": {}}}})  # no client id
    original = pod({"name": "a"}, {"name": "b"})
    original["metadata"]["annotations"]["azure.workload.identity/skip-containers"] = "b"
    spec = patched(hook.review(review(original)), original)["spec"]
    names = [e["name"] for e in spec["containers"][0]["env"]]
    assert "AZURE_CLIENT_ID" not in names and "AZURE_TENANT_ID" in names
    assert "env" not in spec["containers"][1]


def test_a_missing_service_account_or_a_bad_expiry_refuses_the_pod():
    missing = webhook_with({}).review(review(pod({"name": "a"})))["response"]
    assert missing["allowed"] is False
    assert missing["status"] == {"code": 400, "message": 'serviceaccounts "aksrun" not found'}
    short = webhook_with({"aksrun": annotated(**{
        "azure.workload.identity/service-account-token-expiration": "60"})})
    refused = short.review(review(pod({"name": "a"})))["response"]
    assert refused["allowed"] is False and "between 3600 and 86400" in \
        refused["status"]["message"]


@pytest.mark.cluster
def test_the_api_server_mutates_labelled_pods_only(test_cluster, azurite_oauth):
    from kubernetes import client

    server = azurite_oauth.server
    hook = WorkloadIdentityWebhook(test_cluster, server.cert_file, server.key_file, TENANT,
                                   AUTHORITY).start()
    core = client.CoreV1Api(test_cluster.admin_client())
    namespace = f"wi-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        core.create_namespaced_service_account(namespace, {"metadata": {
            "name": "aksrun", "annotations": {"azure.workload.identity/client-id": CLIENT}}})

        def create(labels: dict[str, str]) -> object:
            return core.create_namespaced_pod(namespace, {
                "metadata": {"generateName": "p-", "labels": labels},
                "spec": {"serviceAccountName": "aksrun", "restartPolicy": "Never",
                         "nodeSelector": {"nowhere": "true"},  # stays Pending
                         "containers": [{"name": "c", "image": "busybox"}]}})

        labelled = create({"azure.workload.identity/use": "true"})
        env = {e.name: e.value for e in labelled.spec.containers[0].env}
        assert env["AZURE_CLIENT_ID"] == CLIENT and env["AZURE_TENANT_ID"] == TENANT
        [token] = [v for v in labelled.spec.volumes if v.name == VOLUME]
        projection = token.projected.sources[0].service_account_token
        assert (projection.audience, projection.expiration_seconds) == (AUDIENCE, 3600)
        plain = create({})
        assert not plain.spec.containers[0].env
        assert VOLUME not in [v.name for v in plain.spec.volumes]
        assert hook.mutated == [(namespace, "p-")]
    finally:
        hook.stop()
        test_cluster.delete_namespace(namespace)
    with pytest.raises(client.ApiException):  # unregistered: nothing is left to call
        client.AdmissionregistrationV1Api(test_cluster.admin_client()) \
            .read_mutating_webhook_configuration("azure-wi-webhook-mutating-webhook-"
                                                 "configuration")
