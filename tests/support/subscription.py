"""A fake Azure subscription for `aksrun admin` tests: everything the admin commands and a
new user's identity talk to, offline, on 127.0.0.1.

- the strict fake ARM (tests/support/fake_arm): managed cluster, identities, federated
  credentials, role assignments (in force after `role_propagation_delay`), storage accounts
  and containers (real ones in Azurite), the Entra directory, and Microsoft Graph on the same
  server;
- the REAL test cluster (tests/support/k8s) registered as the managed cluster: its admin
  kubeconfig is what `listClusterAdminCredential` returns and its service-account issuer is
  the cluster's OIDC issuer URL, so federated tokens are real service-account tokens;
- the session's fake Entra (`azurite_oauth`) with federation on (`entra.federation = arm`):
  a managed identity's token exchange succeeds only for a matching federated credential that
  has propagated (AADSTS70021 until then);
- OAuth Azurite as every storage account's blob endpoint, behind `BlobRbacGate`: Storage's
  data-plane RBAC (403 AuthorizationPermissionMismatch until the caller holds an effective
  Storage Blob Data role on the container), which Azurite itself does not check.

`person_kubeconfig(upn, path)` signs a person in to the cluster with a client certificate for
their UPN, which is how the API server of an Entra-integrated AKS cluster names users.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .fake_arm import FakeArm
from .fake_entra import jwt_claims

if TYPE_CHECKING:
    from .azure_fixtures import OAuthAzurite
    from .k8s.cluster import TestCluster

HOST = "127.0.0.1"
SUBSCRIPTION = "2d6a4e1c-7b3f-4c9a-8e5d-1f0a9b8c7d6e"
RESOURCE_GROUP = "rg-aksrun-admin"
CLUSTER = "aks-aksrun"
STORAGE_ACCOUNT = "aksrunstore"
LOCATION = "westeurope"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
ARM_AUDIENCE = "https://management.azure.com"
_DATA_ACTIONS = {"GET": "read", "HEAD": "read", "PUT": "write", "POST": "write",
                 "PATCH": "write", "DELETE": "delete"}
_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
_NOWHERE = (b"apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
            b"'https://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: none}}]\ncontexts: "
            b"[{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")




class BlobRbacGate:
    """An HTTPS reverse proxy in front of Azurite that enforces Storage's data-plane RBAC.

    `authorize(object_id, container, method)` says whether that principal holds an effective
    role with the blob data action of `method` over the container; until it does, requests
    with a bearer token get Storage's 403 AuthorizationPermissionMismatch. Everything else is
    relayed to Azurite unchanged (bodies are small here: probes, not job payloads).
    """

    def __init__(self, target: str, cert_file: Path, key_file: Path,
                 authorize: Callable[[str, str, str], bool]) -> None:
        parts = urlsplit(target)
        self.target_host = parts.hostname or HOST
        self.target_port = parts.port or 443
        self.account = parts.path.strip("/")
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.authorize = authorize
        self.refused: list[tuple[str, str, str]] = []  # (object id, method, path)
        self._server: ThreadingHTTPServer | None = None
        self._client_ssl = ssl.create_default_context(cafile=str(self.cert_file))

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://{HOST}:{self._server.server_address[1]}/{self.account}"

    def start(self) -> BlobRbacGate:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._relay(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="blob-rbac-gate",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        segments = [unquote(s) for s in split.path.strip("/").split("/")]
        container = segments[1] if len(segments) > 1 else ""
        auth = handler.headers.get("Authorization") or ""
        claims = jwt_claims(auth.partition(" ")[2].strip()) if auth.lower().startswith(
            "bearer ") else None
        object_id = str((claims or {}).get("oid") or "")
        if container and claims is not None and not self.authorize(object_id, container,
                                                                   handler.command):
            self.refused.append((object_id, handler.command, split.path))
            self._refuse(handler)
            return
        connection = http.client.HTTPSConnection(self.target_host, self.target_port,
                                                 context=self._client_ssl, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            headers["Host"] = f"{self.target_host}:{self.target_port}"
            connection.request(handler.command, handler.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            handler.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            connection.close()

    @staticmethod
    def _refuse(handler: BaseHTTPRequestHandler) -> None:
        request_id = str(uuid.uuid4())
        body = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>'
                'AuthorizationPermissionMismatch</Code><Message>This request is not authorized '
                f'to perform this operation using this permission.\nRequestId:{request_id}\n'
                f'Time:{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S.%f0Z}</Message></Error>'
                ).encode()
        handler.send_response(403, "This request is not authorized to perform this operation "
                                   "using this permission.")
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("x-ms-request-id", request_id)
        handler.send_header("x-ms-error-code", "AuthorizationPermissionMismatch")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)




@dataclass
class FakeSubscription:
    """One subscription with one resource group holding the cluster (and, unless asked
    otherwise, the storage account `aksrunstore`); the session's identity owns it."""

    arm: FakeArm
    oauth: OAuthAzurite
    gate: BlobRbacGate
    cluster: TestCluster | None
    admin_client_id: str
    subscription_id: str = SUBSCRIPTION
    resource_group: str = RESOURCE_GROUP
    cluster_name: str = CLUSTER
    storage_account: str | None = STORAGE_ACCOUNT
    people: dict[str, str] = field(default_factory=dict)  # upn -> object id

    @property
    def env(self) -> dict[str, str]:
        """The settings an admin's shell would have for this subscription."""
        return {
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_RESOURCE_GROUP": self.resource_group,
            "AZURE_AKS_CLUSTER_NAME": self.cluster_name,
            "AKSRUN_ARM_ENDPOINT": self.arm.endpoint,
            "AKSRUN_ARM_AUDIENCE": ARM_AUDIENCE,
            "AKSRUN_GRAPH_ENDPOINT": self.arm.endpoint,
            "AKSRUN_GRAPH_AUDIENCE": GRAPH_AUDIENCE,
        }

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def cluster_id(self) -> str:
        return (f"{self.group_id}/providers/Microsoft.ContainerService/managedClusters/"
                f"{self.cluster_name}")

    def account_id(self, account: str | None = None) -> str:
        return (f"{self.group_id}/providers/Microsoft.Storage/storageAccounts/"
                f"{account or self.storage_account}")

    def container_scope(self, container: str, account: str | None = None) -> str:
        return f"{self.account_id(account)}/blobServices/default/containers/{container}"

    def add_person(self, upn: str) -> str:
        """A user in the tenant's directory; returns their object id."""
        object_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, upn))
        self.arm.add_principal(object_id, upn=upn, kind="User",
                               display_name=upn.split("@")[0].title())
        self.people[upn] = object_id
        return object_id

    def person_kubeconfig(self, upn: str, path: Path, namespace: str | None = None) -> Path:
        """A kubeconfig signing in as `upn` (a client certificate; in group aksrun-users, so
        the API server's audit log records the person's requests)."""
        assert self.cluster is not None, "a subscription without the test cluster"
        from .k8s.control_plane import AUDITED_GROUP

        return self.cluster.control_plane.user_kubeconfig(path, upn, (AUDITED_GROUP,),
                                                          namespace)

    # ---- what the tests inspect ---------------------------------------------------------------

    def identity(self, name: str) -> Any:
        return self.arm.provider("Microsoft.ManagedIdentity").identity(
            self.subscription_id, self.resource_group, name)

    def account(self, name: str | None = None) -> Any:
        return self.arm.provider("Microsoft.Storage").account(
            self.subscription_id, self.resource_group, name or self.storage_account)

    def managed_cluster(self) -> Any:
        return self.arm.provider("Microsoft.ContainerService").cluster(
            self.subscription_id, self.resource_group, self.cluster_name)

    def assignments(self, scope: str | None = None, principal: str | None = None) -> list[Any]:
        """Role assignments made through the API (not the test's `grant`s), at exactly
        `scope` and/or for `principal`."""
        found = []
        for assignment in self.arm.rbac.assignments:
            if scope and assignment.scope.strip("/").lower() != scope.strip("/").lower():
                continue
            if principal and assignment.principal.lower() != principal.lower():
                continue
            if assignment.name is None:  # a test's `grant`, not made through the API
                continue
            found.append(assignment)
        return found

    def container_exists(self, container: str) -> bool:
        return self.oauth.service_client().get_container_client(container).exists()

    def stop(self) -> None:
        self.oauth.entra.federation = None
        with contextlib.suppress(Exception):
            self.gate.stop()
        self.arm.stop()


def start_subscription(oauth: OAuthAzurite, cluster: TestCluster | None, *,
                       workload_identity: bool = True, azure_rbac: bool = False,
                       storage_account: str | None = STORAGE_ACCOUNT, executor: Any = None,
                       **delays: float) -> FakeSubscription:
    """Everything up: the fake ARM (with `delays`, e.g. `role_propagation_delay=3`, and an
    ACR Tasks `executor` for registries that build), the cluster registered as `aks-aksrun`
    (workload identity on or off; without the test cluster, one nobody can reach), the
    storage account (unless None), the session identity Owner of the subscription, and
    Entra's federation."""
    server = oauth.server
    assert server.cert_file is not None and server.key_file is not None
    arm_box: list[FakeArm] = []

    def authorize(object_id: str, container: str, method: str) -> bool:
        return _authorize(arm_box[0], object_id, container, method)

    gate = BlobRbacGate(oauth.account_url, server.cert_file, server.key_file, authorize).start()
    settings: dict[str, Any] = {"retry_after": 1, "operation_delay": 0.3, **delays}
    arm = FakeArm(server.cert_file, server.key_file, storage=oauth, blob_endpoint=gate.url,
                  executor=executor, **settings)
    arm_box.append(arm)
    try:
        arm.add_subscription(SUBSCRIPTION, tenant_id=oauth.entra.tenant_id)
        arm.add_resource_group(SUBSCRIPTION, RESOURCE_GROUP, LOCATION)
        # Without the test cluster (tests of ARM-only steps), a cluster no one can reach.
        admin = cluster.admin_kubeconfig.read_bytes() if cluster is not None else _NOWHERE
        issuer = cluster.control_plane.url if cluster is not None else "https://127.0.0.1:9/"
        arm.add_managed_cluster(
            SUBSCRIPTION, RESOURCE_GROUP, CLUSTER, kubeconfig=admin, admin_kubeconfig=admin,
            issuer_url=issuer, oidc_enabled=workload_identity,
            workload_identity_enabled=workload_identity, azure_rbac=azure_rbac,
            location=LOCATION)
        if storage_account:
            arm.add_storage_account(SUBSCRIPTION, RESOURCE_GROUP, storage_account,
                                    blob_endpoint=gate.url, tags={"managed-by": "aksrun"},
                                    allow_shared_key_access=False)
        arm.grant_owner(oauth.entra.client_id, SUBSCRIPTION)
        arm.start()
    except BaseException:
        gate.stop()
        raise
    oauth.entra.federation = arm
    return FakeSubscription(arm, oauth, gate, cluster, oauth.entra.client_id,
                            storage_account=storage_account)


def _authorize(arm: FakeArm, object_id: str, container: str, method: str) -> bool:
    """Storage's data-plane check: an effective role with the blob data action over the
    container, in whichever of the fake's accounts holds it."""
    action = f"{_BLOBS}/{_DATA_ACTIONS.get(method, 'read')}"
    storage = arm.provider("Microsoft.Storage")
    with storage._lock:
        accounts = list(storage._accounts.values())
    scopes = [a.container_id(container) for a in accounts if container in a.containers]
    return any(arm.allows_data_action(object_id, action, scope) for scope in scopes)
