"""Fixtures of the integration tests: real AKS, real Azure Storage, real ACR. Nothing here is
simulated, and nothing falls back to anything simulated: without a reachable cluster every
test in this directory is skipped, with the reason (see docs/INTEGRATION_TESTING.md).

- `real_aks_cluster` (session): the cluster, checked through `DefaultAzureCredential` and
  `ContainerServiceClient` (provisioning state Succeeded, not stopped). Skips every test when
  AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP or AZURE_AKS_CLUSTER_NAME is missing (before any
  credential is even constructed) or the cluster can't be reached.
- `ensure_kubeconfig` (session): the cluster-user kubeconfig from ARM, written to a private
  temporary file (0600), exported as KUBECONFIG for the session (so
  `kubernetes.config.load_kube_config()` and aksrun both use it) and restored afterwards;
  the Kubernetes API is checked with it. A kubeconfig written by `az aks get-credentials`
  (the CI workflow's fallback step) is used when ARM refuses. Fails the session's tests with
  the role to ask for when neither works.
- `debug_mode` (session, autouse): `--integration-debug` turns on DEBUG logs of aksrun, the
  Azure SDK and the kubernetes client.
- `artifact_collector` (from tests/support/artifacts.py): on failure, the job's pod logs, Job
  and pod manifests, the namespace's events about it and its store objects, in
  `integration-artifacts/<test-node-name>/`.
- `aks_target`: a `tests.scenarios.Target` for real AKS, with aksrun configured through the
  environment: AKSRUN_BACKEND=kubernetes (the kubeconfig above), AKSRUN_STORE=az://...,
  AZURE_STORAGE_ACCOUNT, AKSRUN_IMAGE (given, or derived from AZURE_CONTAINER_REGISTRY).
  The test's Jobs and store objects are removed afterwards.

With AKSRUN_REQUIRE_INTEGRATION=1 (set by the CI integration job), what would be a skip
fails instead, so the integration job can't pass by skipping.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.scenarios import Target
from tests.support import artifacts
from tests.support.artifacts import verbose_logging

# The artifact fixture, and the report hook that tells it the test failed, registered here.
artifact_collector = artifacts.artifact_collector
pytest_runtest_makereport = artifacts.pytest_runtest_makereport

INTEGRATION_VARS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_AKS_CLUSTER_NAME")
# aksrun settings a developer or CI may give for the real cluster. Read when this conftest is
# imported (after the root conftest loaded .env): the root conftest clears AKSRUN_* per test.
PASSED_THROUGH = ("AKSRUN_BACKEND", "AKSRUN_USER", "AKSRUN_NAMESPACE", "AKSRUN_STORE",
                  "AKSRUN_IMAGE", "AKSRUN_SERVICE_ACCOUNT", "AKSRUN_STORAGE_ACCOUNT_URL")
_AMBIENT = {name: os.environ[name] for name in PASSED_THROUGH if os.environ.get(name)}
_REQUIRED = os.environ.get("AKSRUN_REQUIRE_INTEGRATION") == "1"
DEFAULT_USER = "integration"  # namespace aksrun-integration, container aksrun-integration
JOB_TIMEOUT = 600.0  # one job, end to end: pods may wait for a node to scale up and an image pull
TEST_TIMEOUT = 1800  # pytest-timeout for one integration test (a scenario may run a few jobs)
CLUSTER_USER_ROLE = "Azure Kubernetes Service Cluster User Role"
K8S_ROLE = "Azure Kubernetes Service RBAC Writer"


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason; fail instead where integration is required (CI)."""
    if _REQUIRED:
        pytest.fail(f"integration tests are required (AKSRUN_REQUIRE_INTEGRATION=1): {reason}",
                    pytrace=False)
    pytest.skip(f"real AKS unavailable: {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents and item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture(autouse=True)
def _real_aks_only(request: pytest.FixtureRequest) -> None:
    """Every test here is an integration test, and none runs without the real cluster."""
    if request.node.get_closest_marker("integration") is None:
        pytest.fail(f"{request.node.nodeid} is in tests/integration but is not marked "
                    "@pytest.mark.integration.", pytrace=False)
    request.getfixturevalue("real_aks_cluster")


@pytest.fixture(scope="session", autouse=True)
def debug_mode(pytestconfig: pytest.Config) -> Iterator[bool]:
    """`--integration-debug`: DEBUG logs of aksrun, the Azure SDK and the kubernetes client,
    live on the terminal (and in the captured log of a failed test)."""
    debug = bool(pytestconfig.getoption("--integration-debug"))
    with verbose_logging(debug, pytestconfig) as enabled:
        yield enabled


@dataclass(frozen=True)
class AksCluster:
    subscription_id: str
    resource_group: str
    name: str
    credential: Any  # the session's DefaultAzureCredential
    client: Any  # ContainerServiceClient
    location: str | None
    kubernetes_version: str | None
    fqdn: str | None

    @property
    def where(self) -> str:
        return (f"AKS cluster {self.name!r} in resource group {self.resource_group!r} of "
                f"subscription {self.subscription_id}")

    @property
    def resource_id(self) -> str:
        from aksrun.adapters.azure.kubeconfig import cluster_resource_id

        return cluster_resource_id(self.subscription_id, self.resource_group, self.name)


@pytest.fixture(scope="session")
def real_aks_cluster(debug_mode: bool) -> AksCluster:
    missing = [name for name in INTEGRATION_VARS if not os.environ.get(name)]
    if missing:
        # Before any credential exists: with no identity configured, DefaultAzureCredential
        # would reach for the managed-identity endpoint.
        unavailable(f"{', '.join(missing)} not set (copy .env.example to .env, or export them)")
    subscription_id, resource_group, name = (os.environ[v] for v in INTEGRATION_VARS)

    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )
    from azure.mgmt.containerservice import ContainerServiceClient

    from aksrun.adapters.azure.credentials import default_credential, explain_auth_error

    credential = default_credential()
    client = ContainerServiceClient(credential, subscription_id, logging_enable=debug_mode)
    where = (f"AKS cluster {name!r} in resource group {resource_group!r} of subscription "
             f"{subscription_id}")
    try:
        cluster = client.managed_clusters.get(resource_group, name)
    except ClientAuthenticationError as exc:
        unavailable(f"could not sign in to Azure to reach {where}.\n{explain_auth_error(exc)}")
    except ResourceNotFoundError as exc:
        unavailable(f"{where} was not found; check AZURE_AKS_CLUSTER_NAME, AZURE_RESOURCE_GROUP "
                    f"and AZURE_SUBSCRIPTION_ID (`az aks list -o table`). Azure said: "
                    f"{_first_line(exc)}")
    except HttpResponseError as exc:
        hint = (" Your identity needs at least the Reader role on the cluster."
                if exc.status_code == 403 else "")
        unavailable(f"Azure refused to describe {where} (HTTP {exc.status_code}).{hint} "
                    f"Azure said: {_first_line(exc)}")
    except (ServiceRequestError, OSError) as exc:
        unavailable(f"could not reach Azure Resource Manager for {where}: {exc}")

    state = cluster.provisioning_state
    if state != "Succeeded":
        unavailable(f"{where} is in provisioning state {state!r}, not 'Succeeded'.")
    power = getattr(getattr(cluster, "power_state", None), "code", None)
    if power == "Stopped":
        unavailable(f"{where} is stopped; start it with `az aks start -g {resource_group} "
                    f"-n {name}`.")
    return AksCluster(subscription_id, resource_group, name, credential, client,
                      cluster.location, cluster.current_kubernetes_version or
                      cluster.kubernetes_version, cluster.fqdn or cluster.private_fqdn)


@pytest.fixture(scope="session")
def ensure_kubeconfig(real_aks_cluster: AksCluster,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from aksrun.adapters.azure.kubeconfig import fetch_kubeconfig, write_private_kubeconfig
    from aksrun.errors import AksrunError

    cluster = real_aks_cluster
    folder = tmp_path_factory.mktemp("kubeconfig")
    previous = os.environ.get("KUBECONFIG")
    refused: AksrunError | None = None
    try:
        data = fetch_kubeconfig(cluster.subscription_id, cluster.resource_group, cluster.name,
                                cluster.credential, client=cluster.client)
        path = Path(write_private_kubeconfig(data, str(folder)))
    except AksrunError as exc:
        refused = exc
    if refused is not None:
        fallback = _cli_kubeconfig(cluster.name, previous, folder)
        if fallback is None:
            message = f"ensure_kubeconfig: could not get the user credentials: {refused}"
            if CLUSTER_USER_ROLE not in message:
                message += (
                    f"\nThe identity running the tests needs the {CLUSTER_USER_ROLE!r} role on "
                    f"the cluster: az role assignment create --assignee <user or app id> "
                    f"--role {CLUSTER_USER_ROLE!r} --scope {cluster.resource_id}"
                )
            pytest.fail(message, pytrace=False)
        warnings.warn(f"ARM refused the cluster credentials ({refused}); using the kubeconfig "
                      "written by `az aks get-credentials` instead.", stacklevel=1)
        path = fallback
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} must be private (0600)"
    os.environ["KUBECONFIG"] = str(path)
    try:
        _check_kubernetes_api(path, cluster)
        yield path
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous


def _cli_kubeconfig(cluster_name: str, previous: str | None, folder: Path) -> Path | None:
    """A private copy of a kubeconfig `az aks get-credentials` wrote (its context is named
    after the cluster), made current; None when there is none."""
    import yaml

    from aksrun.adapters.azure.kubeconfig import write_private_kubeconfig

    candidates = [*(previous or "").split(os.pathsep), str(Path.home() / ".kube" / "config")]
    for candidate in filter(None, candidates):
        try:
            document = yaml.safe_load(Path(candidate).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(document, dict):
            continue
        names = {c.get("name") for c in document.get("contexts") or []}
        if cluster_name in names:
            document["current-context"] = cluster_name
            return Path(write_private_kubeconfig(yaml.safe_dump(document), str(folder)))
    return None


def _check_kubernetes_api(path: Path, cluster: AksCluster) -> None:
    """The kubeconfig really opens the API (Entra ID clusters: a token from
    DefaultAzureCredential for the AKS server application, as aksrun gets it)."""
    from kubernetes import client as k8s

    from aksrun.adapters.azure.kubeconfig import load_kubernetes_client

    try:
        k8s.VersionApi(load_kubernetes_client(path, cluster.credential)).get_code()
    except Exception as exc:
        pytest.fail(
            f"the kubeconfig of {cluster.where} does not open its Kubernetes API: "
            f"{type(exc).__name__}: {_first_line(exc)}\nOn clusters with Azure RBAC the "
            f"identity needs a Kubernetes role in the test namespace, e.g. {K8S_ROLE!r} "
            f"scoped to {cluster.resource_id}/namespaces/<namespace>; on other clusters a "
            "RoleBinding allowing jobs, pods, pods/log and events there.",
            pytrace=False,
        )


@pytest.fixture
def aks_target(real_aks_cluster: AksCluster, ensure_kubeconfig: Path,
               artifact_collector, monkeypatch: pytest.MonkeyPatch) -> Target:
    """aksrun configured for the real cluster through the environment, as a user would."""
    from aksrun.api import session
    from aksrun.core.config import load_config
    from aksrun.errors import ConfigError

    env = {"AKSRUN_BACKEND": "kubernetes", "AKSRUN_USER": DEFAULT_USER, **_AMBIENT,
           "KUBECONFIG": str(ensure_kubeconfig)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if not (os.environ.get("AZURE_STORAGE_ACCOUNT") or env.get("AKSRUN_STORAGE_ACCOUNT_URL")):
        unavailable("AZURE_STORAGE_ACCOUNT is not set: the tests need the storage account "
                    "aksrun's store lives in.")
    config = load_config()
    monkeypatch.setenv("AKSRUN_STORE", config.store_url)  # az://aksrun-<user> unless given
    if not config.image:
        # The runner image for this client, found in the registry (or built there with ACR
        # Tasks: `aksrun image build` in CI does it before the tests).
        from aksrun.errors import ImageBuildError
        from aksrun.images.resolve import Images

        try:
            monkeypatch.setenv("AKSRUN_IMAGE", Images(config).runner().reference)
        except (ConfigError, ImageBuildError) as exc:
            unavailable(str(exc))
    monkeypatch.setattr(session, "_cached", None)

    client = session.default_client()
    target = Target(
        name="aks", store=client.store, namespace=client.compute.namespace, client=client,
        cleanup=_remove_jobs, timeout=JOB_TIMEOUT,
        details={
            "cluster": real_aks_cluster.where,
            "kubernetes": real_aks_cluster.kubernetes_version,
            "image": os.environ["AKSRUN_IMAGE"],
            "kubeconfig": str(ensure_kubeconfig),
        },
    )
    return artifact_collector.track(target)


def _remove_jobs(target: Target) -> None:
    """The test's Jobs (and pods) and everything its jobs and scenarios left in the store."""
    from aksrun.errors import UnknownJobError

    for job_id in target.job_ids():
        try:
            target.client.remove(job_id)
        except UnknownJobError:
            pass
    target.store.delete(target.scratch())


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
