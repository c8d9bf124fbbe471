"""Backend set-ups the end-to-end suite runs on: each is only environment variables, exactly
what a user would set, so the suite exercises the real configuration path."""

from __future__ import annotations

import uuid

import pytest

BACKENDS = ["local", "local-blob", "kubernetes"]


def configure_backend(name: str, request: pytest.FixtureRequest,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "local":
        monkeypatch.setenv("AKSRUN_BACKEND", "local")
        return
    if name == "local-blob":
        azurite = request.getfixturevalue("azurite")
        monkeypatch.setenv("AKSRUN_BACKEND", "local")
        monkeypatch.setenv("AKSRUN_STORE", f"az://e2e-{uuid.uuid4().hex[:12]}/aksrun")
        monkeypatch.setenv("AKSRUN_STORAGE_CONNECTION_STRING", azurite.connection_string)
        return
    if name == "kubernetes":
        from tests.support.cluster_fixtures import use_cluster

        use_cluster(request, monkeypatch)
        return
    raise ValueError(f"unknown backend set-up {name!r}")
