"""A fake Microsoft Entra ID token endpoint on 127.0.0.1, for `DefaultAzureCredential` offline.

With `AZURE_AUTHORITY_HOST=https://127.0.0.1:<port>`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`
and `AZURE_FEDERATED_TOKEN_FILE` set (and no client secret), `DefaultAzureCredential` takes
the workload-identity path exactly as in an AKS pod: it posts the federated token as a client
assertion to `/<tenant>/oauth2/v2.0/token`. We answer with an unsigned but well-formed JWT
that Azurite's `--oauth basic` mode accepts (it checks `iat`/`nbf`/`exp`, `iss`, `aud`, not
the signature). Requests are counted so a test can prove that path was taken.

Opt-in federation (`entra.federation = arm`, anything with `federation(client_id)` such as the
fake ARM): for the client id of a user-assigned identity the fake ARM knows, the assertion
must be a JWT (a real Kubernetes service-account token; the signature is not checked) whose
`iss`, `sub` and one `aud` match a federated identity credential of that identity, written
at least `arm.federation_delay` seconds ago; otherwise Entra's 400 AADSTS70021 ("No matching
federated identity record found for presented assertion. ..."), as while a new credential
propagates. The token then names the identity (`appid` its client id, `oid` its principal
id). Other client ids keep the behaviour above.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .https_server import start_https

HOST = "127.0.0.1"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
STORAGE_AUDIENCE = "https://storage.azure.com"


@dataclass(frozen=True)
class TokenRequest:
    """One request the endpoint answered: who asked, for what, and whether it was accepted."""

    tenant: str
    client_id: str
    scope: str
    grant_type: str
    assertion: str
    accepted: bool


def make_jwt(
    tenant: str, client_id: str, audience: str, lifetime: int = 3600,
    object_id: str | None = None,
) -> str:
    """An unsigned RS256-shaped JWT with the claims Azurite checks (and Entra would send)."""
    now = int(time.time())
    oid = object_id or str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))
    header = {"typ": "JWT", "alg": "RS256", "kid": "fake-entra"}
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "appid": client_id,
        "azp": client_id,
        "oid": oid,
        "sub": oid,
        "tid": tenant,
        "ver": "1.0",
    }
    return ".".join((_b64(header), _b64(claims), _b64url(b"not-signed")))


class FakeEntra:
    """The HTTPS token endpoint; `start()` it, read `authority_host` and `token_requests`."""

    def __init__(
        self,
        cert_file: str | Path,
        key_file: str | Path,
        tenant_id: str = "00000000-0000-0000-0000-0000000000aa",
        client_id: str = "00000000-0000-0000-0000-0000000000bb",
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.expected_assertion: str | None = None  # check the federated token when set
        self.rejected_clients: set[str] = set()  # answer these with invalid_client
        self.federation: Any = None  # e.g. a FakeArm: check managed identities' assertions
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeEntra is not started")
        return self._server.server_address[1]

    @property
    def authority_host(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def token_requests(self) -> int:
        """How many token requests were accepted (proof the workload-identity path ran)."""
        with self._lock:
            return sum(1 for r in self.requests if r.accepted)

    def workload_identity_env(
        self, token_file: str | Path, ca_bundle: str | Path
    ) -> dict[str, str]:
        """The variables an AKS pod with workload identity gets, pointed at this endpoint."""
        return {
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "REQUESTS_CA_BUNDLE": str(ca_bundle),
        }

    def start(self) -> FakeEntra:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                owner._answer_token(self, urlsplit(self.path).path, form)

            def do_GET(self) -> None:  # OpenID discovery, in case a client library asks
                path = urlsplit(self.path).path.strip("/").split("/")
                if len(path) >= 2 and path[-1] == "openid-configuration":
                    base = f"{owner.authority_host}/{path[0]}"
                    owner._send(self, 200, {
                        "issuer": f"https://sts.windows.net/{path[0]}/",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    })
                else:
                    owner._send(self, 404, {"error": "not_found"})

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server, self._thread = start_https(Handler, self.cert_file, self.key_file,
                                                 "fake-entra")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeEntra:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer_token(self, handler: BaseHTTPRequestHandler, path: str, form: dict) -> None:
        def field(name: str) -> str:
            return (form.get(name) or [""])[0]

        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            self._send(handler, 404, {"error": "not_found", "error_description": path})
            return
        tenant, client_id, scope = parts[0], field("client_id"), field("scope")
        federation = (
            self.federation.federation(client_id)
            if self.federation is not None and client_id else None
        )
        if federation is not None:
            self._answer_federated(handler, tenant, client_id, scope, field, federation)
            return
        problem = None
        if field("grant_type") != "client_credentials":
            problem = "unsupported_grant_type", f"grant_type {field('grant_type')!r}"
        elif field("client_assertion_type") != ASSERTION_TYPE or not field("client_assertion"):
            problem = "invalid_request", "no federated client assertion"
        elif self.expected_assertion is not None and (
            field("client_assertion").strip() != self.expected_assertion.strip()
        ):
            problem = "invalid_client", "AADSTS700211: the federated token does not match"
        elif client_id in self.rejected_clients:
            problem = "invalid_client", f"AADSTS700016: application {client_id} not found"
        with self._lock:
            self.requests.append(TokenRequest(
                tenant, client_id, scope, field("grant_type"), field("client_assertion"),
                problem is None,
            ))
        if problem is not None:
            self._send(handler, 401 if problem[0] == "invalid_client" else 400, {
                "error": problem[0], "error_description": problem[1],
            })
            return
        audience = scope.removesuffix("/.default") or STORAGE_AUDIENCE
        self._send(handler, 200, {
            "token_type": "Bearer",
            "expires_in": 3600,
            "ext_expires_in": 3600,
            "access_token": make_jwt(tenant, client_id, audience),
        })

    def _answer_federated(
        self, handler: BaseHTTPRequestHandler, tenant: str, client_id: str, scope: str,
        field: Any, federation: Any,
    ) -> None:
        """Workload identity's exchange for a managed identity the fake ARM knows."""
        assertion = field("client_assertion").strip()
        claims = jwt_claims(assertion)
        problem = None
        if field("grant_type") != "client_credentials":
            problem = "unsupported_grant_type", f"grant_type {field('grant_type')!r}"
        elif field("client_assertion_type") != ASSERTION_TYPE or claims is None:
            problem = ("invalid_request", "AADSTS50027: JWT token is invalid or malformed.")
        elif float(claims.get("exp") or 0) <= time.time():
            problem = ("invalid_client", "AADSTS700024: Client assertion is not within its "
                       "valid time range.")
        else:
            audiences = claims.get("aud")
            audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
            verdict = federation.accepts(str(claims.get("iss")), str(claims.get("sub")),
                                         audiences, time.time())
            if verdict != "ok":
                problem = ("invalid_request", (
                    "AADSTS70021: No matching federated identity record found for presented "
                    f"assertion. Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: "
                    f"'{claims.get('sub')}'. Assertion Audience: '{','.join(audiences)}'. "
                    "https://docs.microsoft.com/en-us/azure/active-directory/develop/"
                    f"workload-identity-federation\r\nTrace ID: {uuid.uuid4()}\r\n"
                    f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: "
                    f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}"))
        with self._lock:
            self.requests.append(TokenRequest(
                tenant, client_id, scope, field("grant_type"), assertion, problem is None,
            ))
        if problem is not None:
            status = 401 if problem[0] == "invalid_client" else 400
            body: dict[str, Any] = {"error": problem[0], "error_description": problem[1]}
            if problem[1].startswith("AADSTS"):
                body["error_codes"] = [int(problem[1][6:].split(":")[0])]
            self._send(handler, status, body)
            return
        audience = scope.removesuffix("/.default") or STORAGE_AUDIENCE
        self._send(handler, 200, {
            "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
            "access_token": make_jwt(federation.tenant_id, client_id, audience,
                                     object_id=federation.object_id),
        })

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, unverified: the stand-ins trust each other's tokens (and a
    service-account token's signature is the cluster's). Shared by the fake ARM, Graph and
    the blob RBAC gate."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _b64(obj: dict) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
