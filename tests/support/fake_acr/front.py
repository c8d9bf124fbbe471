"""A strict stand-in for Azure Container Registry's data plane, over a real OCI registry.

`FakeAcrFront` serves HTTPS on 127.0.0.1 and answers the way ACR does for what the official
`azure-containerregistry` client and OCI clients send:

- ACR's token flow: a request without a fitting token gets `401` with
  `WWW-Authenticate: Bearer realm="https://<server>/oauth2/token",service="<server>",
  scope="<scope>"` (plus `error="insufficient_scope"` when a token was sent but does not
  cover the request); `POST /oauth2/exchange` turns an Entra access token (checked: audience,
  expiry, tenant, issuer; signature not, the fakes are unsigned) into an ACR refresh token;
  `POST /oauth2/token` (or `GET` with Basic auth, as docker/containerd do) turns that into an
  access token cut down to what the caller's roles allow for the requested scope, `401` if
  nothing. Anonymous pull is off, as on a new ACR.
- ACR's own API, `/acr/v1/...`: catalog, repository, tag and manifest properties, paging by
  `n`/`last` with `Link` headers, `orderby`, tag and repository deletion, changeable
  attributes (stored and reported, not enforced).
- `/v2/...` (OCI distribution API) proxied to the backend after auth, streaming, keeping
  status, `Docker-Content-Digest`, `Content-Type`, `Range`; `Location` is made relative to
  the front, as ACR sends it (the SDK's upload code needs that).

Shapes follow ACR's REST responses as recorded by the Azure SDK for JS test recordings
(`sdk/containerregistry/container-registry/recordings`) and ACR's `docs/AAD-OAuth.md`.
`requests` lists every request the front answered, so tests can count registry round trips.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..https_server import start_https
from .store import DIGEST_RE, REPOSITORY_RE, TAG_RE, RegistryView, Unsupported
from .tokens import (
    ACR_AUDIENCE,
    ARM_AUDIENCES,
    ISSUER,
    ROLE_ACTIONS,
    Scope,
    TokenSigner,
    covers,
    decode_jwt,
    entra_problem,
    grant_access,
    parse_scopes,
    principal_ids,
)

HOST = "127.0.0.1"
DEFAULT_TENANT = "00000000-0000-0000-0000-0000000000aa"  # FakeEntra's default tenant
NULL_GUID = "00000000-0000-0000-0000-000000000000"  # the user name that means "ACR token"
AUTH_MESSAGE = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)
DEFAULT_PAGE = 100
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
})
V2_ROUTE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)$")
JSON_TYPE = "application/json; charset=utf-8"


class RequestRecord(NamedTuple):
    """One request the front answered: method, decoded path (no query), status."""

    method: str
    path: str
    status: int


class _Reply(Exception):
    """Raised by handlers to answer with an ACR error body."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.detail, self.headers = detail, headers or {}


def _acr_time(ts: float) -> str:
    """ACR's timestamp format: seven fractional digits and a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _attributes(stored: dict | None) -> dict[str, bool]:
    base = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True,
            "listEnabled": True}
    return {**base, **(stored or {})}


class FakeAcrFront:
    """ACR's data plane in front of a distribution registry; `start()` or use as a context."""

    def __init__(
        self,
        backend_url: str,
        cert_file: str | Path,
        key_file: str | Path,
        tenant_id: str = DEFAULT_TENANT,
        audience: str = ACR_AUDIENCE,
        *,
        backend_root: str | Path | None = None,
        backend_ca: str | Path | None = None,
        arm_audience_tokens: bool = False,
        refresh_token_lifetime: int = 3 * 3600,
        access_token_lifetime: int = 3 * 3600,
    ) -> None:
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.tenant_id = tenant_id
        self.audience = audience.rstrip("/")
        self.accepted_audiences = {self.audience}
        if arm_audience_tokens:
            self.accepted_audiences |= set(ARM_AUDIENCES)
        self.refresh_token_lifetime = refresh_token_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.view = RegistryView(backend_url, backend_root, backend_ca)
        self._signer = TokenSigner(secrets.token_bytes(32))
        self._grants: dict[str, set[str]] = {}
        # Role assignments made elsewhere (a fake ARM's, on this registry's scope): principal
        # ids -> role names; ACR reads Azure RBAC at each token exchange.
        self.role_source: Callable[[list[str]], set[str]] | None = None
        self._attrs: dict[tuple, dict] = {}
        self._requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- public API ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeAcrFront is not started")
        return self._server.server_address[1]

    @property
    def login_server(self) -> str:
        """What ACR calls the login server (and the token `service`): host:port here."""
        return f"{HOST}:{self.port}"

    @property
    def endpoint(self) -> str:
        """What `ContainerRegistryClient` takes (it must be https: the SDK refuses bearer
        tokens over plain http)."""
        return f"https://{self.login_server}"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first, for tests that count round trips.

        Each is recorded as its status line is written, before the client can read it, so
        a test may look right after a call returns. A copy: later requests don't change it.
        """
        with self._lock:
            return list(self._requests)

    def count(
        self, method: str | None = None, path: str | None = None, status: int | None = None,
        *, prefix: str | None = None,
    ) -> int:
        """Round trips matching every filter given (exact `path`, or `prefix`), so a test
        can say "one manifest read, no token exchange" without scanning `requests`."""
        return sum(
            1 for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
            and (status is None or r.status == status)
            and (prefix is None or r.path.startswith(prefix))
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def grant(self, principal: str, role: str) -> None:
        """Give a principal a built-in role on this registry, as a role assignment would.

        ACR decides every token by the caller's roles; name the principal by the object id
        (`oid`) or the application id (`appid`/`azp`) its Entra tokens carry.
        """
        if role not in ROLE_ACTIONS:
            raise ValueError(f"unknown role {role!r}; one of {sorted(ROLE_ACTIONS)}")
        with self._lock:
            self._grants.setdefault(principal, set()).add(role)

    def revoke(self, principal: str, role: str | None = None) -> None:
        """Remove one role (or all) from a principal; takes effect at the next token."""
        with self._lock:
            if role is None:
                self._grants.pop(principal, None)
            else:
                self._grants.get(principal, set()).discard(role)

    def _roles_of(self, ids: list[str]) -> set[str]:
        with self._lock:
            granted = set().union(*(self._grants.get(i, set()) for i in ids))
        source = self.role_source
        return granted | (source(ids) if source is not None else set())

    def start(self) -> FakeAcrFront:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fake-acr"
            timeout = 120

            def handle(self) -> None:
                try:
                    self.request.do_handshake()
                except (ssl.SSLError, OSError):
                    return
                with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                    super().handle()

            def _serve(self) -> None:
                front._serve(self)

            def send_response(self, code: int, message: str | None = None) -> None:
                # recorded before the client can see the answer, so a test that counts
                # right after a call never races the server thread
                front._record(self.command, urlsplit(self.path).path, code)
                super().send_response(code, message)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server, self._thread = start_https(Handler, self.cert_file, self.key_file,
                                                 "fake-acr", lazy_handshake=True)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAcrFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -----------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        raw_path, method = split.path, h.command
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            if raw_path.startswith("/v2/") and raw_path != "/v2/":
                self._v2(h, method, raw_path, split.query)
            else:
                body = _read_body(h)
                if raw_path.startswith("/oauth2/"):
                    self._oauth(h, method, raw_path, query, body)
                elif raw_path in ("/v2/", "/v2"):
                    self._authorize(h, None)
                    self._send(h, 200, {})
                elif raw_path.startswith("/acr/v1/"):
                    self._acr(h, method, raw_path[len("/acr/v1/"):], query, body)
                else:
                    raise _Reply(404, "NOT_FOUND", f"no such endpoint {raw_path}")
        except _Reply as reply:
            error: dict[str, Any] = {"code": reply.code, "message": reply.message}
            if reply.detail is not None:
                error["detail"] = reply.detail
            self._send(h, reply.status, {"errors": [error]}, reply.headers)
        except Exception as exc:  # a bug in the fake: answer 500 and say what it was
            h.close_connection = True  # a half-sent answer must not poison a kept-alive socket
            with contextlib.suppress(Exception):
                self._send(h, 500, {"errors": [{"code": "UNKNOWN", "message": repr(exc)}]})

    def _record(self, method: str, raw_path: str, status: int) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, unquote(raw_path), status))

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any = None,
              headers: dict[str, str] | None = None) -> int:
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        if body is not None:
            h.send_header("Content-Type", JSON_TYPE)
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        return status

    # -- auth ---------------------------------------------------------------------------

    def _challenge(self, needed: Scope | None, insufficient: bool = False) -> _Reply:
        value = f'Bearer realm="{self.endpoint}/oauth2/token",service="{self.login_server}"'
        detail = None
        if needed is not None:
            value += f',scope="{needed}"'
            detail = [{"Type": needed.type, "Name": needed.name, "Action": a}
                      for a in sorted(needed.actions)]
        if insufficient:
            value += ',error="insufficient_scope"'
        return _Reply(401, "UNAUTHORIZED", AUTH_MESSAGE, detail, {"WWW-Authenticate": value})

    def _authorize(self, h: BaseHTTPRequestHandler, needed: Scope | None) -> dict:
        """The access token's claims if it covers `needed`; else raise the challenge."""
        scheme, _, token = (h.headers.get("Authorization") or "").partition(" ")
        claims = None
        if scheme.lower() == "bearer" and token:
            claims = self._signer.verify(
                token.strip(), audience=self.login_server, grant_type="access_token"
            )
        if claims is not None and (needed is None or covers(claims.get("access"), needed)):
            return claims
        raise self._challenge(needed, insufficient=claims is not None)

    def _oauth(self, h: BaseHTTPRequestHandler, method: str, path: str,
               query: dict[str, list[str]], body: bytes) -> int:
        if path not in ("/oauth2/exchange", "/oauth2/token"):
            raise _Reply(404, "NOT_FOUND", f"no such endpoint {path}")
        if path == "/oauth2/exchange" and method != "POST":
            raise _Reply(404, "NOT_FOUND", "/oauth2/exchange only answers POST")  # as ACR does
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if method == "POST" and path == "/oauth2/exchange":
            return self._send(h, 200, {"refresh_token": self._exchange(form)})
        if method == "POST":
            return self._send(h, 200, {"access_token": self._token(form)})
        if method == "GET":  # docker/containerd: Basic auth with the refresh token
            return self._send(h, 200, {"access_token": self._token_basic(h, query)})
        raise _Reply(405, "UNSUPPORTED", "The operation is unsupported.")

    def _exchange(self, form: dict[str, list[str]]) -> str:
        def field(name: str) -> str:
            return (form.get(name) or [""])[0]

        if field("grant_type") != "access_token":
            raise _Reply(400, "UNSUPPORTED",
                         f"grant_type {field('grant_type')!r} is not supported; use access_token")
        if field("service") != self.login_server:
            raise _Reply(401, "UNAUTHORIZED", f"service {field('service')!r} is not this registry")
        decoded = decode_jwt(field("access_token"))
        if decoded is None:
            raise _Reply(401, "UNAUTHORIZED", "access_token is not a JWT")
        claims = decoded[1]
        problem = entra_problem(
            claims, audiences=self.accepted_audiences, tenant_id=self.tenant_id,
            tenant_field=field("tenant"), now=time.time(),
        )
        if problem is not None:
            raise _Reply(401, "UNAUTHORIZED", f"invalid AAD access token: {problem}")
        ids = principal_ids(claims)
        roles = self._roles_of(ids)
        now = int(time.time())
        return self._signer.issue({
            "sub": ids[0], "principals": ids, "nbf": now, "iat": now,
            "exp": now + self.refresh_token_lifetime, "iss": ISSUER, "aud": self.login_server,
            "version": "1.0", "grant_type": "refresh_token", "tenant": self.tenant_id,
            "permissions": {"actions": sorted(roles), "notActions": []}, "roles": [],
        })

    def _token(self, form: dict[str, list[str]]) -> str:
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != "refresh_token":
            raise _Reply(400, "UNSUPPORTED",
                         f"grant_type {grant_type!r} is not supported; use refresh_token")
        return self._access_token(
            (form.get("service") or [""])[0], form.get("scope") or [],
            (form.get("refresh_token") or [""])[0],
        )

    def _token_basic(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> str:
        scheme, _, encoded = (h.headers.get("Authorization") or "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError, binascii.Error):
                user, _, password = base64.b64decode(encoded).decode().partition(":")
        if user != NULL_GUID or not password:
            # no credentials is an anonymous token request: anonymous pull is off
            raise _Reply(401, "UNAUTHORIZED", AUTH_MESSAGE)
        return self._access_token(
            (query.get("service") or [""])[0], query.get("scope") or [], password
        )

    def _access_token(self, service: str, scope_fields: list[str], refresh_token: str) -> str:
        if service != self.login_server:
            raise _Reply(401, "UNAUTHORIZED", f"service {service!r} is not this registry")
        claims = self._signer.verify(
            refresh_token, audience=self.login_server, grant_type="refresh_token"
        )
        if claims is None:
            raise _Reply(401, "UNAUTHORIZED", AUTH_MESSAGE)
        scopes = parse_scopes(scope_fields)
        access = grant_access(scopes, self._roles_of(list(claims.get("principals") or [])))
        if scopes and not access:  # ACR: 401 when none of the requested scope is allowed
            raise _Reply(401, "UNAUTHORIZED", AUTH_MESSAGE)
        now = int(time.time())
        return self._signer.issue({
            "sub": claims.get("sub"), "nbf": now, "iat": now,
            "exp": now + self.access_token_lifetime, "iss": ISSUER, "aud": self.login_server,
            "version": "1.0", "access": access, "roles": [], "grant_type": "access_token",
            "tenant": self.tenant_id,
        })

    # -- /v2/: proxied to distribution ---------------------------------------------------

    def _v2(self, h: BaseHTTPRequestHandler, method: str, raw_path: str, raw_query: str) -> int:
        path = unquote(raw_path)
        if path.rstrip("/") == "/v2/_catalog":
            needed = Scope("registry", "catalog", ("*",))
            repo = None
        else:
            match = V2_ROUTE.match(path)
            if match is None:
                _read_body(h)
                raise _Reply(404, "NAME_UNKNOWN", "repository name not known to registry")
            repo, kind, rest = match["name"], match["kind"], match["rest"]
            if not REPOSITORY_RE.match(repo):
                _read_body(h)
                raise _Reply(400, "NAME_INVALID", "invalid repository name", {"name": repo})
            if kind == "blobs" and rest.startswith("uploads"):
                actions: tuple[str, ...] = ("push", "pull")
            elif method in ("GET", "HEAD"):
                actions = ("pull",)
            elif method == "DELETE":
                actions = ("delete",)
            else:
                actions = ("push", "pull")
            needed = Scope("repository", repo, actions)
        try:
            self._authorize(h, needed)
        except _Reply:
            _read_body(h)
            raise
        target = quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{raw_query}" if raw_query else "")
        status, digest = self._proxy(h, method, target)
        if repo is not None and method == "PUT" and status == 201 and digest:
            match = V2_ROUTE.match(path)
            if match and match["kind"] == "manifests":
                self.view.note_pushed(repo, match["rest"], digest)
        return status

    def _proxy(self, h: BaseHTTPRequestHandler, method: str, target: str) -> tuple[int, str]:
        """Forward one request to distribution and stream the answer back."""
        connection = self.view.connect(timeout=120)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", self.view.netloc)
            for name, value in h.headers.items():
                if name.lower() not in HOP_BY_HOP | {"host", "authorization", "content-length"}:
                    connection.putheader(name, value)
            chunked = "chunked" in (h.headers.get("Transfer-Encoding") or "").lower()
            length = h.headers.get("Content-Length")
            if chunked:
                connection.putheader("Transfer-Encoding", "chunked")
            elif length is not None or method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", length or "0")
            connection.endheaders()
            if chunked:
                for chunk in _iter_chunked(h.rfile):
                    connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                connection.send(b"0\r\n\r\n")
            elif length:
                for chunk in _iter_exact(h.rfile, int(length)):
                    connection.send(chunk)
            response = connection.getresponse()
            h.send_response(response.status)
            has_length = False
            for name, value in response.getheaders():
                lower = name.lower()
                if lower in HOP_BY_HOP:
                    continue
                if lower == "location":
                    value = self._relative_location(value)
                has_length |= lower == "content-length"
                h.send_header(name, value)
            bodiless = method == "HEAD" or response.status in (204, 304)
            if not bodiless and not has_length:
                h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            if not bodiless:
                while chunk := response.read(65536):
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if not has_length
                                  else chunk)
                if not has_length:
                    h.wfile.write(b"0\r\n\r\n")
            return response.status, response.getheader("Docker-Content-Digest") or ""
        finally:
            connection.close()

    def _relative_location(self, value: str) -> str:
        """Backend URLs become front-relative paths, as ACR's `Location`s are."""
        parts = urlsplit(value)
        if parts.netloc and parts.netloc != self.view.netloc:
            return value  # somewhere else (ACR redirects blob reads to storage): leave it
        return parts.path + (f"?{parts.query}" if parts.query else "")

    # -- /acr/v1/: ACR's own API ----------------------------------------------------------

    def _acr(self, h: BaseHTTPRequestHandler, method: str, rest: str,
             query: dict[str, list[str]], body: bytes) -> int:
        rest = rest.rstrip("/")
        if rest == "_catalog":
            self._only(method, "GET")
            self._authorize(h, Scope("registry", "catalog", ("*",)))
            return self._catalog(h, query)
        sub: str | None = None
        for marker in ("/_tags/", "/_manifests/"):
            if marker in rest:
                rest, sub = rest.rsplit(marker, 1)
                kind = marker.strip("/")
                break
        else:
            kind = "repository"
            for marker in ("/_tags", "/_manifests"):
                if rest.endswith(marker):
                    rest, kind = rest[: -len(marker)], marker.strip("/") + "_list"
        repo = unquote(rest)
        if not REPOSITORY_RE.match(repo):
            raise _Reply(400, "NAME_INVALID", "invalid repository name", {"name": repo})
        allowed = {"repository": ("GET", "PATCH", "DELETE"), "_tags": ("GET", "PATCH", "DELETE"),
                   "_manifests": ("GET", "PATCH"), "_tags_list": ("GET",),
                   "_manifests_list": ("GET",)}[kind]
        self._only(method, *allowed)
        action = {"GET": "metadata_read", "PATCH": "metadata_write", "DELETE": "delete"}[method]
        self._authorize(h, Scope("repository", repo, (action,)))
        ref = unquote(sub) if sub is not None else None
        handler: Callable[..., int] = {
            "repository": self._repository, "_tags": self._tag, "_manifests": self._manifest,
            "_tags_list": self._tag_list, "_manifests_list": self._manifest_list,
        }[kind]
        return handler(h, method, repo, ref, query, body)

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _Reply(405, "UNSUPPORTED", "The operation is unsupported.")

    def _require_repo(self, repo: str) -> dict[str, str]:
        tags = self.view.tags(repo)
        if tags is None:
            raise _Reply(404, "NAME_UNKNOWN", "repository name not known to registry",
                         {"name": repo})
        return tags

    def _catalog(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> int:
        names = [n for n in self.view.catalog() if self.view.tags(n) is not None]
        page, next_last, n = _page(names, lambda x: x, query, by_key=True)
        headers = {}
        if next_last is not None:
            headers["Link"] = _link("/acr/v1/_catalog", next_last, n, query)
        return self._send(h, 200, {"repositories": page}, headers)

    def _tag_body(self, repo: str, tag: str, digest: str) -> dict:
        created, updated = self.view.tag_times(repo, tag, digest)
        return {
            "name": tag, "digest": digest, "createdTime": _acr_time(created),
            "lastUpdateTime": _acr_time(updated), "signed": False,
            "changeableAttributes": _attributes(self._attrs.get((repo, "tag", tag))),
        }

    def _manifest_body(self, repo: str, digest: str, tags: dict[str, str]) -> dict:
        info = self.view.info(repo, digest)
        if info is None:
            raise _Reply(404, "MANIFEST_UNKNOWN", "manifest unknown", {"digest": digest})
        created, updated = self.view.manifest_times(repo, digest)
        body: dict[str, Any] = {
            "digest": digest, "imageSize": info.image_size, "createdTime": _acr_time(created),
            "lastUpdateTime": _acr_time(updated),
        }
        if info.architecture:
            body["architecture"] = info.architecture
        if info.os:
            body["os"] = info.os
        body["mediaType"] = info.media_type
        if info.config_media_type:
            body["configMediaType"] = info.config_media_type
        names = sorted(t for t, d in tags.items() if d == digest)
        if names:  # ACR drops the array from untagged manifests
            body["tags"] = names
        body["changeableAttributes"] = _attributes(self._attrs.get((repo, "manifest", digest)))
        if info.references:
            body["references"] = info.references
        return body

    def _tag_list(self, h: BaseHTTPRequestHandler, method: str, repo: str, _ref: str | None,
                  query: dict[str, list[str]], _body: bytes) -> int:
        tags = self._require_repo(repo)
        items = [self._tag_body(repo, t, d) for t, d in tags.items()]
        wanted = (query.get("digest") or [""])[0]
        if wanted:
            items = [i for i in items if i["digest"] == wanted]
        page, next_last, n = _page(items, lambda i: i["name"], query, by_key=False)
        headers = {}
        if next_last is not None:
            headers["Link"] = _link(f"/acr/v1/{quote(repo, safe='')}/_tags", next_last, n, query)
        return self._send(h, 200, {"registry": self.login_server, "imageName": repo,
                                   "tags": page}, headers)

    def _manifest_list(self, h: BaseHTTPRequestHandler, method: str, repo: str,
                       _ref: str | None, query: dict[str, list[str]], _body: bytes) -> int:
        tags = self._require_repo(repo)
        items = [self._manifest_body(repo, d, tags) for d in self.view.manifest_digests(repo)]
        page, next_last, n = _page(items, lambda i: i["digest"], query, by_key=False)
        headers = {}
        if next_last is not None:
            headers["Link"] = _link(
                f"/acr/v1/{quote(repo, safe='')}/_manifests", next_last, n, query
            )
        return self._send(h, 200, {"registry": self.login_server, "imageName": repo,
                                   "manifests": page}, headers)

    def _tag(self, h: BaseHTTPRequestHandler, method: str, repo: str, tag: str | None,
             _query: dict[str, list[str]], body: bytes) -> int:
        tags = self._require_repo(repo)
        if tag is None or not TAG_RE.match(tag) or tag not in tags:
            raise _Reply(404, "TAG_UNKNOWN", "the specified tag does not exist")
        if method == "DELETE":
            try:
                deleted = self.view.delete_tag(repo, tag)
            except Unsupported as exc:
                raise _Reply(405, "UNSUPPORTED", str(exc))
            if not deleted:
                raise _Reply(404, "TAG_UNKNOWN", "the specified tag does not exist")
            return self._send(h, 202, None, {"X-Ms-Int-Docker-Content-Digest": tags[tag]})
        if method == "PATCH":
            self._patch((repo, "tag", tag), body)
        return self._send(h, 200, {"registry": self.login_server, "imageName": repo,
                                   "tag": self._tag_body(repo, tag, tags[tag])})

    def _manifest(self, h: BaseHTTPRequestHandler, method: str, repo: str, digest: str | None,
                  _query: dict[str, list[str]], body: bytes) -> int:
        tags = self._require_repo(repo)
        if digest is None or not DIGEST_RE.match(digest):
            raise _Reply(400, "DIGEST_INVALID", "invalid digest", {"digest": digest})
        if not self.view.has_manifest(repo, digest):
            raise _Reply(404, "MANIFEST_UNKNOWN", "manifest unknown", {"digest": digest})
        if method == "PATCH":
            self._patch((repo, "manifest", digest), body)
        return self._send(h, 200, {"registry": self.login_server, "imageName": repo,
                                   "manifest": self._manifest_body(repo, digest, tags)})

    def _repository(self, h: BaseHTTPRequestHandler, method: str, repo: str, _ref: str | None,
                    _query: dict[str, list[str]], body: bytes) -> int:
        tags = self._require_repo(repo)
        digests = self.view.manifest_digests(repo)
        if method == "DELETE":
            deleted = [d for d in digests if self.view.delete_manifest(repo, d) == 202]
            return self._send(h, 202, {"manifestsDeleted": deleted, "tagsDeleted": sorted(tags)})
        if method == "PATCH":
            self._patch((repo,), body)
        times = [self.view.manifest_times(repo, d) for d in digests] or [(time.time(),) * 2]
        attributes = _attributes(self._attrs.get((repo,)))
        attributes.setdefault("teleportEnabled", False)
        return self._send(h, 200, {
            "registry": self.login_server, "imageName": repo,
            "createdTime": _acr_time(min(t[0] for t in times)),
            "lastUpdateTime": _acr_time(max(t[1] for t in times)),
            "manifestCount": len(digests), "tagCount": len(tags),
            "changeableAttributes": attributes,
        })

    def _patch(self, key: tuple, body: bytes) -> None:
        try:
            update = json.loads(body or b"{}")
        except ValueError:
            raise _Reply(400, "BAD_REQUEST", "the body is not JSON")
        known = {"deleteEnabled", "writeEnabled", "readEnabled", "listEnabled"}
        if not isinstance(update, dict) or not set(update) <= known or not all(
            isinstance(v, bool) for v in update.values()
        ):
            raise _Reply(400, "BAD_REQUEST", f"only boolean {sorted(known)} can be changed")
        with self._lock:
            self._attrs.setdefault(key, {}).update(update)


def _page(items: list, key: Callable[[Any], str], query: dict[str, list[str]],
          *, by_key: bool) -> tuple[list, str | None, int]:
    """One page of `items` after `last`, at most `n`, ordered as `orderby` asks."""
    def arg(name: str) -> str:
        return (query.get(name) or [""])[0]

    try:
        n = int(arg("n")) if arg("n") else DEFAULT_PAGE
    except ValueError:
        raise _Reply(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
    if n <= 0:
        raise _Reply(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
    orderby = arg("orderby").lower()
    if orderby in ("timedesc", "timeasc"):
        ordered = sorted(items, key=lambda i: (i["lastUpdateTime"], key(i)),
                         reverse=orderby == "timedesc")
    elif orderby in ("", "none"):
        ordered = sorted(items, key=key)
    else:
        raise _Reply(400, "BAD_REQUEST", f"unknown orderby {orderby!r}")
    last = arg("last")
    if last:
        keys = [key(i) for i in ordered]
        if by_key or orderby in ("", "none"):
            ordered = [i for i in ordered if key(i) > last]
        else:
            ordered = ordered[keys.index(last) + 1:] if last in keys else []
    page = ordered[:n]
    next_last = key(page[-1]) if len(ordered) > n else None
    return page, next_last, n


def _link(path: str, last: str, n: int, query: dict[str, list[str]]) -> str:
    orderby = (query.get("orderby") or [""])[0]
    return f'<{path}?last={quote(last, safe="")}&n={n}&orderby={quote(orderby)}>; rel="next"'


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    """The whole request body (also to keep the connection usable when we refuse it)."""
    if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
        return b"".join(_iter_chunked(h.rfile))
    length = int(h.headers.get("Content-Length") or 0)
    return b"".join(_iter_exact(h.rfile, length))


def _iter_exact(stream: Any, length: int) -> Iterator[bytes]:
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        length -= len(chunk)
        yield chunk


def _iter_chunked(stream: Any) -> Iterator[bytes]:
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        yield from _iter_exact(stream, size)
        stream.readline()
