"""Pytest plugin: `acr_stack` (session), the image-building path of a real subscription
offline (see tests/support/acr_stack.py), and `acr_env` (function), its settings applied for
one test and its subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .acr_stack import AcrStack
from .azure_fixtures import OAuthAzurite
from .images.session import TestImages


@pytest.fixture(scope="session")
def acr_stack(azurite_oauth: OAuthAzurite, test_images: TestImages,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcrStack]:
    cert, key = azurite_oauth.server.cert_file, azurite_oauth.server.key_file
    assert cert is not None and key is not None
    stack = AcrStack.start(test_images, cert, key, azurite_oauth.entra, azurite_oauth,
                           tmp_path_factory.mktemp("acr"))
    try:
        yield stack
    finally:
        stack.stop()
    assert stack.arm.server_errors == []


@pytest.fixture
def acr_env(acr_stack: AcrStack, workload_identity_env: OAuthAzurite,
            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AcrStack:
    """The stack's settings for one test (and its subprocesses), with a fresh AKSRUN_HOME so
    build locks and lookups start empty."""
    from aksrun.images.resolve import forget_known_images

    for name, value in acr_stack.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AKSRUN_HOME", str(tmp_path / "aksrun-home"))
    monkeypatch.setenv("AKSRUN_DOTENV", "0")
    forget_known_images()
    assert os.environ["AZURE_AUTHORITY_HOST"].startswith("https://127.0.0.1")
    return acr_stack
