"""Pytest fixtures for the fake ACR: import them in a conftest (`from ...fixtures import *`)
or list this module in the root conftest's `pytest_plugins`.

- `acr_tls` (session): a self-signed certificate for 127.0.0.1 and a CA bundle trusting it.
- `acr_entra` (session): a `FakeEntra` token endpoint on that certificate, plus the
  federated token file an AKS pod would have.
- `acr_identity` (function): the workload-identity variables set for one test, so
  `DefaultAzureCredential()` gets Entra tokens from `acr_entra` (and trusts the front).
- `acr_backend` (function): a fresh `docker-registry` for one test, so a catalog is exact.
- `fake_acr` (function): a started `FakeAcrFront` over `acr_backend`, with no role granted.

No `docker-registry` binary: tests that need it are skipped with the fix, or fail when
`CI=true`, so CI cannot pass by skipping.

Tests that already use `workload_identity_env` (Azurite's OAuth set-up) can skip these
and build `FakeAcrFront(backend.url, azurite_oauth.server.cert_file,
azurite_oauth.server.key_file, tenant_id=azurite_oauth.entra.tenant_id, backend_root=...)`:
that CA bundle already trusts the certificate.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from ..azurite import AzuriteError, make_self_signed_cert, write_ca_bundle
from ..fake_entra import FakeEntra
from .backend import FIX, DistributionRegistry, RegistryUnavailable, start_registry
from .front import FakeAcrFront

# Variables that would make DefaultAzureCredential take another path than workload identity.
_COMPETING_VARS = (
    "AZURE_TOKEN_CREDENTIALS", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD",
)


@dataclass(frozen=True)
class AcrTls:
    cert_file: Path
    key_file: Path
    ca_bundle: Path


@dataclass(frozen=True)
class AcrEntra:
    """The fake Entra endpoint and the workload-identity settings pointing at it."""

    entra: FakeEntra
    token_file: Path
    ca_bundle: Path

    @property
    def tenant_id(self) -> str:
        return self.entra.tenant_id

    @property
    def client_id(self) -> str:
        return self.entra.client_id

    @staticmethod
    def object_id(client_id: str) -> str:
        """The `oid` FakeEntra puts in tokens for this client id."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))

    def env(self, client_id: str | None = None) -> dict[str, str]:
        env = self.entra.workload_identity_env(self.token_file, self.ca_bundle)
        if client_id is not None:
            env["AZURE_CLIENT_ID"] = client_id
        return env


def registry_unavailable(reason: str) -> NoReturn:
    """Skip with the fix, or fail in CI (where a skipped registry suite must not look green)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"docker-registry is required in CI: {reason}", pytrace=False)
    pytest.skip(f"docker-registry unavailable: {reason}" + ("" if FIX in reason else f" ({FIX})"))


@pytest.fixture(scope="session")
def acr_tls(tmp_path_factory: pytest.TempPathFactory) -> AcrTls:
    folder = tmp_path_factory.mktemp("fake-acr-tls")
    try:
        cert, key = make_self_signed_cert(folder)
    except AzuriteError as exc:
        pytest.fail(str(exc), pytrace=False)
    return AcrTls(cert, key, write_ca_bundle(cert, folder / "ca-bundle.pem"))


@pytest.fixture(scope="session")
def acr_entra(acr_tls: AcrTls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcrEntra]:
    folder = tmp_path_factory.mktemp("fake-acr-entra")
    token_file = folder / "federated-token"  # what the kubelet projects into an AKS pod
    token_file.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.")
    entra = FakeEntra(acr_tls.cert_file, acr_tls.key_file).start()
    entra.expected_assertion = token_file.read_text()
    try:
        yield AcrEntra(entra, token_file, acr_tls.ca_bundle)
    finally:
        entra.stop()


@pytest.fixture
def acr_identity(acr_entra: AcrEntra, monkeypatch: pytest.MonkeyPatch) -> AcrEntra:
    for name in _COMPETING_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in acr_entra.env().items():
        monkeypatch.setenv(name, value)
    return acr_entra


@pytest.fixture
def acr_backend(tmp_path: Path) -> Iterator[DistributionRegistry]:
    try:
        registry = start_registry(tmp_path / "registry")
    except RegistryUnavailable as exc:
        registry_unavailable(str(exc))
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def fake_acr(
    acr_backend: DistributionRegistry, acr_tls: AcrTls, acr_entra: AcrEntra
) -> Iterator[FakeAcrFront]:
    with FakeAcrFront(
        acr_backend.url, acr_tls.cert_file, acr_tls.key_file, tenant_id=acr_entra.tenant_id,
        backend_root=acr_backend.root,
    ) as front:
        yield front
