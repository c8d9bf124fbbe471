"""How the admin commands reach the cluster: the admin credential from ARM, or, on clusters
with local accounts disabled, the Entra user credential with tokens from the one
credential (no kubelogin)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from aksrun.adapters.azure.kubeconfig import AKS_SERVER_APP_ID
from aksrun.admin.context import AdminContext
from aksrun.core.config import load_config
from tests.support.subscription import CLUSTER, RESOURCE_GROUP, SUBSCRIPTION

pytestmark = pytest.mark.azurite

EXEC_KUBECONFIG = yaml.safe_dump({
    "apiVersion": "v1", "kind": "Config", "current-context": "c",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9",
                                           "insecure-skip-tls-verify": True}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    "users": [{"name": "u", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
        "args": ["get-token", "--server-id", AKS_SERVER_APP_ID, "--login", "azurecli"]}}}],
}).encode()


def test_a_cluster_without_local_accounts_is_reached_as_the_entra_user(
        make_subscription, workload_identity_env):
    sub = make_subscription()
    cluster = sub.managed_cluster()
    cluster.disable_local_accounts = True
    cluster.kubeconfig = EXEC_KUBECONFIG
    ctx = AdminContext(load_config({"backend": "kubernetes"}))
    api = ctx.kube()
    assert api.configuration.host == "https://127.0.0.1:9"
    token = api.configuration.api_key["BearerToken"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == AKS_SERVER_APP_ID  # DefaultAzureCredential's, for AKS
    asked = [(r.path.rsplit("/", 1)[-1], r.status) for r in sub.arm.requests
             if "Credential" in r.path]
    assert asked == [("listClusterAdminCredential", 400), ("listClusterUserCredential", 200)]
    assert (ctx.target.subscription_id, ctx.target.resource_group, ctx.target.cluster_name) \
        == (SUBSCRIPTION, RESOURCE_GROUP, CLUSTER)


def test_the_admin_credential_is_used_where_local_accounts_are_on(make_subscription):
    sub = make_subscription()
    ctx = AdminContext(load_config({"backend": "kubernetes"}))
    api = ctx.kube()
    assert api.configuration.host == "https://127.0.0.1:9"
    assert [r.path.rsplit("/", 1)[-1] for r in sub.arm.requests if "Credential" in r.path] \
        == ["listClusterAdminCredential"]


def test_a_kubeconfig_given_is_used_instead_of_arm(make_subscription, tmp_path):
    sub = make_subscription()
    path = tmp_path / "admin.kubeconfig"
    path.write_bytes(EXEC_KUBECONFIG.replace(b"127.0.0.1:9", b"127.0.0.1:7"))
    ctx = AdminContext(load_config({"backend": "kubernetes"}), kubeconfig=str(path))
    assert ctx.kube().configuration.host == "https://127.0.0.1:7"
    assert [r for r in sub.arm.requests if "Credential" in r.path] == []
