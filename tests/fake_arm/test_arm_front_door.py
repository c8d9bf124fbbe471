"""What ARM checks before a resource provider sees a request, through the real SDK clients:
api-version, token (audience, expiry, tenant), subscription, RBAC, resource group, resource,
and ARM's headers and error shape. Registry GET (api 2025-04-01) is the probe."""

from __future__ import annotations

import uuid

import pytest
from azure.core import PipelineClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential

from tests.fake_arm.conftest import (
    REGISTRY,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    management_client,
    tasks_client,
)
from tests.support.fake_arm import FakeArm
from tests.support.fake_entra import make_jwt

pytestmark = pytest.mark.azurite

REGISTRY_PATH = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
    f"Microsoft.ContainerRegistry/registries/{REGISTRY}"
)


def object_id(client_id: str) -> str:
    """The `oid` the fake Entra puts in this client's tokens."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))


def raw_get(arm: FakeArm, url: str, token: str | None = None, credential: bool = False):
    """A request the SDK operations can't make (no api-version, a hand-made token)."""
    policies = []
    if credential:
        credential_policy = BearerTokenCredentialPolicy(
            DefaultAzureCredential(), *arm.credential_scopes
        )
        policies.append(credential_policy)
    client = PipelineClient(arm.endpoint, policies=policies)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.send_request(HttpRequest("GET", arm.endpoint + url, headers=headers))


# ---- the happy path ---------------------------------------------------------------------------


def test_registry_get_answers_the_registry_with_arm_headers(arm, registry, client_id) -> None:
    arm.grant_owner(client_id, SUBSCRIPTION)
    client = management_client(arm)
    correlation = str(uuid.uuid4())

    got, headers = client.registries.get(
        RESOURCE_GROUP, REGISTRY, headers={"x-ms-correlation-request-id": correlation},
        cls=lambda response, model, _: (model, response.http_response.headers),
    )

    assert (got.name, got.login_server, got.sku.name) == (REGISTRY, "aksrunacr.azurecr.io",
                                                          "Standard")
    assert got.id == REGISTRY_PATH and got.location == "westeurope"
    assert got.provisioning_state == "Succeeded"
    assert uuid.UUID(headers["x-ms-request-id"])
    assert headers["x-ms-correlation-request-id"] == correlation
    assert arm.calls("GET", f"/registries/{REGISTRY}") == [
        ("GET", REGISTRY_PATH, "2025-04-01", 200)
    ]


# ---- api-version ------------------------------------------------------------------------------


def test_missing_api_version_is_refused_before_anything_else(arm, registry) -> None:
    response = raw_get(arm, REGISTRY_PATH)  # no token either: api-version is checked first

    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": "MissingApiVersionParameter",
        "message": "The api-version query parameter (?api-version=) is required for all "
        "requests.",
    }}
    assert "x-ms-request-id" in response.headers


def test_an_api_version_the_resource_type_does_not_serve_is_refused(
    arm, registry, client_id
) -> None:
    arm.grant_owner(client_id, SUBSCRIPTION)

    with pytest.raises(HttpResponseError) as bad:
        management_client(arm).registries.get(RESOURCE_GROUP, REGISTRY, api_version="2016-06-27")
    with pytest.raises(HttpResponseError) as tasks_version_on_registry:
        management_client(arm).registries.get(
            RESOURCE_GROUP, REGISTRY, api_version="2019-06-01-preview"
        )
    with pytest.raises(HttpResponseError) as registry_version_on_runs:
        tasks_client(arm).runs.get(RESOURCE_GROUP, REGISTRY, "cb1", api_version="2025-04-01")

    assert bad.value.status_code == 400
    assert bad.value.error.code == "NoRegisteredProviderFound"
    assert bad.value.error.message.startswith(
        "No registered resource provider found for location 'westeurope' and API version "
        "'2016-06-27' for type 'registries'. The supported api-versions are '2017-03-01, "
    )
    assert "2019-05-01" in bad.value.error.message and "2025-04-01" in bad.value.error.message
    assert tasks_version_on_registry.value.error.code == "NoRegisteredProviderFound"
    assert "for type 'registries/runs'" in registry_version_on_runs.value.error.message


# ---- authentication ---------------------------------------------------------------------------


def test_a_token_for_another_audience_gets_401_with_a_bearer_challenge(
    arm, registry, client_id
) -> None:
    arm.grant_owner(client_id, SUBSCRIPTION)
    client = management_client(arm, credential_scopes=["https://storage.azure.com/.default"])

    with pytest.raises(ClientAuthenticationError) as denied:
        client.registries.get(RESOURCE_GROUP, REGISTRY)

    assert denied.value.status_code == 401
    assert denied.value.error.code == "InvalidAuthenticationTokenAudience"
    assert denied.value.error.message == (
        "The access token has been obtained for wrong audience or resource "
        "'https://storage.azure.com'. It should exactly match with one of the allowed "
        "audiences 'https://management.core.windows.net/','https://management.core.windows.net',"
        "'https://management.azure.com/','https://management.azure.com'."
    )
    challenge = denied.value.response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization_uri="')
    assert 'error="invalid_token"' in challenge


def test_missing_expired_and_foreign_tenant_tokens_get_arms_401s(
    arm, registry, client_id, identity
) -> None:
    arm.grant_owner(client_id, SUBSCRIPTION)
    url = f"{REGISTRY_PATH}?api-version=2025-04-01"
    tenant = identity.entra.tenant_id
    expired = make_jwt(tenant, client_id, "https://management.azure.com/", lifetime=-120)
    other_tenant = "0000aaaa-1111-2222-3333-444455556666"
    foreign = make_jwt(other_tenant, client_id, "https://management.azure.com")

    missing = raw_get(arm, url)
    late = raw_get(arm, url, token=expired)
    wrong = raw_get(arm, url, token=foreign)
    garbage = raw_get(arm, url, token="not-a-jwt")

    assert (missing.status_code, missing.json()["error"]) == (401, {
        "code": "AuthenticationFailed",
        "message": "Authentication failed. The 'Authorization' header is missing.",
    })
    assert late.status_code == 401
    assert late.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert late.json()["error"]["message"].startswith("The access token expiry UTC time '")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"
    assert wrong.json()["error"]["message"].startswith(
        f"The access token is from the wrong issuer 'https://sts.windows.net/{other_tenant}/'. "
        f"It must match the tenant 'https://sts.windows.net/{tenant}/' associated with this "
        "subscription."
    )
    assert (garbage.status_code, garbage.json()["error"]["code"]) == (
        401, "InvalidAuthenticationToken"
    )
    assert all("WWW-Authenticate" in r.headers for r in (missing, late, wrong, garbage))


# ---- RBAC -------------------------------------------------------------------------------------


def test_no_role_assignment_is_403_naming_the_action_and_scope(arm, registry, client_id) -> None:
    with pytest.raises(HttpResponseError) as denied:
        management_client(arm).registries.get(RESOURCE_GROUP, REGISTRY)

    assert denied.value.status_code == 403
    assert denied.value.error.code == "AuthorizationFailed"
    assert denied.value.error.message == (
        f"The client '{client_id}' with object id '{object_id(client_id)}' does not have "
        "authorization to perform action 'Microsoft.ContainerRegistry/registries/read' over "
        f"scope '{REGISTRY_PATH}' or the scope is invalid. If access was recently granted, "
        "please refresh your credentials."
    )


def test_roles_allow_what_their_definitions_allow_at_their_scope(arm, registry, client_id) -> None:
    other = arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, "otheracr")
    arm.grant(client_id, "Reader", other.id)  # another registry's scope does not reach this one
    with pytest.raises(HttpResponseError) as elsewhere:
        management_client(arm).registries.get(RESOURCE_GROUP, REGISTRY)
    arm.grant(client_id, "AcrPush", registry.id)  # push/pull only: not even a control-plane read
    with pytest.raises(HttpResponseError) as push_only:
        management_client(arm).registries.get(RESOURCE_GROUP, REGISTRY)
    arm.grant(client_id, "Reader", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}")

    read = management_client(arm).registries.get(RESOURCE_GROUP, REGISTRY)
    with pytest.raises(HttpResponseError) as reader_upload:
        tasks_client(arm).registries.get_build_source_upload_url(RESOURCE_GROUP, REGISTRY)

    assert elsewhere.value.status_code == push_only.value.status_code == 403
    assert read.name == REGISTRY
    assert reader_upload.value.status_code == 403
    assert (
        "perform action 'Microsoft.ContainerRegistry/registries/listBuildSourceUploadUrl/action' "
        f"over scope '{REGISTRY_PATH}'" in reader_upload.value.error.message
    )


# ---- what is not there ------------------------------------------------------------------------


def test_missing_subscription_resource_group_and_registry_are_arms_404s(
    arm, registry, client_id
) -> None:
    arm.grant_owner(client_id, SUBSCRIPTION)
    absent_subscription = "99999999-8888-7777-6666-555555555555"

    with pytest.raises(ResourceNotFoundError) as no_subscription:
        management_client(arm, subscription=absent_subscription).registries.get(
            RESOURCE_GROUP, REGISTRY
        )
    with pytest.raises(ResourceNotFoundError) as no_group:
        management_client(arm).registries.get("rg-nope", REGISTRY)
    with pytest.raises(ResourceNotFoundError) as no_registry:
        management_client(arm).registries.get(RESOURCE_GROUP, "nosuchacr")

    assert (no_subscription.value.error.code, no_subscription.value.error.message) == (
        "SubscriptionNotFound", f"The subscription '{absent_subscription}' could not be found."
    )
    assert (no_group.value.error.code, no_group.value.error.message) == (
        "ResourceGroupNotFound", "Resource group 'rg-nope' could not be found."
    )
    assert (no_registry.value.error.code, no_registry.value.error.message) == (
        "ResourceNotFound",
        "The Resource 'Microsoft.ContainerRegistry/registries/nosuchacr' under resource group "
        f"'{RESOURCE_GROUP}' was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix",
    )
    assert [r.status for r in arm.requests] == [404, 404, 404]


def test_a_resource_group_is_only_revealed_to_callers_allowed_in_it(arm, client_id) -> None:
    """RBAC comes before existence: no role, no ResourceGroupNotFound."""
    with pytest.raises(HttpResponseError) as denied:
        management_client(arm).registries.get("rg-nope", REGISTRY)

    assert (denied.value.status_code, denied.value.error.code) == (403, "AuthorizationFailed")


def test_every_answer_is_recorded_and_has_arm_ids(arm, registry, client_id) -> None:
    response = raw_get(arm, f"{REGISTRY_PATH}?api-version=2025-04-01", credential=True)
    arm.grant_owner(client_id, SUBSCRIPTION)
    ok = raw_get(arm, f"{REGISTRY_PATH}?api-version=2025-04-01", credential=True)

    assert (response.status_code, ok.status_code) == (403, 200)
    for answer in (response, ok):
        assert answer.headers["x-ms-request-id"]
        assert answer.headers["x-ms-correlation-request-id"]
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert [(r.method, r.api_version, r.status) for r in arm.requests] == [
        ("GET", "2025-04-01", 403), ("GET", "2025-04-01", 200)
    ]
