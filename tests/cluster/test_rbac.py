"""RBAC for real: aksrun's Role is all a person needs in their namespace, and nothing of it
reaches into another person's namespace; a refusal is said in words (verb, resource,
namespace, the Role to ask for), never as a raw API error."""

from __future__ import annotations

import uuid

import pytest

import aksrun
from aksrun.adapters.kubernetes_rbac import ROLE_NAME, required_access
from tests.e2e import funcs

pytestmark = [pytest.mark.cluster, pytest.mark.azurite]


def _access_review(k8s, group: str, resource: str, verb: str, namespace: str) -> bool:
    """Asks the API server, as the test's person, whether they may do `verb` on `resource`."""
    from kubernetes import client, config

    api = client.AuthorizationV1Api(config.new_client_from_config(str(k8s.kubeconfig)))
    sub, _, subresource = resource.partition("/")
    review = api.create_self_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"group": group, "resource": sub, "verb": verb,
                                        "subresource": subresource, "namespace": namespace}}})
    return bool(review.status.allowed)


def test_the_role_grants_exactly_what_aksrun_uses_in_the_own_namespace(k8s):
    for group, resource, verb in required_access():
        assert _access_review(k8s, group, resource, verb, k8s.namespace), (verb, resource)
    # Not granted: the controllers create and delete pods; nobody but them needs to.
    for group, resource, verb in [("", "pods", "create"), ("", "pods", "delete"),
                                  ("", "secrets", "get"), ("batch", "jobs", "update")]:
        assert not _access_review(k8s, group, resource, verb, k8s.namespace), (verb, resource)
    assert aksrun.function()(funcs.add)(2, b=3) == 5


def test_refused_in_another_persons_namespace_and_told_why(k8s, monkeypatch, tmp_path):
    other = f"aksrun-bob-{uuid.uuid4().hex[:6]}"
    k8s.cluster.add_user_namespace(other, "bob@contoso.com", tmp_path / "bob.kubeconfig")
    try:
        for group, resource, verb in required_access():
            assert not _access_review(k8s, group, resource, verb, other), (verb, resource)
        monkeypatch.setenv("AKSRUN_NAMESPACE", other)
        with pytest.raises(aksrun.AksrunError) as info:
            aksrun.function()(funcs.add)(2, b=3)
        text = str(info.value)
        assert f"user {k8s.user!r} may not create jobs.batch in namespace {other!r}" in text
        assert ROLE_NAME in text and "aksrun admin add-user" in text
        assert "Traceback" not in text and "HTTP response headers" not in text
        assert not [j for j in k8s.admin_api("BatchV1Api").list_namespaced_job(other).items]
    finally:
        k8s.cluster.delete_namespace(other)
