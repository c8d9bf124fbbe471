"""Microsoft.Authorization on the fake ARM through azure-mgmt-authorization 4.0 (api
2022-04-01): role assignments at any scope, checked against the fake's Entra directory as ARM
checks them (PrincipalNotFound, with and without principalType, during replication), the
409/400s of duplicates, who may write them, and their propagation into RBAC."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import Identity

from tests.fake_arm.conftest import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    arm_client,
    caller_object_id,
    error_code,
    rg_scope,
)
from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
MI_CONTRIBUTOR = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def definition(role: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def assign(auth, scope: str, role: str, principal: str, principal_type: str | None = None,
           name: str | None = None):
    return auth.role_assignments.create(scope, name or str(uuid.uuid4()),
                                        RoleAssignmentCreateParameters(
                                            role_definition_id=definition(role),
                                            principal_id=principal,
                                            principal_type=principal_type))


@pytest.fixture
def auth(arm: FakeArm, client_id: str) -> AuthorizationManagementClient:
    arm.grant_owner(client_id, SUBSCRIPTION)
    arm.role_propagation_delay = 0.0
    return arm_client(arm, AuthorizationManagementClient)


@pytest.fixture
def msi(arm: FakeArm) -> ManagedServiceIdentityClient:
    return arm_client(arm, ManagedServiceIdentityClient)


def test_an_unknown_principal_is_not_found_with_or_without_principal_type(arm, auth) -> None:
    stranger = str(uuid.uuid4())

    for principal_type in (None, "User"):
        with pytest.raises(HttpResponseError) as refused:
            assign(auth, rg_scope(), READER, stranger, principal_type)
        assert refused.value.status_code == 400 and error_code(refused.value) == (
            "PrincipalNotFound")
        tenant = arm.subscription(SUBSCRIPTION).tenant_id
        assert refused.value.error.message.startswith(
            f"Principal {stranger.replace('-', '')} does not exist in the directory {tenant}.")
    assert arm.rbac.effective_roles(stranger, rg_scope()) == []


def test_a_new_identity_needs_principal_type_until_replicated(arm, auth, msi) -> None:
    arm.replication_delay = 1.0
    made = msi.user_assigned_identities.create_or_update(
        RESOURCE_GROUP, "id-new", Identity(location="westeurope"))

    with pytest.raises(HttpResponseError) as too_soon:
        assign(auth, rg_scope(), READER, made.principal_id)
    typed = assign(auth, rg_scope(), ACR_PULL, made.principal_id, "ServicePrincipal")
    time.sleep(1.05)
    later = assign(auth, rg_scope(), BLOB_CONTRIBUTOR, made.principal_id)

    assert error_code(too_soon.value) == "PrincipalNotFound"
    assert "set the role assignment principalType property" in too_soon.value.error.message
    assert typed.principal_type == "ServicePrincipal"
    assert later.principal_type == "ServicePrincipal"  # ARM looked it up once replicated
    assert {r.name for r in arm.effective_roles(made.principal_id, rg_scope())} == {
        "AcrPull", "Storage Blob Data Contributor"}


def test_a_principal_type_that_contradicts_the_directory_is_refused(arm, auth) -> None:
    robot = str(uuid.uuid4())
    arm.add_principal(robot, kind="ServicePrincipal", app_id=str(uuid.uuid4()))

    with pytest.raises(HttpResponseError) as refused:
        assign(auth, rg_scope(), READER, robot, "User")

    assert refused.value.status_code == 400
    assert error_code(refused.value) == "UnmatchedPrincipalType"
    assert "has type 'ServicePrincipal'" in refused.value.error.message


def test_duplicates_and_names(arm, auth) -> None:
    alice = str(uuid.uuid4())
    arm.add_principal(alice, upn="alice@contoso.example")
    name = str(uuid.uuid4())
    first = assign(auth, rg_scope(), READER, alice, "User", name=name)

    same_again = assign(auth, rg_scope(), READER, alice, "User", name=name)
    with pytest.raises(HttpResponseError) as other_name:
        assign(auth, rg_scope(), READER, alice, "User")
    with pytest.raises(HttpResponseError) as changed:
        assign(auth, rg_scope(), ACR_PULL, alice, "User", name=name)
    with pytest.raises(HttpResponseError) as not_a_guid:
        assign(auth, rg_scope(), READER, alice, "User", name="reader-for-alice")

    assert same_again.id == first.id and first.name == name
    assert first.id == f"{rg_scope()}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert other_name.value.status_code == 409
    assert error_code(other_name.value) == "RoleAssignmentExists"
    assert other_name.value.error.message == (
        "The role assignment already exists. The ID of the existing role assignment is "
        f"{name.replace('-', '')}.")
    assert error_code(changed.value) == "RoleAssignmentUpdateNotPermitted"
    assert error_code(not_a_guid.value) == "InvalidRoleAssignmentId"


def test_get_list_and_delete(arm, auth) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    arm.add_principal(alice)
    arm.add_principal(bob)
    at_group = assign(auth, rg_scope(), READER, alice, "User")
    at_sub = assign(auth, f"/subscriptions/{SUBSCRIPTION}", READER, bob, "User")
    registry = arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, "aksrunacr")
    below = assign(auth, registry.id, ACR_PULL, alice, "User")

    got = auth.role_assignments.get(rg_scope(), at_group.name)
    at_scope = {a.name for a in auth.role_assignments.list_for_scope(
        rg_scope(), filter="atScope()")}
    for_alice = {a.name for a in auth.role_assignments.list_for_scope(
        rg_scope(), filter=f"principalId eq '{alice}'")}
    everything = {a.name for a in auth.role_assignments.list_for_scope(rg_scope())}

    assert (got.principal_id, got.role_definition_id, got.scope) == (
        alice, definition(READER), rg_scope())
    assert {at_group.name, at_sub.name} <= at_scope and below.name not in at_scope
    assert for_alice == {at_group.name, below.name}
    assert {at_group.name, at_sub.name, below.name} <= everything

    deleted = auth.role_assignments.delete(rg_scope(), at_group.name)
    again = auth.role_assignments.delete(rg_scope(), at_group.name)
    assert deleted.name == at_group.name and again is None
    with pytest.raises(ResourceNotFoundError) as missing:
        auth.role_assignments.get(rg_scope(), at_group.name)
    assert error_code(missing.value) == "RoleAssignmentNotFound"
    assert arm.effective_roles(alice, rg_scope()) == []


def test_a_scope_that_does_not_exist_is_404(arm, auth) -> None:
    alice = str(uuid.uuid4())
    arm.add_principal(alice)
    scope = (f"{rg_scope()}/providers/Microsoft.Storage/storageAccounts/nosuchaccount/"
             "blobServices/default/containers/c")

    with pytest.raises(HttpResponseError) as missing:
        assign(auth, scope, BLOB_CONTRIBUTOR, alice, "User")

    assert missing.value.status_code == 404 and error_code(missing.value) == "ResourceNotFound"
    assert "Microsoft.Storage/storageAccounts/nosuchaccount" in missing.value.error.message


def test_only_owners_and_access_administrators_write_assignments(arm, auth, client_id) -> None:
    alice = str(uuid.uuid4())
    arm.add_principal(alice)
    arm.revoke(client_id)
    arm.grant(client_id, "Contributor", f"/subscriptions/{SUBSCRIPTION}")

    with pytest.raises(HttpResponseError) as contributor:
        assign(auth, rg_scope(), READER, alice, "User")
    arm.grant(client_id, "User Access Administrator", rg_scope())
    made = assign(auth, rg_scope(), READER, alice, "User")

    assert contributor.value.status_code == 403
    assert error_code(contributor.value) == "AuthorizationFailed"
    assert "'Microsoft.Authorization/roleAssignments/write'" in contributor.value.error.message
    assert made.principal_id == alice


def test_an_assignment_takes_effect_after_propagation(arm, auth, msi, client_id) -> None:
    """The caller assigns itself a role through the API: ARM refuses it (403) until the
    assignment has propagated, then lets the same request through."""
    arm.role_propagation_delay = 1.0
    me = caller_object_id(client_id)
    arm.add_principal(me, kind="ServicePrincipal", app_id=client_id)
    arm.revoke(client_id)
    arm.grant(client_id, "User Access Administrator", f"/subscriptions/{SUBSCRIPTION}")

    made_at = time.monotonic()  # before: the fake's delay runs from the assignment's creation
    assign(auth, rg_scope(), MI_CONTRIBUTOR, me, "ServicePrincipal")
    with pytest.raises(HttpResponseError) as not_yet:
        msi.user_assigned_identities.create_or_update(
            RESOURCE_GROUP, "id-later", Identity(location="westeurope"))
    roles_before = arm.effective_roles([me, client_id], rg_scope())
    attempts = 1
    while True:
        try:
            msi.user_assigned_identities.create_or_update(
                RESOURCE_GROUP, "id-later", Identity(location="westeurope"))
            break
        except HttpResponseError as exc:
            assert exc.status_code == 403 and time.monotonic() - made_at < 5
            attempts += 1
            time.sleep(0.1)
    waited = time.monotonic() - made_at

    assert not_yet.value.status_code == 403
    assert "Microsoft.ManagedIdentity/userAssignedIdentities/write" in not_yet.value.error.message
    assert [r.name for r in roles_before] == ["User Access Administrator"]
    assert waited >= 1.0 and attempts > 2
    assert {r.name for r in arm.effective_roles([me, client_id], rg_scope())} == {
        "User Access Administrator", "Managed Identity Contributor"}


def test_role_definitions_are_the_built_ins(arm, auth) -> None:
    got = auth.role_definitions.get(f"/subscriptions/{SUBSCRIPTION}", BLOB_CONTRIBUTOR)
    by_name = list(auth.role_definitions.list(
        f"/subscriptions/{SUBSCRIPTION}",
        filter="roleName eq 'Azure Kubernetes Service RBAC Writer'"))

    assert got.role_name == "Storage Blob Data Contributor"
    assert "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write" in (
        got.permissions[0].data_actions)
    assert [d.name for d in by_name] == ["a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"]
    for role in ("AcrPull", "Azure Kubernetes Service Cluster User Role",
                 "Managed Identity Operator"):
        assert len(list(auth.role_definitions.list(
            f"/subscriptions/{SUBSCRIPTION}", filter=f"roleName eq '{role}'"))) == 1
    with pytest.raises(HttpResponseError) as unknown:
        assign(auth, rg_scope(), str(uuid.uuid4()), str(uuid.uuid4()))
    assert error_code(unknown.value) == "RoleDefinitionDoesNotExist"
