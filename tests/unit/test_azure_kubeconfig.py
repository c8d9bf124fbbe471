"""Kubeconfig from ARM and Entra ID tokens for the kubernetes client, fully offline.

ARM: the REAL azure-mgmt-containerservice client and azure-core pipeline, with only the
transport (the socket layer) replaced by canned responses, and only the identity replaced by
a fake TokenCredential. Kubernetes: the REAL kubernetes client talking to a loopback server.
Sockets may only reach loopback addresses in this module.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import re
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from aksrun.adapters.azure import credentials as azcred
from aksrun.adapters.azure import kubeconfig as azkube
from aksrun.errors import AksrunError, ConfigError

pytestmark = pytest.mark.allow_hosts(["127.0.0.1", "::1"])

SUBSCRIPTION = "00000000-0000-0000-0000-00000000cafe"
TENANT = "11111111-1111-1111-1111-111111111111"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfakefakefake\n-----END CERTIFICATE-----\n"
ARM_SCOPE = "https://management.azure.com/.default"
KUBELOGIN_ARGS = [
    "get-token", "--login", "devicecode", "--server-id", azkube.AKS_SERVER_APP_ID,
    "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", TENANT,
    "--environment", "AzurePublicCloud",
]


# -- fakes: identity and transport only -----------------------------------------------------


class FakeCredential:
    """A TokenCredential issuing numbered tokens; `lifetimes` sets each token's validity."""

    def __init__(self, lifetimes: list[float] | None = None, error: Exception | None = None):
        self.lifetimes = list(lifetimes or [])
        self.error = error
        self.calls: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        self.calls.append(scopes)
        if self.error is not None:
            raise self.error
        lifetime = self.lifetimes.pop(0) if self.lifetimes else 3600
        return AccessToken(f"token-{len(self.calls)}", int(time.time() + lifetime))


def _transport_class():
    from azure.core.pipeline.transport import HttpTransport
    from azure.core.rest._requests_basic import RestRequestsTransportResponse
    from requests import Response

    class CannedTransport(HttpTransport):
        """Answers every request with one canned response, as the requests transport would."""

        def __init__(self, status: int, body: dict[str, Any]):
            self.status, self.body = status, body
            self.requests: list[Any] = []

        def __enter__(self):
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

        def open(self) -> None:
            pass

        def close(self) -> None:
            pass

        def send(self, request: Any, **kwargs: Any) -> Any:
            self.requests.append(request)
            response = Response()
            response.status_code = self.status
            response.headers["Content-Type"] = "application/json; charset=utf-8"
            response.raw = io.BytesIO(json.dumps(self.body).encode())
            response.url = request.url
            return RestRequestsTransportResponse(request=request, internal_response=response)

    return CannedTransport


def arm_client(status: int, body: dict[str, Any], credential: Any = None):
    from azure.mgmt.containerservice import ContainerServiceClient

    transport = _transport_class()(status, body)
    client = ContainerServiceClient(
        credential or FakeCredential(), SUBSCRIPTION, transport=transport, retry_total=0
    )
    return client, transport


def aks_kubeconfig(server: str = "https://aks-dns-abc.hcp.westeurope.azmk8s.io:443",
                   user: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shape listClusterUserCredential returns for an Entra ID cluster."""
    if user is None:
        user = {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "kubelogin",
            "args": list(KUBELOGIN_ARGS),
            "env": None,
            "installHint": "kubelogin is not installed ...",
            "provideClusterInfo": False,
            "interactiveMode": "IfAvailable",
        }}
    cluster: dict[str, Any] = {"server": server}
    if server.startswith("https"):
        cluster["certificate-authority-data"] = base64.b64encode(CA_PEM.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "aks", "cluster": cluster}],
        "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "clusterUser_rg_aks"}}],
        "current-context": "aks",
        "preferences": {},
        "users": [{"name": "clusterUser_rg_aks", "user": user}],
    }


def write(tmp_path, document: dict[str, Any]) -> str:
    data = yaml.safe_dump(document).encode()
    return azkube.write_private_kubeconfig(data, directory=str(tmp_path))


def bearer(api_client: Any) -> str:
    """The Authorization header the client would send now (runs the refresh hook)."""
    return api_client.configuration.auth_settings()["BearerToken"]["value"]


# -- the network guard itself ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_sockets_cannot_leave_loopback():
    from pytest_socket import SocketConnectBlockedError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        with pytest.raises(SocketConnectBlockedError):
            sock.connect(("10.255.255.1", 443))


# -- kubeconfig from ARM --------------------------------------------------------------------


def test_fetch_kubeconfig_calls_list_cluster_user_credential():
    kubeconfig = yaml.safe_dump(aks_kubeconfig()).encode()
    credential = FakeCredential()
    client, transport = arm_client(200, {"kubeconfigs": [
        {"name": "clusterUser", "value": base64.b64encode(kubeconfig).decode()}
    ]}, credential)

    data = azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", client=client)

    assert data == kubeconfig and isinstance(data, bytes)
    (request,) = transport.requests
    from urllib.parse import parse_qs, urlsplit

    url = urlsplit(request.url)
    assert request.method == "POST"
    assert url.scheme == "https" and url.netloc == "management.azure.com"
    assert url.path == (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/"
        "Microsoft.ContainerService/managedClusters/aks/listClusterUserCredential"
    )
    query = parse_qs(url.query)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", query["api-version"][0])
    assert query["format"] == ["exec"]
    assert request.headers["Authorization"] == "Bearer token-1"
    assert credential.calls == [(ARM_SCOPE,)]


def test_fetch_kubeconfig_builds_the_client_from_the_given_credential(monkeypatch):
    import azure.mgmt.containerservice as containerservice

    kubeconfig = b"apiVersion: v1\nkind: Config\n"
    transport = _transport_class()(200, {"kubeconfigs": [
        {"name": "clusterUser", "value": base64.b64encode(kubeconfig).decode()}
    ]})
    real = containerservice.ContainerServiceClient
    monkeypatch.setattr(
        containerservice, "ContainerServiceClient", functools.partial(real, transport=transport)
    )
    credential = FakeCredential()
    assert azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", credential) == kubeconfig
    assert credential.calls == [(ARM_SCOPE,)]
    assert f"/subscriptions/{SUBSCRIPTION}/" in transport.requests[0].url


def test_missing_cluster_names_the_cluster_and_settings():
    client, _ = arm_client(404, {"error": {
        "code": "ResourceNotFound",
        "message": "The Resource 'Microsoft.ContainerService/managedClusters/nope' under "
                   "resource group 'rg' was not found.",
    }})
    with pytest.raises(ConfigError) as info:
        azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "nope", client=client)
    text = str(info.value)
    assert "'nope'" in text and "'rg'" in text
    assert "AZURE_AKS_CLUSTER_NAME" in text and "AZURE_RESOURCE_GROUP" in text


def test_missing_resource_group_names_it():
    client, _ = arm_client(404, {"error": {
        "code": "ResourceGroupNotFound", "message": "Resource group 'rg-typo' could not be found.",
    }})
    with pytest.raises(ConfigError) as info:
        azkube.fetch_kubeconfig(SUBSCRIPTION, "rg-typo", "aks", client=client)
    text = str(info.value)
    assert "resource group 'rg-typo' does not exist" in text
    assert SUBSCRIPTION in text and "AZURE_RESOURCE_GROUP" in text


def test_forbidden_names_the_role_and_scope():
    client, _ = arm_client(403, {"error": {
        "code": "AuthorizationFailed",
        "message": "The client 'alice@example.com' with object id '...' does not have "
                   "authorization to perform action 'Microsoft.ContainerService/managedClusters/"
                   "listClusterUserCredential/action'.",
    }})
    with pytest.raises(AksrunError) as info:
        azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", client=client)
    text = str(info.value)
    assert "Azure Kubernetes Service Cluster User Role" in text
    assert azkube.cluster_resource_id(SUBSCRIPTION, "rg", "aks") in text
    assert "az role assignment create" in text
    assert "AuthorizationFailed" in text  # Azure's own words are kept


def test_unauthenticated_explains_how_to_sign_in():
    client, _ = arm_client(401, {"error": {
        "code": "InvalidAuthenticationToken", "message": "The access token is invalid.",
    }})
    with pytest.raises(AksrunError) as info:
        azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", client=client)
    text = str(info.value)
    assert "az login" in text and "InvalidAuthenticationToken" in text


def test_no_credential_explains_every_way_to_sign_in():
    from azure.identity import CredentialUnavailableError

    credential = FakeCredential(error=CredentialUnavailableError("EnvironmentCredential "
                                                                "authentication unavailable."))
    client, transport = arm_client(200, {}, credential)
    with pytest.raises(AksrunError) as info:
        azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", client=client)
    text = str(info.value)
    for expected in ("az login", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                     "Workload Identity", "AzureCliCredential"):
        assert expected in text
    assert transport.requests == []  # never sent without a token


def test_empty_answer_is_an_error():
    client, _ = arm_client(200, {"kubeconfigs": []})
    with pytest.raises(AksrunError, match="no kubeconfig"):
        azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", client=client)


def test_private_kubeconfig_is_0600(tmp_path):
    path = azkube.write_private_kubeconfig(b"apiVersion: v1\n", directory=str(tmp_path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Path(path).read_bytes() == b"apiVersion: v1\n"
    text_path = azkube.write_private_kubeconfig("kind: Config\n", directory=str(tmp_path))
    assert stat.S_IMODE(os.stat(text_path).st_mode) == 0o600 and text_path != path
    azkube._remove(path)  # what the atexit hook does
    assert not os.path.exists(path)


# -- Entra ID tokens instead of kubelogin ---------------------------------------------------


@pytest.fixture
def fake_kubelogin(tmp_path, monkeypatch):
    """A `kubelogin` on PATH that leaves a mark if anyone runs it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "kubelogin-ran"
    script = bin_dir / "kubelogin"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return marker


def test_kubelogin_user_gets_tokens_from_the_credential(tmp_path, fake_kubelogin):
    from kubernetes.client import ApiClient, Configuration

    default_before = Configuration._default
    credential = FakeCredential()
    api = azkube.load_kubernetes_client(write(tmp_path, aks_kubeconfig()), credential)

    assert isinstance(api, ApiClient)
    config = api.configuration
    assert config.host == "https://aks-dns-abc.hcp.westeurope.azmk8s.io:443"
    assert Path(config.ssl_ca_cert).read_text() == CA_PEM
    assert bearer(api) == "Bearer token-1"
    assert credential.calls == [(f"{azkube.AKS_SERVER_APP_ID}/.default",)]
    assert not fake_kubelogin.exists()  # kubelogin was never run
    assert Configuration._default is default_before  # the global default is untouched


def test_token_is_refreshed_before_it_expires(tmp_path):
    # token-1 expires within the 5-minute margin, token-2 lives an hour
    credential = FakeCredential(lifetimes=[120, 3600])
    api = azkube.load_kubernetes_client(write(tmp_path, aks_kubeconfig()), credential)
    assert bearer(api) == "Bearer token-2"  # renewed before the first request
    assert bearer(api) == "Bearer token-2"  # and then reused
    assert len(credential.calls) == 2


def test_refresher_timing_with_a_controlled_clock():
    class Config:
        def __init__(self):
            self.api_key: dict[str, str] = {}
            self.api_key_prefix: dict[str, str] = {}
            self.refresh_api_key_hook = None

    now = [1_000_000.0]

    class ClockedCredential(FakeCredential):
        def get_token(self, *scopes: str, **kwargs: Any):
            from azure.core.credentials import AccessToken

            self.calls.append(scopes)
            return AccessToken(f"token-{len(self.calls)}", int(now[0] + 3600))

    credential = ClockedCredential()
    refresher = azkube.EntraTokenRefresher(credential, "scope/.default", clock=lambda: now[0])
    config = Config()
    refresher.install(config)
    assert config.refresh_api_key_hook is refresher
    # Both keys: kubernetes 36+ reads BearerToken, 30-35 authorization.
    assert config.api_key == {"BearerToken": "token-1", "authorization": "token-1"}
    assert config.api_key_prefix == {"BearerToken": "Bearer", "authorization": "Bearer"}
    now[0] += 3600 - 301  # still 301 s left: keep it
    refresher(config)
    assert config.api_key["BearerToken"] == "token-1"
    now[0] += 2  # 299 s left: inside the margin, renew
    refresher(config)
    assert config.api_key["BearerToken"] == "token-2"
    assert credential.calls == [("scope/.default",), ("scope/.default",)]
    import copy

    assert copy.deepcopy(refresher) is refresher  # Configuration copies share the cache


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str | None] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        body = json.dumps(
            {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"},
             "items": []}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_api_server():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_requests_carry_the_refreshed_bearer_token(tmp_path, loopback_api_server, fake_kubelogin):
    from kubernetes.client import CoreV1Api

    url, seen = loopback_api_server
    credential = FakeCredential(lifetimes=[3600, 100, 3600])
    path = write(tmp_path, aks_kubeconfig(server=url))
    api = azkube.load_kubernetes_client(path, credential)
    core = CoreV1Api(api)
    core.list_namespaced_pod("aksrun-alice")
    core.list_namespaced_pod("aksrun-alice")
    assert seen == ["Bearer token-1", "Bearer token-1"]
    # force token-1 to look nearly expired: the next request renews it first
    api.configuration.refresh_api_key_hook._expires_on = time.time() + 60
    core.list_namespaced_pod("aksrun-alice")
    assert seen[-1] == "Bearer token-2"
    assert not fake_kubelogin.exists()
    api.close()


def test_custom_server_id_and_legacy_azure_auth_provider(tmp_path):
    custom = aks_kubeconfig()
    args = custom["users"][0]["user"]["exec"]["args"]
    args[args.index("--server-id") + 1] = "custom-server-app"
    credential = FakeCredential()
    azkube.load_kubernetes_client(write(tmp_path, custom), credential)
    assert credential.calls == [("custom-server-app/.default",)]

    legacy = aks_kubeconfig(user={"auth-provider": {"name": "azure", "config": {
        "apiserver-id": azkube.AKS_SERVER_APP_ID, "client-id": "x", "tenant-id": TENANT,
        "environment": "AzurePublicCloud", "config-mode": "1",
    }}})
    credential = FakeCredential()
    api = azkube.load_kubernetes_client(write(tmp_path, legacy), credential)
    assert bearer(api) == "Bearer token-1"
    assert credential.calls == [(azkube.AKS_SERVER_APP_ID + "/.default",)]


def test_kubelogin_by_full_path_is_recognised():
    user = {"exec": {"command": "/usr/local/bin/kubelogin", "args": ["get-token"]}}
    assert azkube.entra_server_id(user) == azkube.AKS_SERVER_APP_ID
    user = {"exec": {"command": "kubelogin", "args": ["--server-id=abc"]}}
    assert azkube.entra_server_id(user) == "abc"
    assert azkube.entra_server_id({"exec": {"command": "aws", "args": []}}) is None
    assert azkube.entra_server_id({"token": "x"}) is None
    assert azkube.entra_server_id(None) is None


def test_local_account_kubeconfig_is_loaded_as_is(tmp_path):
    document = aks_kubeconfig(user={"token": "static-token"})
    credential = FakeCredential()
    api = azkube.load_kubernetes_client(write(tmp_path, document), credential)
    assert bearer(api) == "Bearer static-token"
    assert credential.calls == []  # no Entra token for a local account


def test_unusable_kubeconfig_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="could not be read"):
        azkube.load_kubernetes_client(tmp_path / "missing.yaml", FakeCredential())
    bad = aks_kubeconfig()
    bad["current-context"] = "elsewhere"
    with pytest.raises(ConfigError, match="elsewhere"):
        azkube.load_kubernetes_client(write(tmp_path, bad), FakeCredential())


def test_sign_in_failure_surfaces_at_load_with_advice(tmp_path, monkeypatch):
    # The real DefaultAzureCredential, restricted to developer sources (no IMDS traffic),
    # with no az/azd/pwsh on PATH and an empty HOME: it must fail fast, offline.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    path = write(tmp_path, aks_kubeconfig())
    with pytest.raises(AksrunError) as info:
        azkube.load_kubernetes_client(path)
    text = str(info.value)
    assert "DefaultAzureCredential tried" in text
    assert "AzureCliCredential" in text and "az login" in text
    assert "AZURE_TOKEN_CREDENTIALS=dev" in text


# -- credentials ----------------------------------------------------------------------------


def test_default_credential_is_default_azure_credential(monkeypatch):
    from azure.identity import DefaultAzureCredential

    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
    assert isinstance(azcred.default_credential(), DefaultAzureCredential)


def test_explain_chained_failure_lists_each_attempt():
    from azure.core.exceptions import ClientAuthenticationError

    message = (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n"
        "\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
        "\tAzureCliCredential: Please run 'az login' to set up an account\n"
        "To mitigate this issue, please refer to the troubleshooting guidelines here at "
        "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
    )
    text = azcred.explain_auth_error(ClientAuthenticationError(message=message))
    assert text.startswith("Azure sign-in failed: DefaultAzureCredential could not get a token")
    assert "  - EnvironmentCredential: EnvironmentCredential authentication unavailable." in text
    assert "  - AzureCliCredential: Please run 'az login'" in text
    assert "AZURE_CLIENT_SECRET" in text and "azure.workload.identity/use=true" in text


def test_explain_refused_credential_quotes_entra():
    from azure.core.exceptions import ClientAuthenticationError

    exc = ClientAuthenticationError(
        message="AzureCliCredential.get_token failed: AADSTS70043: The refresh token has expired"
    )
    text = azcred.explain_auth_error(exc)
    assert "refused" in text and "AADSTS70043" in text and "az login" in text


def test_explain_unavailable_lists_the_chain():
    from azure.identity import CredentialUnavailableError

    text = azcred.explain_auth_error(CredentialUnavailableError("nothing configured"))
    assert "Reason: nothing configured" in text
    assert "DefaultAzureCredential tries, in order" in text
    assert "WorkloadIdentityCredential" in text and "AzureCliCredential (az login)" in text


def test_server_fqdn_asks_arm_for_that_address(monkeypatch, tmp_path):
    """AKSRUN_SERVER_FQDN=public: a private cluster's public FQDN (issue 11, item 16)."""
    from urllib.parse import parse_qs, urlsplit

    from aksrun.core.config import load_config
    from aksrun.errors import ConfigError

    kubeconfig = yaml.safe_dump(aks_kubeconfig()).encode()
    client, transport = arm_client(200, {"kubeconfigs": [
        {"name": "clusterUser", "value": base64.b64encode(kubeconfig).decode()}]})
    config = load_config({"server_fqdn": "Public"}, cwd=str(tmp_path))
    azkube.fetch_kubeconfig(SUBSCRIPTION, "rg", "aks", client=client,
                            server_fqdn=config.server_fqdn)
    query = parse_qs(urlsplit(transport.requests[-1].url).query)
    assert query["server-fqdn"] == ["public"]
    with pytest.raises(ConfigError, match="public or private"):
        load_config({"server_fqdn": "internal"}, cwd=str(tmp_path))
