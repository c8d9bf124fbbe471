"""Bearer-token checks as ARM makes them, without signatures.

ARM trusts Entra's signature; the fake trusts `tests/support/fake_entra.py`, whose tokens are
unsigned. What a wrong client set-up actually gets wrong (audience, expiry, tenant, a missing
or malformed header) is checked, each with ARM's own 401.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..fake_entra import jwt_claims as _claims
from . import errors


@dataclass(frozen=True)
class Principal:
    """Who called: what RBAC and ARM's AuthorizationFailed message need from the token."""

    object_id: str
    app_id: str
    tenant_id: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def client(self) -> str:
        """The name ARM's 403 message gives the caller: the app id, or a user's UPN."""
        return str(self.claims.get("upn") or self.claims.get("unique_name") or self.app_id)


def allowed_audiences(audience: str) -> list[str]:
    """ARM accepts its audience with and without the trailing slash (and the classic one)."""
    base = audience.rstrip("/")
    accepted = []
    if base == "https://management.azure.com":
        accepted += ["https://management.core.windows.net/", "https://management.core.windows.net"]
    return [*accepted, f"{base}/", base]


def authenticate(
    header: str | None, audience: str, authority: str, now: dt.datetime | None = None
) -> Principal:
    """The caller of a request with this `Authorization` header, or ARM's 401 as ArmError."""
    if header is None or not header.strip():
        raise errors.missing_authorization_header(authority)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.invalid_authorization_header(authority)
    claims = _claims(token.strip())
    if claims is None:
        raise errors.invalid_token(authority)
    allowed = allowed_audiences(audience)
    if claims.get("aud") not in allowed:
        raise errors.wrong_audience(claims.get("aud"), allowed, authority)
    now = now or dt.datetime.now(dt.UTC)
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise errors.invalid_token(authority)
    expiry = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expiry <= now:
        raise errors.expired_token(expiry, now, authority)
    object_id = claims.get("oid")
    if not isinstance(object_id, str) or not object_id:
        raise errors.invalid_token(authority)
    app_id = str(claims.get("appid") or claims.get("azp") or "")
    return Principal(object_id, app_id, str(claims.get("tid") or ""), claims)


