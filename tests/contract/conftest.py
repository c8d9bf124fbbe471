"""The store contract runs on three set-ups: LocalStore, BlobStore on Azurite through a
connection string, and BlobStore on Azurite over HTTPS reached through DefaultAzureCredential's
workload-identity path. BlobStores are opened the way aksrun opens them: `open_store(url,
load_config(...))`.

The Azurite fixtures come from the `tests.support.azure_fixtures` plugin (listed in the root
conftest's `pytest_plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aksrun.adapters.local_store import LocalStore
from aksrun.core.backends import open_store
from aksrun.core.config import Config, load_config
from aksrun.ports.store import Store

KINDS = (
    "local",
    pytest.param("azurite", marks=pytest.mark.azurite),
    pytest.param("azurite-oauth", marks=pytest.mark.azurite),
)

# Small enough that a few MiB go through parallel blocks and chunked downloads.
SMALL_BLOCKS = {
    "max_single_put_size": 256 * 1024,
    "max_block_size": 256 * 1024,
    "max_single_get_size": 256 * 1024,
    "max_chunk_get_size": 256 * 1024,
    "max_concurrency": 4,
}


@dataclass
class StoreSetup:
    """One way of getting a store; `open()` gives a store, `open(**tuning)` a tuned one."""

    kind: str
    tmp_path: Path
    server: Any = None  # Azurite | OAuthAzurite
    container: str | None = None
    config: Config | None = None

    @property
    def is_blob(self) -> bool:
        return self.server is not None

    def open(self, prefix: str = "contract", **tuning: Any) -> Store:
        if not self.is_blob:
            return LocalStore(self.tmp_path / "store" / prefix)
        url = f"az://{self.container}/{prefix}"
        if not tuning:
            return open_store(url, self.config)
        from aksrun.adapters.blob_store import BlobStore

        return BlobStore.from_url(url, self.config, **tuning)

    def committed_blocks(self, key: str, prefix: str = "contract") -> int | None:
        """How many blocks a blob was committed with (None for LocalStore)."""
        if not self.is_blob:
            return None
        blob = self.server.service_client().get_blob_client(self.container, f"{prefix}/{key}")
        committed, _uncommitted = blob.get_block_list("committed")
        return len(committed)


@pytest.fixture(params=KINDS)
def store_setup(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSetup:
    kind = request.param
    if kind == "local":
        return StoreSetup(kind, tmp_path)
    new_container = request.getfixturevalue("new_container")
    if kind == "azurite":
        server = request.getfixturevalue("azurite")
        overrides = {"storage_connection_string": server.connection_string}
    else:
        server = request.getfixturevalue("workload_identity_env")
        overrides = {"storage_account_url": server.account_url}
    config = load_config(overrides=overrides, cwd=str(tmp_path))
    if kind == "azurite-oauth":
        assert config.storage_connection_string is None  # really the credential path
    return StoreSetup(kind, tmp_path, server, new_container(server), config)


@pytest.fixture
def store(store_setup: StoreSetup) -> Store:
    return store_setup.open()
