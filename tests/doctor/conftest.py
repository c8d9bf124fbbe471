"""Set-ups for doctor on the cluster tier: a healthy one, which each broken test then breaks
in exactly one way.

Healthy means what `aksrun admin add-user` provisions, on the real test control plane (as a
non-admin person with only aksrun's Role), the OAuth Azurite (DefaultAzureCredential through
the fake Entra: workload identity's path) and the ACR stand-in holding this client's runner
image:
- namespace, service account `aksrun` annotated with a client id, aksrun's Role (which lets
  the person read that service account);
- a blob container reached with Entra tokens (`AKSRUN_STORAGE_ACCOUNT_URL`, no key);
- the registry, whose runner image for this Python and aksrun exists: the session's runner
  image, built from this client with the test base image (`AKSRUN_BASE_IMAGE` names that
  base, so the client computes the tag the session pushed; `tag_runner_for_this_client`
  keeps it so when aksrun's files changed since the session began).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from aksrun.images import context as image_context
from tests.support.acr_stack import AcrStack
from tests.support.azure_fixtures import OAuthAzurite
from tests.support.cluster_fixtures import ClusterSetup, use_cluster

CLIENT_ID = "5b0c7a5e-1f2d-4c3b-9a8e-7d6f5e4c3b2a"


@dataclass
class DoctorSetup:
    k8s: ClusterSetup
    oauth: OAuthAzurite
    acr: AcrStack
    container: str
    monkeypatch: pytest.MonkeyPatch

    @property
    def namespace(self) -> str:
        return self.k8s.namespace

    def core(self) -> Any:
        return self.k8s.admin_api("CoreV1Api")

    def rbac(self) -> Any:
        return self.k8s.admin_api("RbacAuthorizationV1Api")

    def setenv(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)

    def annotate(self, client_id: str | None) -> None:
        self.core().patch_namespaced_service_account("aksrun", self.namespace, {
            "metadata": {"annotations": {"azure.workload.identity/client-id": client_id}}})


@pytest.fixture
def healthy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
            acr_env: AcrStack, workload_identity_env: OAuthAzurite,
            test_images: Any) -> Iterator[DoctorSetup]:
    k8s = use_cluster(request, monkeypatch, validate_manifests=False)
    # the runner image from the registry, not a fixed one; the store through Entra ID
    monkeypatch.delenv("AKSRUN_IMAGE")
    monkeypatch.delenv("AKSRUN_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AKSRUN_BASE_IMAGE", test_images.base.logical_name)
    container = f"doctor-{uuid.uuid4().hex[:12]}"
    workload_identity_env.service_client().create_container(container)
    monkeypatch.setenv("AKSRUN_STORE", f"az://{container}/aksrun")
    monkeypatch.setenv("AKSRUN_STORAGE_ACCOUNT_URL", workload_identity_env.account_url)
    setup = DoctorSetup(k8s, workload_identity_env, acr_env, container, monkeypatch)
    setup.annotate(CLIENT_ID)
    freeze_client_files(monkeypatch)
    tag_runner_for_this_client(setup, test_images)
    try:
        yield setup
    finally:
        try:
            workload_identity_env.service_client().delete_container(container)
        except Exception:
            pass


class _StaticToken:
    """A credential for one principal of the fake Entra tenant (the pusher below)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import time

        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3000)


PUSHER = "00000000-0000-0000-0000-00000000d0c7"  # a principal with AcrPush; you only pull
ACR_AUDIENCE = "https://containerregistry.azure.net"


def pusher_client(setup: DoctorSetup) -> Any:
    from azure.containerregistry import ContainerRegistryClient

    from tests.support.fake_entra import make_jwt

    front = setup.acr.front
    front.grant(PUSHER, "AcrPush")
    credential = _StaticToken(make_jwt(setup.oauth.entra.tenant_id, PUSHER, ACR_AUDIENCE))
    return ContainerRegistryClient(f"https://{front.login_server}", credential,
                                   audience=ACR_AUDIENCE)


_FILES: list[Any] = []
_REAL_PACKAGE_FILES = image_context._package_files


def freeze_client_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner tag hashes aksrun's files as they are when asked; in a working tree others
    edit during the session, a test would see the tag move between set-up and doctor. Every
    test of this session computes it from one snapshot instead."""
    if not _FILES:
        _FILES.append(_REAL_PACKAGE_FILES())
    monkeypatch.setattr(image_context, "_package_files", lambda: _FILES[0])


def tag_runner_for_this_client(setup: DoctorSetup, images: Any, live: bool = False) -> None:
    """The session's runner image (built from this client's files when the session began)
    under the tag the client computes now: the tag hashes aksrun's files, and in a shared
    working tree they may have changed since. `live`: from the files as they are this
    moment (for a new process, which the snapshot does not reach)."""
    from aksrun.core.config import load_config
    from aksrun.images.resolve import Images

    frozen = image_context._package_files
    if live:
        image_context._package_files = _REAL_PACKAGE_FILES
    try:
        tag = Images(load_config()).runner_context().tag
    finally:
        image_context._package_files = frozen
    client = pusher_client(setup)
    repository, digest = images.runner.repository, images.runner.digest
    result = client.get_manifest(repository, digest)
    client.set_manifest(repository, result.manifest, tag=tag,
                        media_type=result.manifest.get("mediaType") or OCI_MANIFEST)


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def skewed_image(healthy: DoctorSetup, test_images: Any) -> str:
    """The session's runner image pushed again under a new tag, its labels saying another
    Python and aksrun (what an image built by another client looks like)."""
    import io
    import json

    client = pusher_client(healthy)
    repository, digest = test_images.runner.repository, test_images.runner.digest
    manifest = client.get_manifest(repository, digest).manifest
    image_config = json.loads(b"".join(client.download_blob(repository,
                                                            manifest["config"]["digest"])))
    image_config["config"]["Labels"].update({"io.aksrun.python": "3.10",
                                             "io.aksrun.version": "0.0.9"})
    data = json.dumps(image_config).encode()
    config_digest, size = client.upload_blob(repository, io.BytesIO(data))
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": size}
    tag = f"doctor-skew-{uuid.uuid4().hex[:8]}"
    client.set_manifest(repository, manifest, tag=tag,
                        media_type=manifest.get("mediaType") or OCI_MANIFEST)
    return f"{healthy.acr.front.login_server}/{repository}:{tag}"


# --- the ARM tier: an AKS cluster as ARM describes it -------------------------------------

SUBSCRIPTION = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
RESOURCE_GROUP = "rg-doctor"
CLUSTER = "aks-doctor"
ADMIN = "00000000-0000-0000-0000-0000000ad001"  # who provisions (Owner); doctor runs as you
ARM_AUDIENCE = "https://management.azure.com"


@dataclass
class AksSetup:
    base: DoctorSetup
    arm: Any
    issuer: str
    identity: Any  # the SDK's Identity (client_id, principal_id, id)

    @property
    def namespace(self) -> str:
        return self.base.namespace

    def msi(self) -> Any:
        """The managed-identity client as the admin (who may write)."""
        from azure.mgmt.msi import ManagedServiceIdentityClient

        return ManagedServiceIdentityClient(_StaticToken(_admin_token(self.base)), SUBSCRIPTION,
                                            base_url=self.arm.endpoint,
                                            credential_scopes=[f"{ARM_AUDIENCE}/.default"])

    def federate(self, subject: str | None = None, issuer: str | None = None,
                 name: str = "aksrun-tester-sa") -> None:
        from azure.mgmt.msi.models import FederatedIdentityCredential

        self.msi().federated_identity_credentials.create_or_update(
            RESOURCE_GROUP, self.identity.name, name, FederatedIdentityCredential(
                issuer=issuer or self.issuer,
                subject=subject or f"system:serviceaccount:{self.namespace}:aksrun",
                audiences=["api://AzureADTokenExchange"]))


def _admin_token(base: DoctorSetup) -> str:
    from tests.support.fake_entra import make_jwt

    return make_jwt(base.oauth.entra.tenant_id, ADMIN, ARM_AUDIENCE)


def make_aks(base: DoctorSetup, *, workload_identity: bool = True, federate: bool = True
             ) -> AksSetup:
    """The cluster in a fake ARM (its cluster-user kubeconfig: the person's), a user-assigned
    identity `aksrun-tester` federated to the namespace's service account, the service
    account annotated with its client id, and the person's Azure roles: Cluster User on the
    cluster and Reader on the identity (what doctor reads; see the report for the latter)."""
    from azure.mgmt.msi.models import Identity

    from tests.support.fake_arm import FakeArm

    server = base.oauth.server
    arm = FakeArm(server.cert_file, server.key_file, storage=base.oauth)
    arm.add_subscription(SUBSCRIPTION, tenant_id=base.oauth.entra.tenant_id)
    arm.add_resource_group(SUBSCRIPTION, RESOURCE_GROUP, "westeurope")
    issuer = f"https://westeurope.oic.prod-aks.azure.com/{uuid.uuid4()}/{uuid.uuid4()}/"
    arm.add_managed_cluster(SUBSCRIPTION, RESOURCE_GROUP, CLUSTER,
                            kubeconfig=base.k8s.kubeconfig.read_bytes(), issuer_url=issuer,
                            oidc_enabled=workload_identity,
                            workload_identity_enabled=workload_identity)
    arm.start()
    group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    arm.grant(ADMIN, "Owner", f"/subscriptions/{SUBSCRIPTION}")
    setup = AksSetup(base, arm, issuer, None)
    identity = setup.msi().user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "aksrun-tester", Identity(location="westeurope",
                                                  tags={"managed-by": "aksrun"}))
    setup.identity = identity
    if federate:
        setup.federate()
    you = base.oauth.entra.client_id
    arm.grant(you, "Azure Kubernetes Service Cluster User Role",
              f"{group}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}")
    arm.grant(you, "Reader", identity.id)
    base.annotate(identity.client_id)
    for name, value in {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                        "AZURE_RESOURCE_GROUP": RESOURCE_GROUP,
                        "AZURE_AKS_CLUSTER_NAME": CLUSTER,
                        "AKSRUN_ARM_ENDPOINT": arm.endpoint,
                        "AKSRUN_ARM_AUDIENCE": ARM_AUDIENCE}.items():
        base.setenv(name, value)
    # the aks backend: the kubeconfig comes from ARM, not from KUBECONFIG
    base.monkeypatch.delenv("AKSRUN_BACKEND")
    base.monkeypatch.delenv("KUBECONFIG")
    return setup


@pytest.fixture
def aks_factory(healthy: DoctorSetup) -> Iterator[Any]:
    made: list[AksSetup] = []

    def make(**kwargs: Any) -> AksSetup:
        setup = make_aks(healthy, **kwargs)
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.arm.stop()
        assert setup.arm.server_errors == []


@pytest.fixture
def aks(aks_factory: Any) -> AksSetup:
    return aks_factory()
