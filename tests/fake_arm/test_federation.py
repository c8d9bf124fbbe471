"""FakeEntra's opt-in federation (`entra.federation = arm`): a managed identity's client
assertion is exchanged only when it matches one of the identity's federated credentials in the
fake ARM and that credential has propagated (`arm.federation_delay`), as Entra does for
workload identity; otherwise AADSTS70021."""

from __future__ import annotations

import base64
import json
import time

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import FederatedIdentityCredential

from tests.fake_arm.conftest import RESOURCE_GROUP, SUBSCRIPTION, arm_client
from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite

ISSUER = "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/"
SUBJECT = "system:serviceaccount:aksrun-gina:aksrun"
AUDIENCE = "api://AzureADTokenExchange"


def service_account_token(issuer: str = ISSUER, subject: str = SUBJECT) -> str:
    """A JWT shaped as a projected Kubernetes service-account token (not signed)."""
    now = int(time.time())
    claims = {"aud": [AUDIENCE], "iss": issuer, "sub": subject, "iat": now, "nbf": now,
              "exp": now + 600, "kubernetes.io": {"namespace": "aksrun-gina"}}

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2ln"


@pytest.fixture
def federated(arm: FakeArm, identity, monkeypatch):
    monkeypatch.setattr(identity.entra, "federation", arm)
    arm.federation_delay = 0.5
    arm.fic_write_seconds = 0.0
    return identity.entra


def exchange(entra, client_id: str, token: str) -> object:
    credential = ClientAssertionCredential(entra.tenant_id, client_id, lambda: token,
                                           authority=entra.authority_host)
    try:
        return credential.get_token("https://storage.azure.com/.default")
    finally:
        credential.close()


def claims_of(access_token: str) -> dict:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_exchange_waits_for_a_matching_propagated_credential(
    arm, federated, client_id
) -> None:
    gina = arm.add_identity(SUBSCRIPTION, RESOURCE_GROUP, "id-gina")
    arm.grant_owner(client_id, SUBSCRIPTION)
    msi = arm_client(arm, ManagedServiceIdentityClient)

    with pytest.raises(ClientAuthenticationError, match="AADSTS70021") as none_yet:
        exchange(federated, gina.client_id, service_account_token())
    msi.federated_identity_credentials.create_or_update(
        RESOURCE_GROUP, "id-gina", "fic-gina",
        FederatedIdentityCredential(issuer=ISSUER, subject=SUBJECT, audiences=[AUDIENCE]))
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        exchange(federated, gina.client_id, service_account_token())  # not propagated yet
    time.sleep(0.55)
    token = exchange(federated, gina.client_id, service_account_token())
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021") as wrong_subject:
        exchange(federated, gina.client_id,
                 service_account_token(subject="system:serviceaccount:other:aksrun"))

    claims = claims_of(token.token)
    assert (claims["appid"], claims["oid"], claims["tid"]) == (
        gina.client_id, gina.principal_id, gina.tenant_id)
    assert claims["aud"] == "https://storage.azure.com"
    assert f"Assertion Subject: '{SUBJECT}'" in str(none_yet.value)
    assert "Assertion Subject: 'system:serviceaccount:other:aksrun'" in str(wrong_subject.value)


def test_other_clients_keep_the_plain_behaviour(arm, federated, client_id, identity) -> None:
    token = exchange(federated, client_id, identity.token_file.read_text())

    assert claims_of(token.token)["appid"] == client_id
