"""The simulated AKS: a strict fake Kubernetes API server (its kubelet runs the real runner as
subprocesses) with BlobStore on Azurite as the store, reached exactly as a user reaches a
cluster: a kubeconfig and environment variables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fake_k8s import FakeCluster

RUNNER_IMAGE = "aksrunacr.azurecr.io/aksrun-runner:py3-test"


@pytest.fixture(scope="session")
def fake_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCluster]:
    cluster = FakeCluster(failing_images={"aksrunacr.azurecr.io/does-not-exist:1"}).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class ClusterSetup:
    cluster: FakeCluster
    namespace: str
    kubeconfig: Path
    container: str


def use_fake_cluster(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                     validate_manifests: bool = True) -> ClusterSetup:
    """Point aksrun at the fake cluster (a fresh namespace) and Azurite (a fresh container)."""
    cluster: FakeCluster = request.getfixturevalue("fake_cluster")
    azurite = request.getfixturevalue("azurite")
    tmp = request.getfixturevalue("tmp_path")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    container = f"k8s-{uuid.uuid4().hex[:12]}"
    kubeconfig = tmp / "kubeconfig"
    cluster.write_kubeconfig(kubeconfig, namespace=namespace)
    for name, value in {
        "AKSRUN_BACKEND": "kubernetes",
        "KUBECONFIG": str(kubeconfig),
        "AKSRUN_NAMESPACE": namespace,
        "AKSRUN_IMAGE": RUNNER_IMAGE,
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
    return ClusterSetup(cluster, namespace, kubeconfig, container)
