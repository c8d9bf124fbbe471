"""A minimal Microsoft Graph v1.0 on the fake ARM's HTTPS server, reading its Entra directory.

What aksrun's admin commands ask Graph (who `--principal` is) and nothing more:

- `GET /v1.0/users/{id | userPrincipalName}` -> the user (`id`, `userPrincipalName`,
  `displayName`, ...); service principals and groups are not users (404);
- `GET /v1.0/servicePrincipals/{id}`, `GET /v1.0/groups/{id}`;
- `GET /v1.0/directoryObjects/{id}` -> any of them, with `@odata.type`.

`$select` trims the answer as Graph does. Unknown objects get Graph's own 404 body
(`Request_ResourceNotFound`, "Resource '<x>' does not exist or one of its queried
reference-property objects are not present.", with `innerError` date and request ids); unknown
segments get `BadRequest` "Resource not found for the segment '<x>'.".

Tokens are checked as Graph checks them: audience `https://graph.microsoft.com` (or Graph's
app id 00000003-0000-0000-c000-000000000000), expiry; failures are 401
`InvalidAuthenticationToken`. A caller listed in `arm.graph_denied` (object or app id) gets
403 `Authorization_RequestDenied` ("Insufficient privileges to complete the operation."), as
an identity without User.Read.All / Directory.Read.All does.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..fake_entra import jwt_claims as _claims

if TYPE_CHECKING:
    from .server import FakeArm

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
COLLECTIONS = {"users": "User", "servicePrincipals": "ServicePrincipal", "groups": "Group"}


@dataclass
class GraphResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def is_graph_path(path: str) -> bool:
    return path.startswith(("/v1.0/", "/beta/"))


def handle(
    arm: FakeArm, method: str, path: str, query: dict[str, str], authorization: str | None,
    request_id: str,
) -> GraphResponse:
    """Answer one Graph request (GET only, as the fake serves reads)."""
    caller = _authenticate(authorization, arm.graph_audience, request_id)
    if isinstance(caller, GraphResponse):
        return caller
    denied = {d.lower() for d in arm.graph_denied}
    if {str(caller.get("oid", "")).lower(), str(caller.get("appid", "")).lower()} & denied:
        return _error(403, "Authorization_RequestDenied",
                      "Insufficient privileges to complete the operation.", request_id)
    segments = [unquote(s) for s in path.strip("/").split("/")]
    version, rest = segments[0], segments[1:]
    if method != "GET":
        return _error(405, "Request_BadRequest",
                      "Specified HTTP method is not allowed for the request uri.", request_id)
    if len(rest) != 2 or not rest[1]:
        segment = rest[0] if rest else version
        return _error(400, "BadRequest", f"Resource not found for the segment '{segment}'.",
                      request_id)
    collection, key = rest
    if collection == "directoryObjects":
        found = arm.directory.get(key)
    elif collection in COLLECTIONS:
        found = arm.directory.find(key) if collection == "users" else arm.directory.get(key)
        if found is not None and found.kind != COLLECTIONS[collection]:
            found = None
    else:
        return _error(400, "BadRequest", f"Resource not found for the segment '{collection}'.",
                      request_id)
    if found is None:
        return _error(404, "Request_ResourceNotFound",
                      f"Resource '{key}' does not exist or one of its queried reference-property "
                      "objects are not present.", request_id)
    body = found.graph()
    if collection == "directoryObjects":
        body = {"@odata.type": _odata_type(found.kind), **body}
    selected = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
    if selected:
        body = {k: v for k, v in body.items() if k in selected or k == "@odata.type"}
    entity = f"{collection}/$entity"
    return GraphResponse(200, {
        "@odata.context": f"https://graph.microsoft.com/{version}/$metadata#{entity}", **body,
    }, _headers(request_id))


def _odata_type(kind: str) -> str:
    from .directory import ODATA_TYPES

    return ODATA_TYPES[kind]


def _authenticate(
    header: str | None, audience: str, request_id: str
) -> dict[str, Any] | GraphResponse:
    if not header or not header.strip():
        return _error(401, "InvalidAuthenticationToken", "Access token is empty.", request_id)
    scheme, _, token = header.strip().partition(" ")
    claims = _claims(token.strip()) if scheme.lower() == "bearer" else None
    if claims is None:
        return _error(401, "InvalidAuthenticationToken",
                      "IDX14100: JWT is not well formed, there are no dots (.).", request_id)
    allowed = {audience.rstrip("/"), audience.rstrip("/") + "/", GRAPH_APP_ID}
    if claims.get("aud") not in allowed:
        return _error(401, "InvalidAuthenticationToken",
                      "Access token validation failure. Invalid audience.", request_id)
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time():
        return _error(401, "InvalidAuthenticationToken",
                      "Lifetime validation failed, the token is expired.", request_id)
    return claims




def _error(status: int, code: str, message: str, request_id: str) -> GraphResponse:
    return GraphResponse(status, {"error": {
        "code": code, "message": message,
        "innerError": {
            "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S}",
            "request-id": request_id, "client-request-id": request_id,
        },
    }}, _headers(request_id))


def _headers(request_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json;odata.metadata=minimal;odata.streaming=true;"
        "IEEE754Compatible=false;charset=utf-8",
        "request-id": request_id,
        "client-request-id": request_id,
        "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {
            "DataCenter": "Fake", "Slice": "E", "Ring": "1", "ScaleUnit": "000",
            "RoleInstance": f"FAKE{uuid.uuid4().hex[:8].upper()}",
        }}),
    }
