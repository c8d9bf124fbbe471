"""BlobStore behaviour beyond the shared contract: container creation, the messages for
permission, key and credential failures, configuration, retries, and lazy imports."""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aksrun.adapters import blob_store
from aksrun.adapters.blob_store import BlobStore
from aksrun.core.backends import open_store
from aksrun.core.config import load_config
from aksrun.errors import ConfigError, ObjectNotFoundError, StoreAccessError, StoreError
from tests.support.azurite import Azurite

pytestmark = pytest.mark.azurite

ROLE_HINT = "Storage Blob Data Contributor on"


def _store(server: Azurite, container: str, tmp_path: Path, **overrides: str) -> BlobStore:
    config = load_config(
        overrides={"storage_connection_string": server.connection_string, **overrides},
        cwd=str(tmp_path),
    )
    store = open_store(f"az://{container}/p", config)
    assert isinstance(store, BlobStore)
    return store


def _read_only_sas_connection_string(server: Azurite) -> str:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas(
        server.account, server.account_key,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    return f"BlobEndpoint={server.account_url};SharedAccessSignature={sas}"


@pytest.mark.parametrize("operation", ["put", "put-stream", "append", "put_file"])
def test_missing_container_is_created_on_first_write(
    azurite: Azurite, new_container, tmp_path: Path, operation: str
) -> None:
    container = new_container(azurite)
    raw = azurite.service_client().get_container_client(container)
    assert not raw.exists()
    store = _store(azurite, container, tmp_path)
    assert list(store.list()) == []  # reading a missing container is just empty
    with pytest.raises(ObjectNotFoundError, match=container):
        store.get("k")
    source = tmp_path / "f.bin"
    source.write_bytes(b"file")
    small = BlobStore.from_url(f"az://{container}/p", store_config(azurite, tmp_path),
                               max_single_put_size=1024, max_block_size=1024)
    {
        "put": lambda: store.put("k", b"data"),
        "put-stream": lambda: small.put("k", (b"x" * 600 for _ in range(5))),
        "append": lambda: store.append("k", b"data"),
        "put_file": lambda: store.put_file("k", str(source)),
    }[operation]()
    assert raw.exists()
    assert store.exists("k")


def store_config(server: Azurite, tmp_path: Path):
    return load_config(
        overrides={"storage_connection_string": server.connection_string}, cwd=str(tmp_path)
    )


def test_permission_denied_names_container_and_role(
    azurite: Azurite, new_container, tmp_path: Path
) -> None:
    container = new_container(azurite, create=True)
    _store(azurite, container, tmp_path).put("readable", b"yes")
    read_only = _read_only_sas_connection_string(azurite)
    store = _store(azurite, container, tmp_path, storage_connection_string=read_only,
                   subscription_id="sub-123", resource_group="rg-data")
    assert bytes(store.get("readable")) == b"yes"  # reading is allowed
    with pytest.raises(StoreError) as excinfo:
        store.put("k", b"data")
    message = str(excinfo.value)
    assert "AuthorizationPermissionMismatch" in message
    assert repr(container) in message
    scope = (
        "/subscriptions/sub-123/resourceGroups/rg-data/providers/Microsoft.Storage/"
        f"storageAccounts/devstoreaccount1/blobServices/default/containers/{container}"
    )
    assert f"{ROLE_HINT} {scope}" in message
    assert "sig=" not in message  # no SAS secret leaks into messages


def test_no_permission_to_create_container(
    azurite: Azurite, new_container, tmp_path: Path
) -> None:
    """May write blobs in the container (a container SAS) but not create the container."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    container = new_container(azurite)
    sas = generate_container_sas(
        azurite.account, container, azurite.account_key,
        permission=ContainerSasPermissions(read=True, write=True, add=True, create=True,
                                           list=True, delete=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    store = _store(azurite, container, tmp_path,
                   storage_connection_string=f"BlobEndpoint={azurite.account_url};"
                   f"SharedAccessSignature={sas}")
    with pytest.raises(StoreError) as excinfo:
        store.append("logs/0.log", b"x")
    message = str(excinfo.value)
    assert f"container {container!r} does not exist" in message
    # No account-wide role suggested (issue 11, item 17): add-user makes the container.
    assert "aksrun admin add-user" in message and "on the account" not in message
    assert isinstance(excinfo.value, StoreAccessError)


def test_wrong_account_key_is_reported(azurite: Azurite, new_container, tmp_path: Path) -> None:
    wrong_key = "A" * 86 + "=="
    container = new_container(azurite, create=True)
    store = _store(azurite, container, tmp_path,
                   storage_connection_string=azurite.connection_string_with_key(wrong_key))
    started = time.monotonic()
    with pytest.raises(StoreError) as excinfo:
        store.put("k", b"data")
    assert time.monotonic() - started < 5  # a 403 is not retried
    message = str(excinfo.value)
    assert "refused" in message and "AKSRUN_STORAGE_CONNECTION_STRING" in message
    assert wrong_key not in message


def test_oauth_store_takes_the_workload_identity_path(
    workload_identity_env, new_container, tmp_path: Path
) -> None:
    oauth = workload_identity_env
    config = load_config(overrides={"storage_account_url": oauth.account_url}, cwd=str(tmp_path))
    assert config.storage_connection_string is None
    before = oauth.token_requests
    store = open_store(f"az://{new_container(oauth)}", config)
    store.put("k", b"via workload identity")
    assert bytes(store.get("k")) == b"via workload identity"
    assert oauth.token_requests > before
    last = oauth.entra.requests[-1]
    assert last.accepted
    assert last.tenant == oauth.env["AZURE_TENANT_ID"]
    assert last.client_id == oauth.env["AZURE_CLIENT_ID"]
    assert last.scope == "https://storage.azure.com/.default"
    assert last.assertion == oauth.token_file.read_text()  # the projected federated token


def test_rejected_identity_explains_credential_sources(
    workload_identity_env, new_container, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    oauth = workload_identity_env
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setattr(oauth.entra, "rejected_clients", {"11111111-2222-3333-4444-555555555555"})
    config = load_config(overrides={"storage_account_url": oauth.account_url}, cwd=str(tmp_path))
    store = open_store(f"az://{new_container(oauth)}", config)
    started = time.monotonic()
    with pytest.raises(StoreError) as excinfo:
        store.put("k", b"x")
    assert time.monotonic() - started < 10  # credential failures are not retried
    message = str(excinfo.value)
    for words in ("DefaultAzureCredential", "workload identity", "managed identity",
                  "Azure CLI", "az login", "AZURE_CLIENT_ID/AZURE_TENANT_ID"):
        assert words in message
    assert "AADSTS700016" in message  # the underlying reason is kept


def test_no_credential_at_all(
    workload_identity_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")  # nothing else tried
    config = load_config(
        overrides={"storage_account_url": workload_identity_env.account_url}, cwd=str(tmp_path)
    )
    store = open_store("az://no-credential", config)
    with pytest.raises(StoreError, match="az login") as excinfo:
        store.exists("k")
    assert "EnvironmentCredential" in str(excinfo.value)


def test_config_error_without_storage_account(tmp_path: Path) -> None:
    config = load_config(cwd=str(tmp_path))
    assert not (config.storage_account or config.storage_account_url)
    with pytest.raises(ConfigError) as excinfo:
        open_store("az://aksrun-alice", config)
    assert "AZURE_STORAGE_ACCOUNT" in str(excinfo.value)
    assert "AKSRUN_STORAGE_ACCOUNT_URL" in str(excinfo.value)


def test_account_name_gives_public_endpoint_without_network(tmp_path: Path) -> None:
    config = load_config(overrides={"storage_account": "acct1"}, cwd=str(tmp_path))
    store = open_store("az://aksrun-alice/some/prefix", config)
    assert isinstance(store, BlobStore)
    assert store.account_url == "https://acct1.blob.core.windows.net"
    assert store.url == "az://aksrun-alice/some/prefix"
    assert store.prefix == "some/prefix"


def test_account_url_setting_wins_over_account_name(tmp_path: Path) -> None:
    config = load_config(
        overrides={"storage_account": "acct1", "storage_account_url": "https://x.example/"},
        cwd=str(tmp_path),
    )
    assert open_store("az://c-1", config).account_url == "https://x.example"


@pytest.mark.parametrize("url", ["az://Bad_Name", "az://ab", "az://a--b", "az:///nothing"])
def test_invalid_container_name_is_a_config_error(url: str, tmp_path: Path) -> None:
    config = load_config(overrides={"storage_account": "acct1"}, cwd=str(tmp_path))
    with pytest.raises(ConfigError):
        open_store(url, config)


def test_from_url_loads_config_when_none_given(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AKSRUN_STORAGE_CONNECTION_STRING", azurite.connection_string)
    store = BlobStore.from_url("az://from-env")
    assert store.account_url == azurite.account_url


def test_get_reads_again_when_object_replaced_mid_download(
    azurite: Azurite, new_container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = new_container(azurite, create=True)
    store = BlobStore.from_url(
        f"az://{container}/p", store_config(azurite, tmp_path),
        max_single_get_size=64 * 1024, max_chunk_get_size=64 * 1024, max_concurrency=2,
    )
    old, new = b"o" * 300_000, b"n" * 300_000
    store.put("k", old)
    original_write = blob_store._BufferWriter.write
    replaced = []

    def write_then_replace(self, data):  # after the first chunk arrived, replace the blob
        if not replaced:
            replaced.append(True)
            azurite.service_client().get_blob_client(container, "p/k").upload_blob(
                new, overwrite=True
            )
        return original_write(self, data)

    monkeypatch.setattr(blob_store._BufferWriter, "write", write_then_replace)
    assert bytes(store.get("k")) == new  # If-Match failed (412) and the get started over


class FaultProxy:
    """Forwards to Azurite; answers the next `failures` requests with 503 Server Busy."""

    def __init__(self, upstream_port: int) -> None:
        self.failures = 0
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append(self.command)
                if proxy.failures > 0:
                    proxy.failures -= 1
                    self.send_response(503, "Server Busy")
                    self.send_header("x-ms-error-code", "ServerBusy")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    proxy = FaultProxy(azurite.port)
    yield proxy
    proxy.close()


def test_transient_errors_are_retried_and_logged(
    azurite: Azurite, fault_proxy: FaultProxy, new_container, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    container = new_container(azurite, create=True)
    via_proxy = azurite.connection_string.replace(
        f":{azurite.port}/", f":{fault_proxy.port}/"
    )
    config = load_config(overrides={"storage_connection_string": via_proxy}, cwd=str(tmp_path))
    store = BlobStore.from_url(f"az://{container}/p", config, retry_backoff=0)
    caplog.set_level(logging.DEBUG, logger="aksrun.store")
    fault_proxy.failures = 2
    store.put("k", b"survives two 503s")
    assert fault_proxy.seen[:3] == ["PUT", "PUT", "PUT"]
    retries = [r.getMessage() for r in caplog.records if r.name == "aksrun.store"]
    assert any(f"retry 1/{blob_store.RETRY_TOTAL} of PUT" in m and "HTTP 503" in m
               for m in retries), retries
    assert any(f"retry 2/{blob_store.RETRY_TOTAL} of PUT" in m for m in retries), retries
    assert not any("sig=" in m for m in retries)
    fault_proxy.failures = 1
    assert bytes(store.get("k")) == b"survives two 503s"


def test_import_does_not_load_azure() -> None:
    code = (
        "import sys, aksrun.adapters.blob_store\n"
        "print(sorted(m for m in sys.modules if m.startswith('azure')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
