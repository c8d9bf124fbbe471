"""`requirements=` from the first call to the value: the dependency image is found or built
with ACR Tasks (fake ARM, buildah), the Job names it by digest, the node pulls it from the
registry and the function imports the package inside it. And a requirement pip can't install
fails the call, typed, before anything is uploaded or any Job exists."""

from __future__ import annotations

import os

import pytest

import aksrun
from aksrun.errors import ImageBuildError, RequirementsError
from tests.support.acr_stack import TEST_PACKAGE, TEST_PACKAGE_VALUE
from tests.support.cluster_fixtures import use_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


@aksrun.function(requirements=[f"{TEST_PACKAGE}==1.0"], cpu="100m", memory="256Mi")
def package_value() -> str:
    import aksrun_testpkg

    return aksrun_testpkg.VALUE


@aksrun.function(requirements=["aksrun-no-such-package==9.9"], cpu="100m", memory="256Mi")
def never_runs() -> None:
    raise AssertionError("a function whose image can't be built must never run")


@pytest.fixture
def cluster_with_registry(request, monkeypatch, acr_env):
    """The test cluster, with aksrun finding its images in the ACR stand-in (no AKSRUN_IMAGE:
    the runner, too, comes from the registry) and the nodes pulling what it names."""
    from aksrun.api import session

    setup = use_cluster(request, monkeypatch)
    monkeypatch.delenv("AKSRUN_IMAGE")
    monkeypatch.setattr(session, "_cached", None)
    store = setup.cluster.agent.image_store
    store.registries[acr_env.front.login_server] = acr_env.node_registry()
    request.addfinalizer(lambda: store.registries.pop(acr_env.front.login_server, None))
    return setup


def test_requirements_build_an_image_the_call_runs_in(cluster_with_registry, acr_env):
    assert package_value() == TEST_PACKAGE_VALUE
    jobs = cluster_with_registry.jobs()
    assert len(jobs) == 1
    image = jobs[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith(f"{acr_env.front.login_server}/aksrun-env@sha256:")
    # The next submission in this process finds the image without asking the registry.
    lookups = acr_env.front.count(prefix="/acr/")
    assert package_value.submit().result(timeout=300) == TEST_PACKAGE_VALUE
    assert acr_env.front.count(prefix="/acr/") == lookups


def test_a_requirement_pip_cannot_install_fails_before_any_job(cluster_with_registry):
    with pytest.raises(RequirementsError) as info:
        never_runs()
    assert "No matching distribution found for aksrun-no-such-package==9.9" in str(info.value)
    assert isinstance(info.value, ImageBuildError)
    assert cluster_with_registry.jobs() == []
    # Nothing was written to the store either (the image is resolved before any upload).
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(
        os.environ["AKSRUN_STORAGE_CONNECTION_STRING"], cluster_with_registry.container)
    assert not container.exists() or list(container.list_blob_names()) == []
