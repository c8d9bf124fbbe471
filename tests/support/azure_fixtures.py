"""Pytest plugin: Azurite and a fake Entra ID endpoint for the test session.

Fixtures:
- `azurite` (session): Azurite over HTTP with the well-known dev account; yields
  `tests.support.azurite.Azurite` (.connection_string, .account_url, .blob_url_for(c),
  .service_client(), .env()).
- `azurite_oauth` (session): Azurite over HTTPS with `--oauth basic`, plus the fake token
  endpoint, with the workload-identity variables set in `os.environ` (so subprocesses get
  them too) for the rest of the session and restored at its end; yields `OAuthAzurite`.
- `workload_identity_env` (function): `azurite_oauth` with its variables applied again for
  one test through `monkeypatch` (the root conftest resets identity variables per test, so
  tests that use the OAuth Azurite request this one).
- `new_container` (function): a factory `new_container(server, create=False) -> name` of
  fresh, unique container names; the containers are deleted after the test.
- `azurite_env` (function): `AKSRUN_STORAGE_CONNECTION_STRING` for the connection-string
  Azurite, set for one test (and its subprocesses).

No Azurite binary (or it won't start): the tests that need it are skipped with the fix, or
fail when `CI=true`, so CI can't pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from .azurite import FIX, Azurite, AzuriteError, start_azurite, write_ca_bundle
from .fake_entra import FakeEntra

# Variables that would make DefaultAzureCredential take another path than workload identity.
_COMPETING_IDENTITY_VARS = (
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AKSRUN_STORAGE_CONNECTION_STRING",
)


class EnvPatch:
    """Like monkeypatch.setenv/delenv, but usable from session fixtures; `undo()` restores."""

    def __init__(self) -> None:
        self._saved: list[tuple[str, str | None]] = []

    def set(self, name: str, value: str) -> None:
        self._saved.append((name, os.environ.get(name)))
        os.environ[name] = value

    def delete(self, name: str) -> None:
        self._saved.append((name, os.environ.get(name)))
        os.environ.pop(name, None)

    def undo(self) -> None:
        while self._saved:
            name, value = self._saved.pop()
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class OAuthAzurite:
    """Azurite in OAuth/HTTPS mode and the token endpoint DefaultAzureCredential reaches."""

    server: Azurite
    entra: FakeEntra
    token_file: Path
    ca_bundle: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def account_url(self) -> str:
        return self.server.account_url

    @property
    def connection_string(self) -> str:
        return self.server.connection_string

    @property
    def https(self) -> bool:
        return True

    @property
    def token_requests(self) -> int:
        return self.entra.token_requests

    def blob_url_for(self, container: str) -> str:
        return self.server.blob_url_for(container)

    def service_client(self, **kwargs: object):  # -> azure.storage.blob.BlobServiceClient
        return self.server.service_client(**kwargs)


def azurite_unavailable(reason: str) -> NoReturn:
    """Skip with the fix, or fail in CI (where a skipped storage suite must not look green)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Azurite is required in CI: {reason}", pytrace=False)
    fix = "" if FIX in reason else f" (fix: {FIX})"
    pytest.skip(f"Azurite unavailable: {reason}{fix}")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    try:
        server = start_azurite(tmp_path_factory.mktemp("azurite"))
    except AzuriteError as exc:
        azurite_unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite_oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthAzurite]:
    folder = tmp_path_factory.mktemp("azurite-oauth")
    try:
        server = start_azurite(folder, oauth=True)
    except AzuriteError as exc:
        azurite_unavailable(str(exc))
    assert server.cert_file is not None and server.key_file is not None
    entra = FakeEntra(server.cert_file, server.key_file).start()
    token_file = folder / "federated-token"  # what the kubelet projects into an AKS pod
    token_file.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.")
    entra.expected_assertion = token_file.read_text()
    ca_bundle = write_ca_bundle(server.cert_file, folder / "ca-bundle.pem")
    env = entra.workload_identity_env(token_file, ca_bundle)
    patch = EnvPatch()
    for name in _COMPETING_IDENTITY_VARS:
        patch.delete(name)
    for name, value in env.items():
        patch.set(name, value)
    try:
        yield OAuthAzurite(server, entra, token_file, ca_bundle, env)
    finally:
        patch.undo()
        entra.stop()
        server.stop()


@pytest.fixture
def workload_identity_env(
    azurite_oauth: OAuthAzurite, monkeypatch: pytest.MonkeyPatch
) -> OAuthAzurite:
    for name in _COMPETING_IDENTITY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in azurite_oauth.env.items():
        monkeypatch.setenv(name, value)
    return azurite_oauth


@pytest.fixture
def new_container() -> Iterator[Callable[..., str]]:
    made: list[tuple[Azurite | OAuthAzurite, str]] = []

    def make(server: Azurite | OAuthAzurite, create: bool = False) -> str:
        name = f"t-{uuid.uuid4().hex[:20]}"
        if create:
            server.service_client().create_container(name)
        made.append((server, name))
        return name

    yield make
    for server, name in made:
        with contextlib.suppress(Exception):
            server.service_client().delete_container(name)


@pytest.fixture
def azurite_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    for name, value in azurite.env().items():
        monkeypatch.setenv(name, value)
    return azurite
