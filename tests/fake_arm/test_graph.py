"""The minimal Microsoft Graph on the fake ARM's server, called as aksrun calls it: an
azure-core pipeline with DefaultAzureCredential for `https://graph.microsoft.com/.default`."""

from __future__ import annotations

import uuid

import pytest
from azure.core import PipelineClient
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential

from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite

ALICE = "6a0c5f3e-1b2d-4c8e-9f70-2a4b6c8d0e1f"
NOT_FOUND = ("does not exist or one of its queried reference-property objects are not "
             "present.")


def graph_get(arm: FakeArm, path: str, scope: str = "https://graph.microsoft.com/.default"):
    client = PipelineClient(arm.endpoint, policies=[
        BearerTokenCredentialPolicy(DefaultAzureCredential(), scope),
    ])
    return client.send_request(HttpRequest("GET", f"{arm.endpoint}{path}"))


@pytest.fixture
def directory(arm: FakeArm) -> FakeArm:
    arm.add_principal(ALICE, upn="alice@contoso.example", display_name="Alice Liddell")
    arm.add_principal("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", kind="ServicePrincipal",
                      display_name="ci-robot", app_id="11111111-2222-3333-4444-555555555555")
    return arm


def test_users_by_object_id_and_by_upn(directory) -> None:
    by_id = graph_get(directory, f"/v1.0/users/{ALICE}")
    by_upn = graph_get(directory, "/v1.0/users/ALICE@contoso.example")
    selected = graph_get(directory, f"/v1.0/users/{ALICE}?$select=id,displayName")

    assert by_id.status_code == 200 and by_upn.status_code == 200
    body = by_id.json()
    assert (body["id"], body["userPrincipalName"], body["displayName"]) == (
        ALICE, "alice@contoso.example", "Alice Liddell")
    assert body["@odata.context"] == "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
    assert by_upn.json()["id"] == ALICE
    assert set(selected.json()) == {"@odata.context", "id", "displayName"}


def test_a_service_principal_is_not_a_user_but_a_directory_object(directory) -> None:
    robot = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"

    as_user = graph_get(directory, f"/v1.0/users/{robot}")
    as_object = graph_get(directory, f"/v1.0/directoryObjects/{robot}")
    as_sp = graph_get(directory, f"/v1.0/servicePrincipals/{robot}")

    assert as_user.status_code == 404
    assert as_object.json()["@odata.type"] == "#microsoft.graph.servicePrincipal"
    assert as_sp.status_code == 200 and as_sp.json()["appId"] == (
        "11111111-2222-3333-4444-555555555555")


def test_unknown_objects_get_graphs_404_body(directory) -> None:
    nobody = str(uuid.uuid4())

    answer = graph_get(directory, f"/v1.0/users/{nobody}")
    upn = graph_get(directory, "/v1.0/users/bob@contoso.example")

    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "Request_ResourceNotFound"
    assert error["message"] == f"Resource '{nobody}' {NOT_FOUND}"
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])
    assert upn.json()["error"]["message"] == f"Resource 'bob@contoso.example' {NOT_FOUND}"


def test_graph_checks_its_own_audience_and_permissions(directory, client_id) -> None:
    arm_token = graph_get(directory, f"/v1.0/users/{ALICE}",
                          scope="https://management.azure.com/.default")
    directory.graph_denied.add(client_id)
    denied = graph_get(directory, f"/v1.0/users/{ALICE}")

    assert arm_token.status_code == 401
    assert arm_token.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        **denied.json()["error"], "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation."}
    assert [r.status for r in directory.calls("GET", f"/users/{ALICE}")][-2:] == [401, 403]
