"""aksrun's ACR Tasks client against the strict fake ARM (tests/support/fake_arm), with a
scripted executor: the builds' outcomes are chosen per test, the protocol is the real one.
The real builds (buildah, a registry, the node running the image) are in tests/images."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.azure_fixtures import OAuthAzurite
from tests.support.fake_arm import BuildJob, BuildResult, FakeArm

SUBSCRIPTION = "3c1f9a0e-5b7d-4e2a-9c8b-1d2e3f4a5b6c"
RESOURCE_GROUP = "rg-images"
REGISTRY = "aksrunimages"
LOGIN_SERVER = "aksrunimages.azurecr.io"


@dataclass
class ScriptedBuilder:
    """Writes `lines` to the run log, then succeeds (or fails, or waits to be cancelled)."""

    lines: list[str] = field(default_factory=lambda: ["Step 1/6 : FROM base", "ok"])
    mode: str = "succeed"
    jobs: list[BuildJob] = field(default_factory=list)
    contexts: list[list[str]] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def __call__(self, job: BuildJob) -> BuildResult:
        self.jobs.append(job)
        self.contexts.append(sorted(str(p.relative_to(job.context_dir))
                                    for p in job.context_dir.rglob("*") if p.is_file()))
        for line in self.lines:
            job.log(line)
        if self.mode == "hang":
            if job.cancelled.wait(60):
                self.cancelled.set()
            return BuildResult(False, [], "interrupted")
        if self.mode == "fail":
            return BuildResult(False, [], "exit status 1")
        digest = "sha256:" + hashlib.sha256(repr(job.build_args).encode()).hexdigest()
        return BuildResult(True, [(*name.split(":", 1), digest) for name in job.image_names])


@pytest.fixture
def builder() -> ScriptedBuilder:
    return ScriptedBuilder()


@pytest.fixture
def arm(workload_identity_env: OAuthAzurite, builder: ScriptedBuilder) -> Iterator[FakeArm]:
    server = workload_identity_env.server
    assert server.cert_file is not None and server.key_file is not None
    fake = FakeArm(server.cert_file, server.key_file, storage=workload_identity_env,
                   executor=builder, queue_delay=0.05, cancel_grace=2.0)
    fake.add_subscription(SUBSCRIPTION, tenant_id=workload_identity_env.entra.tenant_id)
    fake.add_resource_group(SUBSCRIPTION, RESOURCE_GROUP, "westeurope")
    with fake:
        yield fake
    assert fake.server_errors == []


@pytest.fixture
def principal(workload_identity_env: OAuthAzurite) -> str:
    return workload_identity_env.entra.client_id


@pytest.fixture
def registry_scope() -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.ContainerRegistry/registries/{REGISTRY}")


def config_for(arm: FakeArm, **overrides):
    from aksrun.core.config import load_config

    values = {
        "subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP,
        "registry": REGISTRY, "arm_endpoint": arm.endpoint,
        "arm_audience": "https://management.azure.com", "backend": "kubernetes",
        **overrides,
    }
    return load_config(values)
