"""A fake ARM per test, on Azurite's HTTPS certificate, reached by the real SDK clients through
DefaultAzureCredential's workload-identity path (the fake Entra endpoint of `azurite_oauth`).

The fake's default is to deny: each test grants its identity what it needs, the way a
subscription owner would. `executor` is a tiny in-test builder (no containers): it records the
jobs it got, writes a few build-output lines, and succeeds, fails, raises or hangs on request.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.identity import DefaultAzureCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.storage.blob import BlobClient

from tests.support.azure_fixtures import OAuthAzurite
from tests.support.fake_arm import BuildJob, BuildResult, FakeArm
from tests.support.fake_arm.container_registry import Registry

SUBSCRIPTION = "6f1d2c3b-0a9e-4d8c-b7a6-5e4f3d2c1b0a"
RESOURCE_GROUP = "rg-aksrun"
REGISTRY = "aksrunacr"
TERMINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}


@dataclass
class FakeBuilder:
    """An executor: `mode` is "succeed", "fail", "raise" or "hang" (until cancelled)."""

    mode: str = "succeed"
    jobs: list[BuildJob] = field(default_factory=list)
    files: list[list[str]] = field(default_factory=list)  # the context each job saw
    dockerfiles: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    saw_cancel: threading.Event = field(default_factory=threading.Event)

    def __call__(self, job: BuildJob) -> BuildResult:
        self.jobs.append(job)
        self.files.append(sorted(
            str(p.relative_to(job.context_dir)) for p in job.context_dir.rglob("*") if p.is_file()
        ))
        dockerfile = (job.context_dir / job.dockerfile).read_text()
        self.dockerfiles.append(dockerfile)
        job.log("Sending build context to Docker daemon  2.048kB")
        job.log(f"Step 1/2 : {dockerfile.splitlines()[0]}")
        self.started.set()
        if self.mode == "hang":
            if job.cancelled.wait(30):
                self.saw_cancel.set()
            return BuildResult(False, [], "interrupted")
        if self.mode == "raise":
            raise RuntimeError("the builder fell over")
        if self.mode == "fail":
            job.log("The command '/bin/sh -c false' returned a non-zero code: 1")
            return BuildResult(False, [], "exit status 1")
        digest = "sha256:" + hashlib.sha256(dockerfile.encode()).hexdigest()
        job.log(f"Successfully built {digest[7:19]}")
        images = []
        for name in job.image_names:
            repository, _, tag = name.partition(":")
            images.append((repository, tag or "latest", digest))
        return BuildResult(True, images)


@pytest.fixture
def builder() -> FakeBuilder:
    return FakeBuilder()


@pytest.fixture
def identity(workload_identity_env: OAuthAzurite) -> OAuthAzurite:
    return workload_identity_env


@pytest.fixture
def client_id(identity: OAuthAzurite) -> str:
    """The app id in every token the fake Entra issues to DefaultAzureCredential."""
    return identity.entra.client_id


@pytest.fixture
def arm(identity: OAuthAzurite, builder: FakeBuilder) -> Iterator[FakeArm]:
    server = identity.server
    assert server.cert_file is not None and server.key_file is not None
    fake = FakeArm(
        server.cert_file, server.key_file, storage=identity, executor=builder,
        queue_delay=0.05, cancel_grace=2.0,
    )
    fake.add_subscription(SUBSCRIPTION, tenant_id=identity.entra.tenant_id)
    fake.add_resource_group(SUBSCRIPTION, RESOURCE_GROUP, "westeurope")
    with fake:
        yield fake
    assert fake.server_errors == []


@pytest.fixture
def registry(arm: FakeArm) -> Registry:
    return arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)


def management_client(arm: FakeArm, **kwargs: Any) -> ContainerRegistryManagementClient:
    """The SDK's client as aksrun builds it: DefaultAzureCredential, base_url, scopes."""
    kwargs.setdefault("credential_scopes", arm.credential_scopes)
    subscription = kwargs.pop("subscription", SUBSCRIPTION)
    return ContainerRegistryManagementClient(
        DefaultAzureCredential(), subscription, base_url=arm.endpoint, **kwargs
    )


def arm_client(arm: FakeArm, client_cls: type, **kwargs: Any) -> Any:
    """Any `*ManagementClient` as aksrun builds it, polling LROs every 50 ms unless the fake
    sends Retry-After (the SDK's default interval is 30 s)."""
    kwargs.setdefault("credential_scopes", arm.credential_scopes)
    kwargs.setdefault("polling_interval", 0.05)
    subscription = kwargs.pop("subscription", SUBSCRIPTION)
    return client_cls(DefaultAzureCredential(), subscription, base_url=arm.endpoint, **kwargs)


def caller_object_id(client_id: str) -> str:
    """The `oid` the session's fake Entra puts in the test identity's tokens."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))


def rg_scope(subscription: str = SUBSCRIPTION, group: str = RESOURCE_GROUP) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def error_code(exc: BaseException) -> str | None:
    """ARM's error code of an HttpResponseError."""
    error = getattr(exc, "error", None)
    return getattr(error, "code", None)


def tasks_client(arm: FakeArm, **kwargs: Any) -> ContainerRegistryManagementClient:
    """The client `az acr build` uses for ACR Tasks: api-version 2019-06-01-preview."""
    return management_client(arm, api_version="2019-06-01-preview", **kwargs)


def context_tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload_context(tasks: ContainerRegistryManagementClient, files: dict[str, str]) -> str:
    """What `az acr build` does with a local folder: upload a tar.gz to the SAS URL."""
    source = tasks.registries.get_build_source_upload_url(RESOURCE_GROUP, REGISTRY)
    blob = BlobClient.from_blob_url(source.upload_url)
    blob.upload_blob(context_tar(files), blob_type="BlockBlob", overwrite=True)
    return source.relative_path


def wait_for_run(
    tasks: ContainerRegistryManagementClient, run_id: str, timeout: float = 20.0,
    until: Callable[[Any], bool] | None = None,
) -> Any:
    """Poll runs.get as az's RunPolling does (faster), until the run ends (or `until(run)`)."""
    done = until or (lambda run: run.status in TERMINAL)
    deadline = time.monotonic() + timeout
    while True:
        run = tasks.runs.get(RESOURCE_GROUP, REGISTRY, run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status} after {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def context_files() -> dict[str, str]:
    return {
        "app/main.py": "print('hello')\n",
        "0f3c_Dockerfile": "FROM localhost/python:3.11\nCOPY app /app\n",
    }

