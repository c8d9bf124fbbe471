"""The fake Azure Resource Manager: an HTTPS server on 127.0.0.1 that the real `azure-mgmt-*`
clients talk to through `base_url=`, with ARM's own front-door checks.

Every request goes through what ARM does before a resource provider sees it, in ARM's order:
api-version present, bearer token (audience, expiry), subscription, token tenant, namespace
and resource type, RBAC (the action derived from the URL, over the resource's scope), resource
group, api-version served by that resource type. Only then does a provider module's handler
run, one module per namespace: `container_registry.py`, `container_service.py` (AKS),
`managed_identity.py`, `authorization.py` (role assignments and definitions), `storage.py`.
Answers carry ARM's headers (`x-ms-request-id`, `x-ms-correlation-request-id`, ...) and errors
ARM's JSON shape. Long-running writes follow ARM's async contract (`operations.py`).

Next to ARM the same server answers a minimal Microsoft Graph (`/v1.0/...`, `graph.py`) from
the fake's Entra directory (`directory.py`), which role assignments are checked against.

State is plain Python, set up by the test: `add_subscription`, `add_resource_group`,
provider helpers (`add_registry`, `add_managed_cluster`, `add_storage_account`,
`add_identity`), directory objects (`add_principal`), and role assignments with `grant`
(default deny: nothing is allowed until granted; in force at once). `requests` records every
call for counting.

Azure's delays are modelled, each a plain attribute a test may change:
`replication_delay` (a new service principal is not yet visible to ARM's role-assignment
check: PrincipalNotFound unless `principalType` is given), `role_propagation_delay` (a role
assignment made through the API is honoured only after it: 403 meanwhile),
`federation_delay` (a new federated credential is accepted by Entra only after it, see
`federation()`), `operation_delay` (how long a long-running write stays in progress) and
`retry_after` (the Retry-After seconds of async answers; real Storage says 17, which the SDK
honours, so tests keep it small).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from ..https_server import start_https
from . import errors, graph
from .auth import authenticate
from .builds import Executor
from .directory import Directory, DirectoryObject
from .operations import Operations
from .rbac import Rbac, RoleAssignment, RoleDefinition
from .routing import ArmRequest, ArmResponse, Provider, Route

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from .container_registry import Registry
    from .container_service import ManagedCluster
    from .managed_identity import Federation, UserAssignedIdentity
    from .storage import StorageAccount

HOST = "127.0.0.1"
DEFAULT_AUDIENCE = "https://management.azure.com"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_GRAPH_AUDIENCE = "https://graph.microsoft.com"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class RequestRecord(NamedTuple):
    """One answered request, for tests that count calls."""

    method: str
    path: str
    api_version: str | None
    status: int


@dataclass
class ResourceGroup:
    subscription_id: str
    name: str
    location: str

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"


@dataclass
class Subscription:
    id: str
    tenant_id: str | None = None
    display_name: str = "fake subscription"
    resource_groups: dict[str, ResourceGroup] = field(default_factory=dict)  # lower name -> RG

    def resource_group(self, name: str) -> ResourceGroup | None:
        return self.resource_groups.get(name.lower())


class FakeArm:
    """ARM on `https://127.0.0.1:<port>`; `start()` it (or use it as a context manager)."""

    def __init__(
        self,
        cert_file: str | Path,
        key_file: str | Path,
        storage: Any = None,
        audience: str = DEFAULT_AUDIENCE,
        *,
        executor: Executor | None = None,
        authority: str = DEFAULT_AUTHORITY,
        providers: Iterable[type[Provider]] | None = None,
        queue_delay: float = 0.2,
        run_timeout_scale: float = 1.0,
        cancel_grace: float = 5.0,
        graph_audience: str = DEFAULT_GRAPH_AUDIENCE,
        replication_delay: float = 2.0,
        role_propagation_delay: float = 1.0,
        federation_delay: float = 1.0,
        operation_delay: float = 0.5,
        retry_after: int | None = 1,
        fic_write_seconds: float = 0.3,
        blob_endpoint: str | None = None,
    ) -> None:
        """`storage`: a `BlobServiceClient` with the account key (SAS URLs are signed with
        it), or anything with `.service_client()` such as the Azurite fixtures.
        `run_timeout_scale` shrinks ACR run timeouts (the service's minimum is 300 s) so a
        test can see one expire; the request is still validated against the real range.
        `blob_endpoint`: what storage accounts created through the API give as their blob
        endpoint (default: `storage`'s account URL). The delays: see the module's doc."""
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.audience = audience
        self.authority = authority
        self.graph_audience = graph_audience
        self.storage = _blob_service(storage)
        self.executor = executor
        self.queue_delay = queue_delay
        self.run_timeout_scale = run_timeout_scale
        self.cancel_grace = cancel_grace
        self.replication_delay = replication_delay
        self.role_propagation_delay = role_propagation_delay
        self.federation_delay = federation_delay
        self.operation_delay = operation_delay
        self.retry_after = retry_after
        self.fic_write_seconds = fic_write_seconds
        self.blob_endpoint = blob_endpoint or (
            self.storage.url.rstrip("/") if self.storage is not None else None
        )
        self.graph_denied: set[str] = set()  # object/app ids Graph refuses (403)
        self.rbac = Rbac()
        self.directory = Directory()
        self.operations = Operations()
        self.requests: list[RequestRecord] = []
        self.server_errors: list[str] = []  # tracebacks of handler crashes (answered 500)
        self._subscriptions: dict[str, Subscription] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if providers is None:
            from .authorization import Authorization
            from .container_registry import ContainerRegistry
            from .container_service import ContainerService
            from .managed_identity import ManagedIdentity
            from .storage import Storage

            providers = (ContainerRegistry, ContainerService, ManagedIdentity, Authorization,
                         Storage)
        self._providers: dict[str, Provider] = {}
        for provider_cls in providers:
            provider = provider_cls(self)
            self._providers[provider.namespace.lower()] = provider

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeArm is not started")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The `base_url` for management clients."""
        return f"https://{HOST}:{self.port}"

    @property
    def credential_scopes(self) -> list[str]:
        return [f"{self.audience.rstrip('/')}/.default"]

    def start(self) -> FakeArm:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        for provider in self._providers.values():
            provider.start()
        self._server, self._thread = start_https(Handler, self.cert_file, self.key_file,
                                                 "fake-arm")
        return self

    def stop(self) -> None:
        for provider in self._providers.values():
            with contextlib.suppress(Exception):
                provider.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeArm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- state --------------------------------------------------------------------------------

    def add_subscription(
        self, subscription_id: str, tenant_id: str | None = None,
        display_name: str = "fake subscription",
    ) -> Subscription:
        """A subscription; with `tenant_id`, tokens from other tenants get ARM's 401."""
        if not _GUID.match(subscription_id):
            raise ValueError(f"subscription ids are GUIDs in Azure: {subscription_id!r}")
        with self._lock:
            subscription = self._subscriptions.setdefault(
                subscription_id.lower(), Subscription(subscription_id, tenant_id, display_name)
            )
        return subscription

    def add_resource_group(
        self, subscription_id: str, name: str, location: str = "eastus"
    ) -> ResourceGroup:
        with self._lock:
            subscription = self.subscription(subscription_id)
            if subscription is None:
                raise KeyError(f"add_subscription({subscription_id!r}) first")
            group = subscription.resource_groups.setdefault(
                name.lower(), ResourceGroup(subscription.id, name, location)
            )
        return group

    def subscription(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(subscription_id.lower())

    def resource_group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        subscription = self.subscription(subscription_id)
        return subscription.resource_group(name) if subscription else None

    def provider(self, namespace: str) -> Provider:
        return self._providers[namespace.lower()]

    def add_registry(
        self, subscription_id: str, resource_group: str, name: str, **kwargs: Any
    ) -> Registry:
        """A container registry (see `container_registry.ContainerRegistry.add_registry`)."""
        return self.provider("Microsoft.ContainerRegistry").add_registry(
            subscription_id, resource_group, name, **kwargs
        )

    def add_managed_cluster(
        self, subscription_id: str, resource_group: str, name: str, *, kubeconfig: bytes,
        issuer_url: str, admin_kubeconfig: bytes | None = None, oidc_enabled: bool = False,
        workload_identity_enabled: bool = False, azure_rbac: bool = False,
        kubernetes_version: str = "1.36.3", location: str | None = None, **kwargs: Any,
    ) -> ManagedCluster:
        """An AKS cluster (see `container_service.ContainerService.add_managed_cluster`)."""
        return self.provider("Microsoft.ContainerService").add_managed_cluster(
            subscription_id, resource_group, name, kubeconfig=kubeconfig,
            admin_kubeconfig=admin_kubeconfig, issuer_url=issuer_url, oidc_enabled=oidc_enabled,
            workload_identity_enabled=workload_identity_enabled, azure_rbac=azure_rbac,
            kubernetes_version=kubernetes_version, location=location, **kwargs,
        )

    def add_storage_account(
        self, subscription_id: str, resource_group: str, name: str, *, blob_endpoint: str,
        location: str | None = None, **properties: Any,
    ) -> StorageAccount:
        """A storage account (see `storage.Storage.add_storage_account`)."""
        return self.provider("Microsoft.Storage").add_storage_account(
            subscription_id, resource_group, name, blob_endpoint=blob_endpoint,
            location=location, **properties,
        )

    def add_identity(
        self, subscription_id: str, resource_group: str, name: str, **kwargs: Any
    ) -> UserAssignedIdentity:
        """A user-assigned identity (see `managed_identity.ManagedIdentity.add_identity`)."""
        return self.provider("Microsoft.ManagedIdentity").add_identity(
            subscription_id, resource_group, name, **kwargs
        )

    def federation(self, client_id: str) -> Federation | None:
        """What Entra knows of a user-assigned identity for workload identity's token
        exchange: its ids and federated credentials, each with the wall-clock time from which
        Entra accepts it (creation + `federation_delay`); None for other client ids."""
        return self.provider("Microsoft.ManagedIdentity").federation(client_id)

    # ---- Entra directory ----------------------------------------------------------------------

    def add_principal(
        self, object_id: str, *, upn: str | None = None, kind: str = "User",
        display_name: str | None = None, app_id: str | None = None,
        replicated: bool = True,
    ) -> DirectoryObject:
        """A user, service principal or group in the tenant's directory. `replicated=False`:
        made just now, so ARM's role-assignment check misses it for `replication_delay`."""
        return self.directory.add(
            object_id, kind=kind, upn=upn, display_name=display_name, app_id=app_id,
            created=None if not replicated else float("-inf"),
        )

    # ---- RBAC ---------------------------------------------------------------------------------

    def effective_roles(self, principal: str | Iterable[str], scope: str) -> list[RoleDefinition]:
        """The roles in force for a principal (its object id and/or app id) over `scope`:
        `grant`s at once, API-made assignments only `role_propagation_delay` after their
        creation."""
        return self.rbac.effective_roles(principal, scope)

    def allows_data_action(
        self, principal: str | Iterable[str], data_action: str, scope: str
    ) -> bool:
        """Whether an effective role of `principal` over `scope` has this data action, e.g.
        `Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write`."""
        return self.rbac.allows_data_action(principal, data_action, scope)

    def grant(self, principal: str, role: str, scope: str) -> RoleAssignment:
        """Assign a built-in role ("Owner", "AcrPush", ...) to an object id or client id."""
        return self.rbac.grant(principal, role, scope)

    def grant_owner(self, principal: str, subscription_id: str) -> RoleAssignment:
        """The usual set-up: the test's identity owns the whole subscription."""
        return self.grant(principal, "Owner", f"/subscriptions/{subscription_id}")

    def revoke(self, principal: str, role: str | None = None, scope: str | None = None) -> int:
        return self.rbac.revoke(principal, role, scope)

    def calls(
        self, method: str | None = None, path_suffix: str | None = None
    ) -> list[RequestRecord]:
        """Recorded requests, filtered by method and the end of the path (any case)."""
        with self._lock:
            records = list(self.requests)
        return [
            r for r in records
            if (method is None or r.method == method.upper())
            and (path_suffix is None or r.path.lower().endswith(path_suffix.lower()))
        ]

    # ---- request handling ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        request_id = str(uuid.uuid4())
        correlation = handler.headers.get("x-ms-correlation-request-id") or request_id
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        api_version = query.get("api-version") or None
        raw = _read_body(handler)
        if graph.is_graph_path(split.path):
            self._handle_graph(handler, split.path, query, request_id)
            return
        try:
            response = self._dispatch(handler, split.path, query, raw, request_id)
        except errors.ArmError as exc:
            response = ArmResponse(exc.status, exc.body(), exc.headers)
        except Exception:  # a bug in the fake: answer as ARM does, keep the traceback
            trace = traceback.format_exc()
            with self._lock:
                self.server_errors.append(trace)
            response = ArmResponse(500, {"error": {
                "code": "InternalServerError",
                "message": "Encountered internal server error. Diagnostic information: "
                f"timestamp '{_now():%Y%m%dT%H%M%SZ}', subscription id '', tracking id "
                f"'{request_id}', request correlation id '{correlation}'.",
            }})
        with self._lock:
            self.requests.append(
                RequestRecord(handler.command, split.path, api_version, response.status)
            )
        _send(handler, response, request_id, correlation)

    def _handle_graph(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str], request_id: str,
    ) -> None:
        try:
            answer = graph.handle(
                self, handler.command, path, query, handler.headers.get("Authorization"),
                request_id,
            )
        except Exception:
            with self._lock:
                self.server_errors.append(traceback.format_exc())
            answer = graph.GraphResponse(500, {"error": {
                "code": "generalException", "message": "General exception while processing.",
            }})
        with self._lock:
            self.requests.append(RequestRecord(handler.command, path, None, answer.status))
        data = json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _dispatch(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str], raw: bytes,
        request_id: str,
    ) -> ArmResponse:
        api_version = query.get("api-version")
        if not api_version:
            raise errors.missing_api_version()
        principal = authenticate(
            handler.headers.get("Authorization"), self.audience, self.authority
        )
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if len(segments) < 2 or segments[0].lower() != "subscriptions":
            raise errors.ArmError(
                404, "NotFound", f"The fake ARM serves subscription-scoped paths only: {path}"
            )
        if not _GUID.match(segments[1]):
            raise errors.ArmError(
                400, "InvalidSubscriptionId",
                f"The provided subscription identifier '{segments[1]}' is malformed or invalid.",
            )
        subscription = self.subscription(segments[1])
        if subscription is None:
            raise errors.subscription_not_found(segments[1])
        if subscription.tenant_id and principal.tenant_id.lower() != subscription.tenant_id.lower():
            raise errors.wrong_tenant(principal.tenant_id, subscription.tenant_id, self.authority)
        provider_at = _last_providers_index(segments)
        if provider_at is None:
            raise errors.ArmError(
                404, "NotFound", f"The fake ARM serves provider resources only: {path}"
            )
        namespace, rest = segments[provider_at + 1], segments[provider_at + 2:]
        provider = self._providers.get(namespace.lower())
        if provider is None:
            raise errors.invalid_namespace(namespace)
        route, params = _route(provider, handler.command, rest, api_version)
        scope = route.scope_of("/" + "/".join(segments))
        action = route.rbac_action(provider.namespace)
        if not self.rbac.allows(principal, action, scope):
            raise errors.authorization_failed(principal.client, principal.object_id, action, scope)
        group = None
        if len(segments) > 3 and segments[2].lower() == "resourcegroups":
            group = subscription.resource_group(segments[3])
            if group is None:
                raise errors.resource_group_not_found(segments[3])
        provider.check_api_version(
            route, api_version, group.location if group else provider.locations[0]
        )
        self.operations.settle()
        if provider_at > 4:  # an extension resource (role assignment, ...) of another resource
            self._check_parent_exists(segments[:provider_at])
        request = ArmRequest(
            arm=self, method=handler.command, path="/" + "/".join(segments), query=query,
            headers=handler.headers, raw_body=raw, api_version=api_version,
            principal=principal, subscription=subscription, resource_group=group,
            params=params, scope=scope, request_id=request_id,
        )
        return route.handler(request)


    def _check_parent_exists(self, parent: list[str]) -> None:
        """ARM refuses an extension resource whose parent resource does not exist."""
        inner = _last_providers_index(parent)
        if inner is None or len(parent) < inner + 4:
            return
        provider = self._providers.get(parent[inner + 1].lower())
        if provider is None:
            return
        exists = provider.resource_exists("/" + "/".join(parent), parent[inner + 2:])
        if exists is False:
            raise errors.resource_not_found(
                provider.namespace, "/".join(parent[inner + 2:]), parent[3]
            )


def _route(
    provider: Provider, method: str, rest: list[str], api_version: str
) -> tuple[Route, dict[str, str]]:
    matched_other_method = False
    for route in provider.routes():
        params = route.match(rest)
        if params is None:
            continue
        if route.method == method:
            return route, params
        matched_other_method = True
    if matched_other_method:
        raise errors.method_not_allowed(method)
    raise errors.invalid_resource_type("/".join(rest[0::2]), provider.namespace, api_version)


def _last_providers_index(segments: list[str]) -> int | None:
    for i in range(len(segments) - 2, 1, -1):
        if segments[i].lower() == "providers":
            return i
    return None


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _send(
    handler: BaseHTTPRequestHandler, response: ArmResponse, request_id: str, correlation: str
) -> None:
    data = b"" if response.body is None else json.dumps(response.body).encode()
    handler.send_response(response.status)
    headers: dict[str, str] = {
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
        "Expires": "-1",
        "x-ms-request-id": request_id,
        "x-ms-correlation-request-id": correlation,
        "x-ms-routing-request-id": f"EASTUS:{_now():%Y%m%dT%H%M%SZ}:{request_id}",
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
    }
    if handler.command in ("GET", "HEAD"):
        headers["x-ms-ratelimit-remaining-subscription-reads"] = "11999"
    else:
        headers["x-ms-ratelimit-remaining-subscription-writes"] = "1199"
    if response.body is not None:
        headers["Content-Type"] = "application/json; charset=utf-8"
    headers.update(response.headers)
    headers["Content-Length"] = str(len(data))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def _blob_service(storage: Any) -> BlobServiceClient | None:
    if storage is None or hasattr(storage, "get_container_client"):
        return storage
    if hasattr(storage, "service_client"):
        return storage.service_client()
    raise TypeError("storage: a BlobServiceClient (account key) or an Azurite fixture")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

