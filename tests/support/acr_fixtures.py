"""Pytest plugin: the whole image-building path of a real subscription, offline.

`acr_stack` (session) puts together what `aksrun image build` and `requirements=` talk to:
- the strict fake ARM (tests/support/fake_arm) with a registry whose ACR Tasks runs really
  build with buildah (tests/support/images' executor), upload and log blobs on Azurite;
- the ACR data-plane stand-in (tests/support/fake_acr) in front of the session's real
  distribution registry, so lookups go through the official ContainerRegistryClient;
- Entra ID as the fake token endpoint (DefaultAzureCredential's workload-identity path);
- a second package index with packages only tests need (`aksrun-testpkg`), beside the index
  of the runner's own wheels.
`acr_env` (function) applies the settings a user would have (`AZURE_CONTAINER_REGISTRY`, ...)
for one test and its subprocesses.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .azure_fixtures import OAuthAzurite
from .fake_acr.front import FakeAcrFront
from .fake_arm import FakeArm
from .fake_arm.builds import BuildJob, BuildResult, Executor
from .images.pypi import PackageIndex, serve_index, write_simple_index
from .images.session import TestImages

SUBSCRIPTION = "8a4e2f61-3c5d-4b7a-9e1f-0d2c3b4a5e6f"
RESOURCE_GROUP = "rg-aksrun-images"
REGISTRY = "aksrunacr"
TEST_PACKAGE = "aksrun-testpkg"
TEST_PACKAGE_VALUE = "imported inside the dependency image"


@dataclass
class AcrStack:
    images: TestImages
    front: FakeAcrFront
    arm: FakeArm
    extra_index: PackageIndex
    principal: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def registry_scope(self) -> str:
        return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                f"Microsoft.ContainerRegistry/registries/{REGISTRY}")

    def schedule_runs(self) -> int:
        return len(self.arm.calls("POST", "/scheduleRun"))


def make_test_wheel(directory: Path, name: str = TEST_PACKAGE, version: str = "1.0",
                    value: str = TEST_PACKAGE_VALUE) -> Path:
    """A pure-Python wheel made here, so a requirement resolves without any public index."""
    from wheel.wheelfile import WheelFile

    module = name.replace("-", "_")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / module).mkdir()
        (root / module / "__init__.py").write_text(f"VALUE = {value!r}\n")
        info = root / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n")
        (info / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: aksrun-tests\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        target = directory / f"{module}-{version}-py3-none-any.whl"
        with WheelFile(target, "w") as wheel:
            wheel.write_files(str(root))
    return target


def own_registry_access(executor: Executor, login_server: str, backend: str) -> Executor:
    """An ACR Tasks run pulls from its own registry with the registry's identity: here, the
    images the build names under the front's login server come straight from the backend."""

    def run(job: BuildJob) -> BuildResult:
        prefix = f"{login_server}/"
        job.build_args = {k: (f"{backend}/{v[len(prefix):]}" if v.startswith(prefix) else v)
                          for k, v in job.build_args.items()}
        return executor(job)

    return run


@pytest.fixture(scope="session")
def acr_stack(azurite_oauth: OAuthAzurite, test_images: TestImages,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcrStack]:
    cert, key = azurite_oauth.server.cert_file, azurite_oauth.server.key_file
    assert cert is not None and key is not None and test_images.registry is not None
    registry = test_images.registry
    principal = azurite_oauth.entra.client_id
    index_root = tmp_path_factory.mktemp("extra-index")
    (index_root / "files").mkdir()
    make_test_wheel(index_root / "files")
    write_simple_index(index_root)
    extra_index = serve_index(index_root)
    front = FakeAcrFront(registry.url, cert, key, tenant_id=azurite_oauth.entra.tenant_id,
                         backend_root=registry.storage, backend_ca=registry.cert_file).start()
    front.grant(principal, "AcrPull")
    arm = FakeArm(cert, key, storage=azurite_oauth,
                  executor=own_registry_access(test_images.executor, front.login_server,
                                               registry.login_server),
                  queue_delay=0.5)
    arm.add_subscription(SUBSCRIPTION, tenant_id=azurite_oauth.entra.tenant_id)
    arm.add_resource_group(SUBSCRIPTION, RESOURCE_GROUP, "westeurope")
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY, login_server=front.login_server)
    arm.start()
    stack = AcrStack(test_images, front, arm, extra_index, principal)
    arm.grant(principal, "Container Registry Tasks Contributor", stack.registry_scope)
    stack.env = {
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "AZURE_RESOURCE_GROUP": RESOURCE_GROUP,
        "AZURE_CONTAINER_REGISTRY": REGISTRY,
        "AKSRUN_REGISTRY_LOGIN_SERVER": front.login_server,
        "AKSRUN_ARM_ENDPOINT": arm.endpoint,
        "AKSRUN_ARM_AUDIENCE": "https://management.azure.com",
        "AKSRUN_BASE_IMAGE": test_images.base_ref,
        "AKSRUN_PIP_INDEX_URL": test_images.index.index_url if test_images.index else "",
        "AKSRUN_PIP_EXTRA_INDEX_URL": extra_index.index_url,
    }
    try:
        yield stack
    finally:
        arm.stop()
        front.stop()
        extra_index.stop()
    assert arm.server_errors == []


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
