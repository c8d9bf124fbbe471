"""The end-to-end suite runs on every backend set-up; each is only a set of environment
variables, exactly as a user would configure it."""

from __future__ import annotations

import pytest

from tests.support.targets import BACKENDS, configure_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    configure_backend(request.param, request, monkeypatch)
    return request.param
