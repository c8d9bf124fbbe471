"""Microsoft.ContainerService on the fake ARM through azure-mgmt-containerservice 41's own
client: the cluster as GET shows it, enabling workload identity as `az aks update
--enable-oidc-issuer --enable-workload-identity` does (a long-running PUT polled through
Azure-AsyncOperation), what AKS refuses, and the kubeconfigs of listCluster*Credential."""

from __future__ import annotations

import time

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError
from azure.mgmt.containerservice import ContainerServiceClient, models

from tests.fake_arm.conftest import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    arm_client,
    error_code,
)
from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite

CLUSTER = "aks-aksrun"
ISSUER = "https://westeurope.oic.prod-aks.azure.com/tenant/0f1e2d3c-issuer/"
USER_KUBECONFIG = b"apiVersion: v1\nkind: Config\nusers:\n- name: clusterUser_rg_aks\n"
ADMIN_KUBECONFIG = b"apiVersion: v1\nkind: Config\nusers:\n- name: clusterAdmin_rg_aks\n"


@pytest.fixture
def aks(arm: FakeArm, client_id: str) -> ContainerServiceClient:
    arm.grant_owner(client_id, SUBSCRIPTION)
    arm.retry_after = None  # poll at the client's 50 ms
    arm.operation_delay = 0.4
    arm.add_managed_cluster(
        SUBSCRIPTION, RESOURCE_GROUP, CLUSTER, kubeconfig=USER_KUBECONFIG,
        admin_kubeconfig=ADMIN_KUBECONFIG, issuer_url=ISSUER, azure_rbac=True,
    )
    return arm_client(arm, ContainerServiceClient)


def enable_workload_identity(cluster: models.ManagedCluster) -> models.ManagedCluster:
    """What azure-cli's aks update does to the object it read."""
    cluster.oidc_issuer_profile = models.ManagedClusterOIDCIssuerProfile(enabled=True)
    if cluster.security_profile is None:
        cluster.security_profile = models.ManagedClusterSecurityProfile()
    cluster.security_profile.workload_identity = (
        models.ManagedClusterSecurityProfileWorkloadIdentity(enabled=True)
    )
    return cluster


def test_get_shows_the_cluster_as_added(arm, aks) -> None:
    cluster, headers = aks.managed_clusters.get(
        RESOURCE_GROUP, CLUSTER, cls=lambda response, model, _: (model, response.http_response
                                                                 .headers),
    )

    stored = arm.provider("Microsoft.ContainerService").cluster(
        SUBSCRIPTION, RESOURCE_GROUP, CLUSTER
    )
    assert cluster.name == CLUSTER and cluster.location == "westeurope"
    assert cluster.provisioning_state == "Succeeded" and cluster.kubernetes_version == "1.36.3"
    assert cluster.oidc_issuer_profile.enabled is False
    assert cluster.oidc_issuer_profile.issuer_url is None  # no issuer until it is enabled
    assert not (cluster.security_profile.workload_identity or {})
    assert (cluster.aad_profile.managed, cluster.aad_profile.enable_azure_rbac) == (True, True)
    kubelet = cluster.identity_profile["kubeletidentity"]
    assert (kubelet.client_id, kubelet.object_id) == (
        stored.kubelet_client_id, stored.kubelet_object_id
    )
    assert kubelet.resource_id.endswith(f"/userAssignedIdentities/{CLUSTER}-agentpool")
    assert cluster.e_tag == stored.etag and headers["ETag"] == f'"{stored.etag}"'
    # The kubelet identity is a service principal of the directory (AcrPull can name it).
    assert arm.directory.get(kubelet.object_id).kind == "ServicePrincipal"


def test_enabling_workload_identity_is_a_long_running_update(arm, aks) -> None:
    cluster = enable_workload_identity(aks.managed_clusters.get(RESOURCE_GROUP, CLUSTER))

    poller = aks.managed_clusters.begin_create_or_update(
        RESOURCE_GROUP, CLUSTER, cluster, etag=cluster.e_tag,
        match_condition=MatchConditions.IfNotModified,
    )
    first = poller.polling_method()._initial_response.http_response
    during = aks.managed_clusters.get(RESOURCE_GROUP, CLUSTER)
    done = poller.result()

    assert first.status_code == 200
    monitor = first.headers["Azure-AsyncOperation"]
    assert f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/" \
        "westeurope/operations/" in monitor and monitor.endswith("?api-version=2016-03-30")
    assert during.provisioning_state == "Updating"
    assert during.oidc_issuer_profile.issuer_url is None
    assert done.provisioning_state == "Succeeded"
    assert done.oidc_issuer_profile.enabled and done.oidc_issuer_profile.issuer_url == ISSUER
    assert done.security_profile.workload_identity.enabled is True
    operation = monitor.split("/operations/")[1].split("?")[0]
    polls = arm.calls("GET", f"/operations/{operation}")
    assert len(polls) >= 2 and {p.status for p in polls} == {200}
    assert done.e_tag != cluster.e_tag


def test_changes_the_fake_does_not_model_are_refused_not_dropped(arm, aks) -> None:
    cluster = enable_workload_identity(aks.managed_clusters.get(RESOURCE_GROUP, CLUSTER))
    cluster.agent_pool_profiles[0].count = 5
    cluster.kubernetes_version = "1.37.2"

    with pytest.raises(HttpResponseError) as refused:
        aks.managed_clusters.begin_create_or_update(RESOURCE_GROUP, CLUSTER, cluster).result()

    assert refused.value.status_code == 400
    message = refused.value.error.message
    assert "properties.agentPoolProfiles[0].count" in message
    assert "properties.kubernetesVersion" in message
    after = aks.managed_clusters.get(RESOURCE_GROUP, CLUSTER)
    assert after.oidc_issuer_profile.enabled is False  # nothing of the request was applied


def test_what_aks_itself_refuses(arm, aks) -> None:
    # Workload identity needs the OIDC issuer.
    cluster = aks.managed_clusters.get(RESOURCE_GROUP, CLUSTER)
    cluster.security_profile.workload_identity = (
        models.ManagedClusterSecurityProfileWorkloadIdentity(enabled=True)
    )
    with pytest.raises(HttpResponseError) as no_issuer:
        aks.managed_clusters.begin_create_or_update(RESOURCE_GROUP, CLUSTER, cluster).result()
    assert no_issuer.value.status_code == 400
    assert "OIDC issuer" in no_issuer.value.error.message

    # A second write while the first runs: 409 OperationNotAllowed, AKS's words.
    cluster = enable_workload_identity(aks.managed_clusters.get(RESOURCE_GROUP, CLUSTER))
    running = aks.managed_clusters.begin_create_or_update(RESOURCE_GROUP, CLUSTER, cluster)
    with pytest.raises(HttpResponseError) as busy:
        aks.managed_clusters.begin_create_or_update(RESOURCE_GROUP, CLUSTER, cluster)
    assert busy.value.status_code == 409 and error_code(busy.value) == "OperationNotAllowed"
    assert "in progress update managed cluster operation" in busy.value.error.message
    enabled = running.result()

    # The eTag read before that update is stale now: 412, not a silent overwrite.
    with pytest.raises(ResourceModifiedError):
        aks.managed_clusters.begin_create_or_update(
            RESOURCE_GROUP, CLUSTER, cluster, etag=cluster.e_tag,
            match_condition=MatchConditions.IfNotModified,
        )

    # The OIDC issuer can't be turned off again.
    enabled.oidc_issuer_profile.enabled = False
    enabled.security_profile.workload_identity.enabled = False
    with pytest.raises(HttpResponseError) as off:
        aks.managed_clusters.begin_create_or_update(RESOURCE_GROUP, CLUSTER, enabled)
    assert off.value.status_code == 400 and "cannot be disabled" in off.value.error.message


def test_credentials_are_the_kubeconfigs_given(arm, aks, client_id) -> None:
    user = aks.managed_clusters.list_cluster_user_credentials(RESOURCE_GROUP, CLUSTER)
    admin = aks.managed_clusters.list_cluster_admin_credentials(RESOURCE_GROUP, CLUSTER)

    assert [(k.name, k.value) for k in user.kubeconfigs] == [("clusterUser", USER_KUBECONFIG)]
    assert [(k.name, k.value) for k in admin.kubeconfigs] == [("clusterAdmin", ADMIN_KUBECONFIG)]

    # A person with only the Cluster User role gets the user kubeconfig, not the admin one.
    arm.revoke(client_id)
    cluster_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                  f"Microsoft.ContainerService/managedClusters/{CLUSTER}")
    arm.grant(client_id, "Azure Kubernetes Service Cluster User Role", cluster_id)
    assert aks.managed_clusters.list_cluster_user_credentials(RESOURCE_GROUP, CLUSTER)
    with pytest.raises(HttpResponseError) as denied:
        aks.managed_clusters.list_cluster_admin_credentials(RESOURCE_GROUP, CLUSTER)
    assert denied.value.status_code == 403 and (
        "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action"
        in denied.value.error.message
    )


def test_local_accounts_disabled_means_no_admin_kubeconfig(arm, aks) -> None:
    arm.add_managed_cluster(
        SUBSCRIPTION, RESOURCE_GROUP, "aks-entra-only", kubeconfig=USER_KUBECONFIG,
        issuer_url=ISSUER, azure_rbac=True, disable_local_accounts=True,
    )

    with pytest.raises(HttpResponseError) as refused:
        aks.managed_clusters.list_cluster_admin_credentials(RESOURCE_GROUP, "aks-entra-only")

    assert refused.value.status_code == 400
    assert "disable local accounts" in refused.value.error.message
    cluster = aks.managed_clusters.get(RESOURCE_GROUP, "aks-entra-only")
    assert cluster.disable_local_accounts is True


def test_creating_a_cluster_answers_201_then_succeeds(arm, aks) -> None:
    body = models.ManagedCluster(
        location="westeurope",
        properties=models.ManagedClusterProperties(
            dns_prefix="new", kubernetes_version="1.35.4",
            agent_pool_profiles=[models.ManagedClusterAgentPoolProfile(
                name="system", count=1, vm_size="Standard_D2s_v5", mode="System",
            )],
            oidc_issuer_profile=models.ManagedClusterOIDCIssuerProfile(enabled=True),
        ),
    )

    started = time.monotonic()
    poller = aks.managed_clusters.begin_create_or_update(RESOURCE_GROUP, "aks-new", body)
    first = poller.polling_method()._initial_response.http_response
    created = poller.result()

    assert first.status_code == 201 and "Azure-AsyncOperation" in first.headers
    assert first.json()["properties"]["provisioningState"] == "Creating"
    assert created.provisioning_state == "Succeeded" and time.monotonic() - started >= 0.4
    assert created.kubernetes_version == "1.35.4"
    assert created.oidc_issuer_profile.issuer_url.startswith("https://westeurope.oic.")
    assert [p.name for p in created.agent_pool_profiles] == ["system"]


def test_a_missing_cluster_is_arms_404(arm, aks) -> None:
    with pytest.raises(HttpResponseError) as missing:
        aks.managed_clusters.get(RESOURCE_GROUP, "nope")

    assert missing.value.status_code == 404 and error_code(missing.value) == "ResourceNotFound"
    assert "Microsoft.ContainerService/managedClusters/nope" in missing.value.error.message
