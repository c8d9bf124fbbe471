"""Microsoft.ManagedIdentity on the fake ARM through azure-mgmt-msi 7.1 (api 2024-11-30):
identities (201 new / 200 existing, ids generated, tags kept, a service principal each) and
federated identity credentials with the service's limits: no concurrent writes under one
identity (409), 20 per identity, one issuer+subject pair."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import FederatedIdentityCredential, Identity

from tests.fake_arm.conftest import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    arm_client,
    error_code,
)
from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite

ISSUER = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/"
AUDIENCE = "api://AzureADTokenExchange"


@pytest.fixture
def msi(arm: FakeArm, client_id: str) -> ManagedServiceIdentityClient:
    arm.grant_owner(client_id, SUBSCRIPTION)
    arm.fic_write_seconds = 0.0
    return arm_client(arm, ManagedServiceIdentityClient)


def credential(subject: str) -> FederatedIdentityCredential:
    return FederatedIdentityCredential(issuer=ISSUER, subject=subject, audiences=[AUDIENCE])


def status_of(call) -> int:
    """Call an SDK operation with a `cls` that returns the HTTP status it answered."""
    return call(cls=lambda response, model, _: response.http_response.status_code)


def test_an_identity_is_created_once_with_ids_and_a_service_principal(arm, msi) -> None:
    tags = {"managed-by": "aksrun", "aksrun-user": "alice"}

    first = status_of(lambda **kw: msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-alice", Identity(location="westeurope", tags=tags), **kw))
    made = msi.user_assigned_identities.get(RESOURCE_GROUP, "id-alice")
    again = status_of(lambda **kw: msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-alice", Identity(location="westeurope", tags={"x": "1"}), **kw))
    after = msi.user_assigned_identities.get(RESOURCE_GROUP, "id-alice")
    listed = list(msi.user_assigned_identities.list_by_resource_group(RESOURCE_GROUP))

    assert (first, again) == (201, 200)
    assert made.tags == tags and after.tags == {"x": "1"}
    assert all(uuid.UUID(v) for v in (made.principal_id, made.client_id, made.tenant_id))
    assert (after.principal_id, after.client_id) == (made.principal_id, made.client_id)
    assert made.tenant_id == arm.subscription(SUBSCRIPTION).tenant_id
    assert made.id.endswith("/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-alice")
    assert [i.name for i in listed] == ["id-alice"]
    principal = arm.directory.get(made.principal_id)
    assert (principal.kind, principal.app_id) == ("ServicePrincipal", made.client_id)

    with pytest.raises(HttpResponseError) as moved:
        msi.user_assigned_identities.create_or_update(
            RESOURCE_GROUP, "id-alice", Identity(location="eastus"))
    assert moved.value.status_code == 400 and error_code(moved.value) == (
        "InvalidResourceLocation")


def test_deleting_an_identity_takes_its_credentials_and_principal(arm, msi) -> None:
    made = msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-bob", Identity(location="westeurope"))
    msi.federated_identity_credentials.create_or_update(
        RESOURCE_GROUP, "id-bob", "fic-bob", credential("system:serviceaccount:aksrun-bob:aksrun"))

    gone = status_of(lambda **kw: msi.user_assigned_identities.delete(
        RESOURCE_GROUP, "id-bob", **kw))
    again = status_of(lambda **kw: msi.user_assigned_identities.delete(
        RESOURCE_GROUP, "id-bob", **kw))

    assert (gone, again) == (200, 204)
    assert arm.directory.get(made.principal_id) is None
    assert arm.federation(made.client_id) is None
    with pytest.raises(ResourceNotFoundError):
        msi.federated_identity_credentials.get(RESOURCE_GROUP, "id-bob", "fic-bob")
    # Made again, it is a new identity: no credential survived.
    msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-bob", Identity(location="westeurope"))
    assert list(msi.federated_identity_credentials.list(RESOURCE_GROUP, "id-bob")) == []


def test_federated_credentials_crud(arm, msi) -> None:
    made = msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-carol", Identity(location="westeurope"))
    subject = "system:serviceaccount:aksrun-carol:aksrun"

    created = status_of(lambda **kw: msi.federated_identity_credentials.create_or_update(
        RESOURCE_GROUP, "id-carol", "fic-carol", credential(subject), **kw))
    got = msi.federated_identity_credentials.get(RESOURCE_GROUP, "id-carol", "fic-carol")
    replaced = status_of(lambda **kw: msi.federated_identity_credentials.create_or_update(
        RESOURCE_GROUP, "id-carol", "fic-carol", credential(subject + "2"), **kw))
    listed = list(msi.federated_identity_credentials.list(RESOURCE_GROUP, "id-carol"))
    deleted = status_of(lambda **kw: msi.federated_identity_credentials.delete(
        RESOURCE_GROUP, "id-carol", "fic-carol", **kw))
    deleted_again = status_of(lambda **kw: msi.federated_identity_credentials.delete(
        RESOURCE_GROUP, "id-carol", "fic-carol", **kw))

    assert (created, replaced, deleted, deleted_again) == (201, 200, 200, 204)
    assert (got.issuer, got.subject, got.audiences) == (ISSUER, subject, [AUDIENCE])
    assert got.id == f"{made.id}/federatedIdentityCredentials/fic-carol"
    assert [(c.name, c.subject) for c in listed] == [("fic-carol", subject + "2")]


def test_concurrent_writes_under_one_identity_get_409(arm, msi) -> None:
    arm.fic_write_seconds = 0.5
    msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-dave", Identity(location="westeurope"))
    outcomes: dict[str, object] = {}
    first_started = threading.Event()

    def write(name: str) -> None:
        if name == "fic-1":
            first_started.set()
        try:
            msi.federated_identity_credentials.create_or_update(
                RESOURCE_GROUP, "id-dave", name, credential(f"system:serviceaccount:ns:{name}"))
            outcomes[name] = "ok"
        except HttpResponseError as exc:
            outcomes[name] = exc

    first = threading.Thread(target=write, args=("fic-1",))
    first.start()
    first_started.wait(5)
    time.sleep(0.15)  # the second write arrives while the first is still being written
    write("fic-2")
    first.join(10)

    assert outcomes["fic-1"] == "ok"
    refused = outcomes["fic-2"]
    assert isinstance(refused, HttpResponseError) and refused.status_code == 409
    assert error_code(refused) == (
        "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity")
    assert refused.error.message.startswith(
        "Too many Federated Identity Credentials are written concurrently for the managed "
        f"identity '/subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/providers/"
        "microsoft.managedidentity/userassignedidentities/id-dave'.")
    # One at a time, both go in.
    write("fic-2")
    assert outcomes["fic-2"] == "ok"
    assert [c.name for c in msi.federated_identity_credentials.list(
        RESOURCE_GROUP, "id-dave")] == ["fic-1", "fic-2"]


def test_the_services_credential_rules(arm, msi) -> None:
    msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-erin", Identity(location="westeurope"))
    for i in range(20):
        msi.federated_identity_credentials.create_or_update(
            RESOURCE_GROUP, "id-erin", f"fic-{i:02d}", credential(f"system:serviceaccount:n:{i}"))

    with pytest.raises(HttpResponseError) as full:
        msi.federated_identity_credentials.create_or_update(
            RESOURCE_GROUP, "id-erin", "fic-20", credential("system:serviceaccount:n:20"))
    with pytest.raises(HttpResponseError) as twice:
        msi.federated_identity_credentials.create_or_update(
            RESOURCE_GROUP, "id-erin", "fic-other", credential("system:serviceaccount:n:3"))
    with pytest.raises(HttpResponseError) as plain_http:
        msi.federated_identity_credentials.create_or_update(
            RESOURCE_GROUP, "id-erin", "fic-00", FederatedIdentityCredential(
                issuer="http://issuer.example/", subject="s", audiences=[AUDIENCE]))

    assert full.value.status_code == 400 and "cannot exceed 20" in full.value.error.message
    assert twice.value.status_code == 400 and twice.value.error.message == (
        "Issuer and subject combination already exists for this Managed Identity.")
    assert plain_http.value.status_code == 400 and "https" in plain_http.value.error.message
    # Replacing one of the 20 is not a 21st.
    msi.federated_identity_credentials.create_or_update(
        RESOURCE_GROUP, "id-erin", "fic-05", credential("system:serviceaccount:n:five"))
    assert len(list(msi.federated_identity_credentials.list(RESOURCE_GROUP, "id-erin"))) == 20


def test_federation_reports_credentials_after_the_delay(arm, msi) -> None:
    arm.federation_delay = 30.0
    made = msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-fay", Identity(location="westeurope"))
    subject = "system:serviceaccount:aksrun-fay:aksrun"
    msi.federated_identity_credentials.create_or_update(
        RESOURCE_GROUP, "id-fay", "fic-fay", credential(subject))

    federation = arm.federation(made.client_id)

    assert (federation.client_id, federation.object_id, federation.tenant_id) == (
        made.client_id, made.principal_id, made.tenant_id)
    [(issuer, sub, audiences, accepted_from)] = federation.credentials
    assert (issuer, sub, audiences) == (ISSUER, subject, (AUDIENCE,))
    assert 29 < accepted_from - time.time() <= 30
    assert federation.accepts(ISSUER, subject, [AUDIENCE], time.time()) == "not yet"
    assert federation.accepts(ISSUER, subject, [AUDIENCE], accepted_from) == "ok"
    assert federation.accepts(ISSUER, "other", [AUDIENCE], accepted_from) == "no match"
