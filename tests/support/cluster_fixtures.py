"""The cluster tier: aksrun against a REAL Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler built from the pinned upstream release, see
tests/support/k8s) whose one stand-in is the node agent playing the kubelet, with BlobStore on
Azurite. aksrun reaches it exactly as a user reaches a cluster: a kubeconfig and environment
variables. Every test signs in as a non-admin person who holds only aksrun's Role in a fresh
namespace of their own, so RBAC is the real thing too.

The control plane is built on first use (`make test` builds it beforehand and says so). If it
cannot be built or started, every cluster test errors with the step, the log and the fix:
there is no fallback to a fake.
"""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.images.session import TestImages
from tests.support.k8s.cluster import TestCluster
from tests.support.waiting import wait_for

USER = "tester@contoso.com"  # an Entra-style principal name, as AKS's Entra integration shows it
_STARTED: list[str] = []  # what the session's cluster and images said of themselves


def _say(pytestconfig: pytest.Config, line: str) -> None:
    """A line on the terminal now, even while output is captured (slow set-up says why)."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory,
                pytestconfig: pytest.Config) -> Iterator[TestImages]:
    """The session's registry (127.0.0.1, TLS), package index, base image and the runner
    image built from this client's aksrun (cached by its context's tag): what the pods run."""
    images = TestImages(tmp_path_factory.mktemp("images"))
    images.start(say=lambda text: _say(pytestconfig, text))
    assert images.runner is not None
    how = f"built in {images.runner.seconds:.0f} s" if images.runner.built else "cached"
    line = (f"images: runner {images.runner.reference} ({how}; set-up "
            f"{images.timings['total_s']:.1f} s)")
    _STARTED.append(line)
    _say(pytestconfig, line)
    try:
        yield images
    finally:
        images.stop()


@pytest.fixture(scope="session")
def runner_image(test_images: TestImages) -> str:
    """The runner image by digest, as aksrun references images in its Jobs."""
    assert test_images.runner is not None
    return test_images.runner.reference


@pytest.fixture(scope="session")
def test_cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config,
                 test_images: TestImages) -> Iterator[TestCluster]:
    # The session's temp dir is shared into the pods: tests observe a remote call's side
    # effects (a counter file, a marker) there, as they do on the local backend. Pods run
    # as uid 1000: it may pass through (not list) the dir; see `pod_writable`.
    tmp_path_factory.getbasetemp().chmod(0o711)
    cluster = TestCluster(tmp_path_factory.mktemp("cluster"),
                          shared_paths=(str(tmp_path_factory.getbasetemp()),),
                          registries=test_images.registry_clients(),
                          image_cache=test_images.layer_cache).start()
    line = (f"cluster tier: real kube-apiserver {cluster.version} at {cluster.url} "
            f"(node agent: {len(cluster.agent.node_names)} nodes, pods run in images of "
            f"{test_images.login_server})")
    _STARTED.insert(0, line)
    _say(pytestconfig, line)
    try:
        yield cluster
    finally:
        cluster.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """Say in every test report whether the cluster tier ran, and on which API server."""
    for line in _STARTED:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def control_plane(test_cluster: TestCluster) -> TestCluster:
    """The running test cluster (`.admin_kubeconfig`, `.agent`, `.control_plane`)."""
    return test_cluster


def pod_writable(directory: Path) -> Path:
    """`directory` (under the session's temp dir, which the pods see) made writable for the
    pods' uid 1000: pytest makes temp dirs 0700 for their owner, root here."""
    directory.chmod(0o1777)
    return directory


@dataclass
class ClusterSetup:
    cluster: TestCluster
    namespace: str
    kubeconfig: Path
    container: str
    user: str

    def admin_api(self, kind: str = "CoreV1Api"):
        """An admin client of the given API (e.g. 'BatchV1Api') for test assertions."""
        from kubernetes import client

        return getattr(client, kind)(self.cluster.admin_client())

    def pods(self, prefix: str = "") -> list[dict]:
        """This namespace's pods (as the API server returns them) whose name starts so."""
        api = self.admin_api()
        items = api.list_namespaced_pod(self.namespace).items
        sanitize = self.cluster.admin_client().sanitize_for_serialization
        return [sanitize(p) for p in items if p.metadata.name.startswith(prefix)]

    def jobs(self, live_only: bool = False) -> list[dict]:
        api = self.admin_api("BatchV1Api")
        sanitize = self.cluster.admin_client().sanitize_for_serialization
        jobs = [sanitize(j) for j in api.list_namespaced_job(self.namespace).items]
        return [j for j in jobs if not (live_only and j["metadata"].get("deletionTimestamp"))]

    @staticmethod
    def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
        return wait_for(predicate, timeout, interval)

    def running_pod(self, job_id: str, index: int = 0, timeout: float = 60.0) -> dict:
        return self.wait_for(lambda: next((
            p for p in self.pods(f"{job_id}-{index}-")
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")), None), timeout)

    def evict(self, pod_name: str) -> None:
        """Evict through the real Eviction API (what `kubectl drain` and node pressure use)."""
        self.admin_api().create_namespaced_pod_eviction(pod_name, self.namespace, {
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod_name, "namespace": self.namespace}})

    def kill(self, pod_name: str, sig: int = signal.SIGKILL) -> None:
        """The container's processes die (a crash, the kernel's OOM killer, a node fault)."""
        self.cluster.agent.kill(self.namespace, pod_name, sig)

    def requests(self) -> Counter:
        """(verb, resource) -> count of this test user's requests in this namespace, from
        the API server's audit log."""
        counts: Counter = Counter()
        for event in self.cluster.control_plane.audit_events(self.namespace):
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            counts[(event["verb"], resource)] += 1
        return counts


def use_cluster(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                validate_manifests: bool = True) -> ClusterSetup:
    """Point aksrun at the test cluster (a fresh namespace of a non-admin user with only
    aksrun's Role) and Azurite (a fresh container)."""
    cluster: TestCluster = request.getfixturevalue("test_cluster")
    image: str = request.getfixturevalue("runner_image")
    azurite = request.getfixturevalue("azurite")
    tmp = request.getfixturevalue("tmp_path")
    # Tests watch a remote call's side effects in their tmp_path, as on the local backend;
    # the pods run as uid 1000 in the real image.
    pod_writable(tmp)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    container = f"k8s-{uuid.uuid4().hex[:12]}"
    person = cluster.add_user_namespace(namespace, USER, tmp / "kubeconfig")
    request.addfinalizer(lambda: cluster.delete_namespace(namespace))
    for name, value in {
        "AKSRUN_BACKEND": "kubernetes",
        "KUBECONFIG": str(person.kubeconfig),
        "AKSRUN_NAMESPACE": namespace,
        "AKSRUN_IMAGE": image,
        "AKSRUN_STORE": f"az://{container}/aksrun",
        "AKSRUN_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }.items():
        monkeypatch.setenv(name, value)
    if validate_manifests:
        from aksrun.adapters import kubernetes_compute
        from tests.support.manifests import assert_valid_job

        real = kubernetes_compute.render_job

        def validated(*args, **kwargs):
            job = real(*args, **kwargs)
            assert_valid_job(job)
            return job

        monkeypatch.setattr(kubernetes_compute, "render_job", validated)
    return ClusterSetup(cluster, namespace, person.kubeconfig, container, USER)
