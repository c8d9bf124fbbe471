"""The fake ACR's fixtures, for its own tests (tests/support/fake_acr/fixtures.py)."""

from tests.support.fake_acr.fixtures import (  # noqa: F401  (pytest finds fixtures by name)
    acr_backend,
    acr_entra,
    acr_identity,
    acr_tls,
    fake_acr,
)
