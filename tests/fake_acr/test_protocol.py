"""The fake ACR on the wire: challenges, token checks and response shapes, compared with what
ACR sends (Azure SDK for JS recordings, ACR's AAD-OAuth.md), without the SDK smoothing them."""

from __future__ import annotations

import base64
import json
import re

import pytest
import requests
from azure.containerregistry._helpers import _parse_challenge, _parse_exp_time

from tests.support.fake_acr import push_image
from tests.support.fake_acr.tokens import decode_jwt
from tests.support.fake_entra import make_jwt

AUDIENCE = "https://containerregistry.azure.net"
AUTH_MESSAGE = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)
ACR_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


@pytest.fixture
def http(acr_tls) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only; no proxy settings apply
    session.verify = str(acr_tls.ca_bundle)
    return session


def entra_token(entra, **overrides) -> str:
    token = make_jwt(
        overrides.pop("tenant", entra.tenant_id), overrides.pop("client_id", entra.client_id),
        overrides.pop("audience", AUDIENCE), overrides.pop("lifetime", 3600),
    )
    if overrides:  # rewrite claims (the fakes are unsigned, so this is still a valid fake)
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims.update(overrides)
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{header}.{payload}.{signature}"
    return token


def exchange(http, front, token: str) -> requests.Response:
    return http.post(f"{front.endpoint}/oauth2/exchange", data={
        "grant_type": "access_token", "service": front.login_server, "access_token": token,
    })


def access_token(http, front, entra, scope: str) -> str:
    refresh = exchange(http, front, entra_token(entra))
    assert refresh.status_code == 200, refresh.text
    answer = http.post(f"{front.endpoint}/oauth2/token", data={
        "grant_type": "refresh_token", "service": front.login_server, "scope": scope,
        "refresh_token": refresh.json()["refresh_token"],
    })
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.mark.parametrize(("method", "path", "scope", "actions"), [
    ("GET", "/acr/v1/_catalog", "registry:catalog:*", ["*"]),
    ("GET", "/acr/v1/team%2Fapp/_tags/v1", "repository:team/app:metadata_read",
     ["metadata_read"]),
    ("DELETE", "/acr/v1/team%2Fapp/_tags/v1", "repository:team/app:delete", ["delete"]),
    ("PATCH", "/acr/v1/team%2Fapp/_manifests/sha256:" + "a" * 64,
     "repository:team/app:metadata_write", ["metadata_write"]),
    ("GET", "/v2/team/app/manifests/v1", "repository:team/app:pull", ["pull"]),
    ("POST", "/v2/team/app/blobs/uploads/", "repository:team/app:push,pull", ["pull", "push"]),
])
def test_requests_without_a_token_get_acrs_challenge(fake_acr, http, method, path, scope,
                                                     actions):
    answer = http.request(method, fake_acr.endpoint + path)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == (
        f'Bearer realm="https://{fake_acr.login_server}/oauth2/token",'
        f'service="{fake_acr.login_server}",scope="{scope}"'
    )
    [error] = answer.json()["errors"]
    assert error["code"] == "UNAUTHORIZED" and error["message"] == AUTH_MESSAGE
    assert [d["Action"] for d in error["detail"]] == actions
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("change", [
    {"lifetime": -60},
    {"tenant": "99999999-9999-9999-9999-999999999999"},
    {"audience": "https://storage.azure.com"},
    {"iss": "https://sts.windows.net/someone-else/"},
    {"oid": None, "sub": None},
])
def test_exchange_refuses_unfit_entra_tokens(fake_acr, acr_entra, http, change):
    answer = exchange(http, fake_acr, entra_token(acr_entra, **change))
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_exchange_refuses_garbage_foreign_service_and_other_grants(fake_acr, acr_entra, http):
    assert exchange(http, fake_acr, "not-a-jwt").status_code == 401
    good = entra_token(acr_entra)
    foreign = http.post(f"{fake_acr.endpoint}/oauth2/exchange", data={
        "grant_type": "access_token", "service": "other.azurecr.io", "access_token": good,
    })
    assert foreign.status_code == 401
    legacy = http.post(f"{fake_acr.endpoint}/oauth2/exchange", data={
        "grant_type": "refresh_token", "service": fake_acr.login_server, "refresh_token": good,
    })
    assert legacy.status_code == 400
    assert http.get(f"{fake_acr.endpoint}/oauth2/exchange").status_code == 404  # POST only
    assert exchange(http, fake_acr, good).status_code == 200


def test_tokens_carry_acrs_claims_and_the_sdk_can_read_them(fake_acr, acr_entra, http):
    fake_acr.grant(acr_entra.client_id, "AcrPush")
    refresh = exchange(http, fake_acr, entra_token(acr_entra)).json()["refresh_token"]
    _, refresh_claims = decode_jwt(refresh)
    assert refresh_claims["aud"] == fake_acr.login_server
    assert refresh_claims["iss"] == "Azure Container Registry"
    assert refresh_claims["grant_type"] == "refresh_token"
    assert refresh_claims["tenant"] == acr_entra.tenant_id
    assert _parse_exp_time(refresh) == refresh_claims["exp"]  # the SDK's own decoder
    token = access_token(http, fake_acr, acr_entra, "repository:app:pull,push,delete")
    _, claims = decode_jwt(token)
    # AcrPush has no delete: the token is cut down to what the role allows
    assert claims["access"] == [{"type": "repository", "name": "app", "actions": ["pull", "push"]}]
    assert claims["grant_type"] == "access_token"


def test_an_access_token_covers_only_its_scope(fake_acr, acr_backend, acr_entra, http):
    push_image(acr_backend.url, "one", "v1")
    push_image(acr_backend.url, "two", "v1")
    fake_acr.grant(acr_entra.client_id, "AcrPull")
    token = access_token(http, fake_acr, acr_entra, "repository:one:metadata_read")
    auth = {"Authorization": f"Bearer {token}"}
    assert http.get(f"{fake_acr.endpoint}/acr/v1/one/_tags", headers=auth).status_code == 200
    other = http.get(f"{fake_acr.endpoint}/acr/v1/two/_tags", headers=auth)
    assert other.status_code == 401
    challenge = _parse_challenge(other.headers["WWW-Authenticate"])
    assert challenge["scope"] == "repository:two:metadata_read"
    assert challenge["error"] == "insufficient_scope"
    pull = http.get(f"{fake_acr.endpoint}/v2/one/manifests/v1", headers=auth)
    assert pull.status_code == 401  # metadata_read is not pull
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    forged = http.get(f"{fake_acr.endpoint}/acr/v1/one/_tags",
                      headers={"Authorization": f"Bearer {tampered}"})
    assert forged.status_code == 401
    assert "insufficient_scope" not in forged.headers["WWW-Authenticate"]


def test_token_endpoint_refuses_scopes_the_role_does_not_allow(fake_acr, acr_entra, http):
    fake_acr.grant(acr_entra.client_id, "AcrDelete")
    refresh = exchange(http, fake_acr, entra_token(acr_entra)).json()["refresh_token"]

    def token(scope: str, refresh_token: str = refresh) -> requests.Response:
        return http.post(f"{fake_acr.endpoint}/oauth2/token", data={
            "grant_type": "refresh_token", "service": fake_acr.login_server, "scope": scope,
            "refresh_token": refresh_token,
        })

    assert token("repository:app:pull").status_code == 401
    assert token("registry:catalog:*").status_code == 401
    assert token("repository:app:delete").status_code == 200
    assert token("repository:app:delete", refresh_token=refresh + "x").status_code == 401
    fake_acr.revoke(acr_entra.client_id)
    assert token("repository:app:delete").status_code == 401


def test_docker_style_basic_token_request(fake_acr, acr_backend, acr_entra, http):
    push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_entra.client_id, "AcrPull")
    refresh = exchange(http, fake_acr, entra_token(acr_entra)).json()["refresh_token"]
    params = {"service": fake_acr.login_server, "scope": "repository:app:pull"}
    url = f"{fake_acr.endpoint}/oauth2/token"
    assert http.get(url, params=params).status_code == 401  # anonymous pull is off
    answer = http.get(url, params=params,
                      auth=("00000000-0000-0000-0000-000000000000", refresh))
    assert answer.status_code == 200
    head = http.head(f"{fake_acr.endpoint}/v2/app/manifests/v1", headers={
        "Authorization": f"Bearer {answer.json()['access_token']}",
        "Accept": "application/vnd.oci.image.manifest.v1+json",
    })
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"].startswith("sha256:")
    assert head.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"


def test_manifest_and_tag_bodies_have_acrs_fields(fake_acr, acr_backend, acr_entra, http):
    image = push_image(acr_backend.url, "app", "v1")
    loose = push_image(acr_backend.url, "app", None, files={"x": b"loose"})
    fake_acr.grant(acr_entra.client_id, "AcrPull")
    auth = {"Authorization": "Bearer "
            + access_token(http, fake_acr, acr_entra, "repository:app:metadata_read")}
    base = f"{fake_acr.endpoint}/acr/v1/app"
    tag = http.get(f"{base}/_tags/v1", headers=auth).json()
    assert tag["registry"] == fake_acr.login_server and tag["imageName"] == "app"
    assert set(tag["tag"]) == {"name", "digest", "createdTime", "lastUpdateTime", "signed",
                               "changeableAttributes"}
    assert tag["tag"]["signed"] is False and ACR_TIME.match(tag["tag"]["createdTime"])
    manifest = http.get(f"{base}/_manifests/{image.digest}", headers=auth).json()["manifest"]
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["configMediaType"] == "application/vnd.oci.image.config.v1+json"
    assert (manifest["architecture"], manifest["os"], manifest["tags"]) == (
        "amd64", "linux", ["v1"])
    assert manifest["changeableAttributes"] == {
        "deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}
    untagged = http.get(f"{base}/_manifests/{loose.digest}", headers=auth).json()["manifest"]
    assert "tags" not in untagged
    paged = http.get(f"{base}/_manifests", params={"n": 1}, headers=auth)
    assert paged.headers["Link"] == (
        f"</acr/v1/app/_manifests?last={min(image.digest, loose.digest).replace(':', '%3A')}"
        '&n=1&orderby=>; rel="next"'
    )
    assert http.get(f"{base}/_manifests/v1", headers=auth).status_code == 400  # digests only


def test_changeable_attributes_are_stored(fake_acr, acr_backend, acr_entra, http):
    push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_entra.client_id, "AcrPush")
    write = {"Authorization": "Bearer "
             + access_token(http, fake_acr, acr_entra, "repository:app:metadata_write")}
    answer = http.patch(f"{fake_acr.endpoint}/acr/v1/app/_tags/v1", headers=write,
                        json={"deleteEnabled": False})
    assert answer.status_code == 200
    assert answer.json()["tag"]["changeableAttributes"]["deleteEnabled"] is False
    refused = http.patch(f"{fake_acr.endpoint}/acr/v1/app/_tags/v1", headers=write,
                         json={"name": "renamed"})
    assert refused.status_code == 400


def test_uploads_answer_front_relative_locations(fake_acr, acr_entra, http):
    fake_acr.grant(acr_entra.client_id, "AcrPush")
    auth = {"Authorization": "Bearer "
            + access_token(http, fake_acr, acr_entra, "repository:app:push,pull")}
    started = http.post(f"{fake_acr.endpoint}/v2/app/blobs/uploads/", headers=auth)
    assert started.status_code == 202
    location = started.headers["Location"]
    assert location.startswith("/v2/app/blobs/uploads/") and "_state=" in location
    data = b"some blob"
    digest = "sha256:" + __import__("hashlib").sha256(data).hexdigest()
    done = http.put(f"{fake_acr.endpoint}{location}&digest={digest}", data=data, headers=auth)
    assert done.status_code == 201
    assert done.headers["Location"] == f"/v2/app/blobs/{digest}"
    assert done.headers["Docker-Content-Digest"] == digest
    ranged = http.get(f"{fake_acr.endpoint}/v2/app/blobs/{digest}",
                      headers={**auth, "Range": "bytes=0-3"})
    assert (ranged.status_code, ranged.content) == (206, b"some")
    assert ranged.headers["Content-Range"] == f"bytes 0-3/{len(data)}"


def test_chunked_uploads_and_plain_v2_listings_pass_through(fake_acr, acr_entra, http):
    fake_acr.grant(acr_entra.client_id, "AcrPush")
    push = {"Authorization": "Bearer "
            + access_token(http, fake_acr, acr_entra, "repository:app:push,pull")}
    refused = http.post(f"{fake_acr.endpoint}/v2/app/blobs/uploads/",
                        data=iter([b"ignored ", b"body"]))  # chunked, no token: drained
    assert refused.status_code == 401
    location = http.post(f"{fake_acr.endpoint}/v2/app/blobs/uploads/",
                         headers=push).headers["Location"]
    parts = [b"chunk one, ", b"chunk two"]
    patched = http.patch(f"{fake_acr.endpoint}{location}", data=iter(parts), headers=push)
    assert patched.status_code == 202 and patched.headers["Range"] == "0-19"
    digest = "sha256:" + __import__("hashlib").sha256(b"".join(parts)).hexdigest()
    done = http.put(f"{fake_acr.endpoint}{patched.headers['Location']}&digest={digest}",
                    headers=push)
    assert done.status_code == 201 and done.headers["Docker-Content-Digest"] == digest
    catalog = http.get(f"{fake_acr.endpoint}/v2/_catalog", headers={
        "Authorization": "Bearer " + access_token(http, fake_acr, acr_entra, "registry:catalog:*")
    })
    assert catalog.status_code == 200 and catalog.json() == {"repositories": ["app"]}
