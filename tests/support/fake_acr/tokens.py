"""Tokens, scopes and roles of the fake ACR front, modelled on ACR's documented token flow.

ACR turns an Entra access token into an ACR *refresh* token at `/oauth2/exchange`, and a
refresh token plus a Docker-style scope (`repository:<name>:pull,push`, `registry:catalog:*`)
into an *access* token at `/oauth2/token`; data-plane requests then carry the access token,
and each one covers only the scope it was issued for. The claim sets follow ACR's
`docs/AAD-OAuth.md` (Azure/acr). ACR signs with RS256; we sign with HMAC so a token forged
or altered by a client under test is refused, which is all a stand-in needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

ISSUER = "Azure Container Registry"
ACR_AUDIENCE = "https://containerregistry.azure.net"
# Entra audiences of Azure Resource Manager: ACR accepts them too unless the registry's
# `azureADAuthenticationAsArmPolicy` is disabled (the fake's `arm_audience_tokens` switch).
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")

REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete", "metadata_read", "metadata_write"})
# What each built-in role lets a principal do on the data plane (non-ABAC registries).
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "AcrPull": frozenset({"pull", "metadata_read"}),
    "Reader": frozenset({"pull", "metadata_read"}),
    "AcrPush": frozenset({"pull", "push", "metadata_read", "metadata_write"}),
    "AcrDelete": frozenset({"delete"}),
    "Contributor": REPOSITORY_ACTIONS,
    "Owner": REPOSITORY_ACTIONS,
}
# Roles that may list the registry's catalog (`registry:catalog:*`).
CATALOG_ROLES = frozenset({"AcrPull", "Reader", "AcrPush", "Contributor", "Owner"})


@dataclass(frozen=True)
class Scope:
    """One Docker token scope: `type:name:action,action`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """None for text that is not a scope (ACR ignores what it cannot read)."""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not (sep and sep2 and kind and name):
            return None
        return cls(kind, name, tuple(a for a in actions.split(",") if a))


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from `scope` form fields: repeated, or space-separated in one field."""
    scopes = []
    for value in values:
        for part in value.split():
            scope = Scope.parse(part)
            if scope is not None:
                scopes.append(scope)
    return scopes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jwt(token: str) -> tuple[dict, dict] | None:
    """Header and claims of a compact JWT, without checking its signature; None if malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


def _sdk_can_read(payload: str) -> bool:
    """Whether azure-containerregistry's `_parse_exp_time` decodes this payload segment.

    It pads wrongly and uses the standard (not URL-safe) alphabet; real ACR tokens survive
    that, so ours must too, or the SDK fails on tokens a real registry would never send.
    """
    value = payload + "=" * (len(payload) % 4)
    try:
        return base64.b64decode(value) == _b64url_decode(payload)
    except (ValueError, binascii.Error):
        return False


class TokenSigner:
    """Issues and checks the front's own JWTs with a per-front secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, claims: dict) -> str:
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "fake-acr"}).encode())
        for _ in range(64):
            body = dict(claims, jti=str(uuid.uuid4()))
            payload = b64url(json.dumps(body, separators=(",", ":")).encode())
            if _sdk_can_read(payload):
                break
        signing_input = f"{header}.{payload}"
        signature = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"

    def verify(self, token: str, *, audience: str, grant_type: str) -> dict | None:
        """The claims if we issued this token, it is live, and it is of the expected kind."""
        parts = token.split(".")
        decoded = decode_jwt(token)
        if decoded is None:
            return None
        expected = hmac.new(
            self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(b64url(expected), parts[2]):
            return None
        claims = decoded[1]
        now = time.time()
        if claims.get("aud") != audience or claims.get("grant_type") != grant_type:
            return None
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
            return None
        return claims


def entra_problem(
    claims: dict, *, audiences: set[str], tenant_id: str, tenant_field: str, now: float
) -> str | None:
    """Why ACR would refuse this Entra access token at `/oauth2/exchange`, or None."""
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud.rstrip("/") not in audiences:
        return f"the token's audience {aud!r} is not one this registry accepts"
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if not isinstance(exp, int | float) or exp <= now:
        return "the token has expired"
    if isinstance(nbf, int | float) and nbf > now + 300:
        return "the token is not valid yet"
    tid = claims.get("tid")
    if tid != tenant_id:
        return f"the token's tenant {tid!r} is not the registry's tenant"
    if tenant_field and tenant_field != tid:
        return f"tenant {tenant_field!r} does not match the token's tenant"
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or tenant_id not in issuer:
        return f"the token's issuer {issuer!r} is not of the registry's tenant"
    if not (claims.get("oid") or claims.get("sub")):
        return "the token names no principal (no oid or sub claim)"
    return None


def principal_ids(claims: dict) -> list[str]:
    """Every id a role assignment may name the caller by: object id, then app id."""
    ids = [claims.get(k) for k in ("oid", "sub", "appid", "azp")]
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


def grant_access(scopes: list[Scope], roles: set[str]) -> list[dict]:
    """The `access` claim for these requested scopes: each cut down to what the roles allow."""
    allowed = frozenset().union(*(ROLE_ACTIONS.get(r, frozenset()) for r in roles))
    access = []
    for scope in scopes:
        if scope.type == "registry" and scope.name == "catalog":
            granted = ["*"] if roles & CATALOG_ROLES and "*" in scope.actions else []
        elif scope.type == "repository":
            wanted = set(REPOSITORY_ACTIONS) if "*" in scope.actions else set(scope.actions)
            granted = sorted(wanted & allowed)
        else:
            granted = []
        if granted:
            access.append({"type": scope.type, "name": scope.name, "actions": granted})
    return access


def covers(access: list, needed: Scope) -> bool:
    """Whether an access token's `access` claim allows every action of `needed`."""
    for entry in access if isinstance(access, list) else []:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == needed.type and entry.get("name") == needed.name:
            actions = set(entry.get("actions") or [])
            if "*" in actions or set(needed.actions) <= actions:
                return True
    return False
