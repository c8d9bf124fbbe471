"""Test-session set-up shared by every tier.

1. `.env` is loaded first (python-dotenv), never overriding variables already set, with one
   warning naming what is missing, then ambient credentials are used (az login, environment).
2. No test sends traffic off 127.0.0.1: pytest-socket blocks non-loopback connects
   in-process, and every test but the real-Azure ones runs with fake identity settings
   (`AZURE_TOKEN_CREDENTIALS=dev`, no service-principal variables), so neither this process
   nor the runner processes it starts ever reach for the managed-identity endpoint.
3. Every test gets its own AKSRUN_HOME and a clean aksrun environment.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION_VARS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_AKS_CLUSTER_NAME")
CI_IDENTITY_VARS = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")
OPTIONAL_VARS = ("AZURE_STORAGE_ACCOUNT", "AZURE_CONTAINER_REGISTRY")
_IDENTITY_VARS = (
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_USERNAME", "AZURE_PASSWORD",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
)


def _load_dotenv() -> None:
    from dotenv import load_dotenv

    env_file = ROOT / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)
    missing = [v for v in INTEGRATION_VARS if not os.environ.get(v)]
    if not env_file.is_file() or missing:
        what = "no .env file" if not env_file.is_file() else f".env lacks {', '.join(missing)}"
        warnings.warn(
            f"{what}: falling back to ambient credentials (az login, environment variables). "
            "Integration tests need AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and "
            "AZURE_AKS_CLUSTER_NAME; copy .env.example to .env to set them.",
            stacklevel=1,
        )


_load_dotenv()  # before anything else reads the environment


def _take_ctrl_c_as_a_terminal_does() -> None:
    """The Ctrl+C tests signal this process and the clients it starts. A run started in the
    background by a non-interactive shell (`make test &`, `nohup`) inherits SIGINT ignored,
    Python then installs no KeyboardInterrupt handler, and every child inherits the ignore:
    the tests would wait out their jobs. Restore what an interactive session has."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_take_ctrl_c_as_a_terminal_does()
AZURE_CONFIGURED = all(os.environ.get(v) for v in INTEGRATION_VARS)

pytest_plugins = [
    "tests.support.azure_fixtures",
    "tests.support.cluster_fixtures",
    "tests.support.acr_fixtures",
    "tests.support.artifacts",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--integration-debug", action="store_true", default=False,
        help="Verbose logging of aksrun, the Azure SDK and the kubernetes client "
        "in integration tests.",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") and AZURE_CONFIGURED:
            item.add_marker(pytest.mark.enable_socket)  # real Azure is the point of these


@pytest.fixture(autouse=True)
def _isolated_aksrun(request: pytest.FixtureRequest, tmp_path_factory, monkeypatch) -> None:
    """A clean aksrun environment per test; fake identity except for real-Azure tests."""
    for name in list(os.environ):
        # aksrun's own settings are cleared; the test infrastructure's (AKSRUN_K8S_*,
        # AKSRUN_IMAGES_*: where the control plane and the image toolchain are cached) are
        # not aksrun configuration and stay.
        if name.startswith("AKSRUN_") and not name.startswith(("AKSRUN_K8S_", "AKSRUN_IMAGES_")):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("aksrun-home")
    monkeypatch.setenv("AKSRUN_HOME", str(home))
    monkeypatch.setenv("AKSRUN_USER", "tester")
    if request.node.get_closest_marker("integration"):
        return
    # A developer's real .env and cluster must not reach tests that promise to stay local.
    monkeypatch.setenv("AKSRUN_DOTENV", "0")
    for name in (*INTEGRATION_VARS, *OPTIONAL_VARS, *_IDENTITY_VARS, "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    if "azurite_oauth" not in request.fixturenames:
        monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
    from aksrun.api import session

    monkeypatch.setattr(session, "_cached", None)
