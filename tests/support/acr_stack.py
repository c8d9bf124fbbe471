"""The image-building path of a real subscription, offline, for tests and `make cluster-up`.

`AcrStack.start(images, cert, key, entra, storage)` puts together what `aksrun image build`
and `requirements=` talk to:
- the strict fake ARM (tests/support/fake_arm) with a registry whose ACR Tasks runs really
  build with buildah (tests/support/images' executor); upload and log blobs on `storage`
  (an Azurite);
- the ACR data-plane stand-in (tests/support/fake_acr) in front of the session's real
  distribution registry, so lookups go through the official ContainerRegistryClient;
- Entra ID as the fake token endpoint (DefaultAzureCredential's workload-identity path);
- a second package index with packages only tests need (`aksrun-testpkg`), beside the index
  of the runner's own wheels.
`.env` holds the settings a user would have (`AZURE_CONTAINER_REGISTRY`, ...).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fake_acr.front import FakeAcrFront
from .fake_arm import FakeArm
from .fake_arm.builds import BuildJob, BuildResult, Executor
from .fake_entra import FakeEntra
from .images.distribution import RegistryClient
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
    owns_arm: bool = True
    subscription: str = SUBSCRIPTION
    resource_group: str = RESOURCE_GROUP
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, images: TestImages, cert: Path, key: Path, entra: FakeEntra,
              storage: Any, workdir: Path, *, arm: FakeArm | None = None,
              subscription: str = SUBSCRIPTION,
              resource_group: str = RESOURCE_GROUP) -> AcrStack:
        """Everything up, the principal of `entra` granted what a data scientist has:
        AcrPull on the registry and Container Registry Tasks Contributor. `arm`: a running
        fake ARM to put the registry in (its `subscription` must exist; the stack then
        builds with it and leaves stopping it to its owner), instead of one of its own."""
        registry = images.registry
        assert registry is not None
        principal = entra.client_id
        index_root = workdir / "extra-index"
        (index_root / "files").mkdir(parents=True, exist_ok=True)
        make_test_wheel(index_root / "files")
        write_simple_index(index_root)
        extra_index = serve_index(index_root)
        owned = arm is None
        front = None
        try:
            front = FakeAcrFront(registry.url, cert, key, tenant_id=entra.tenant_id,
                                 backend_root=registry.storage,
                                 backend_ca=registry.cert_file).start()
            front.grant(principal, "AcrPull")
            executor = own_registry_access(images.executor, front.login_server,
                                           registry.login_server)
            if arm is None:
                arm = FakeArm(cert, key, storage=storage, executor=executor, queue_delay=0.5)
                arm.add_subscription(subscription, tenant_id=entra.tenant_id)
            else:
                arm.executor = arm.executor or executor
            if arm.resource_group(subscription, resource_group) is None:
                arm.add_resource_group(subscription, resource_group, "westeurope")
            arm.add_registry(subscription, resource_group, REGISTRY,
                             login_server=front.login_server)
            if owned:
                arm.start()
        except BaseException:
            for part in (arm if owned else None, front, extra_index):
                if part is not None:
                    with contextlib.suppress(Exception):
                        part.stop()
            raise
        stack = cls(images, front, arm, extra_index, principal, owns_arm=owned,
                    subscription=subscription, resource_group=resource_group)
        arm.grant(principal, "Container Registry Tasks Contributor", stack.registry_scope)
        stack.env = {
            "AZURE_SUBSCRIPTION_ID": subscription,
            "AZURE_RESOURCE_GROUP": resource_group,
            "AZURE_CONTAINER_REGISTRY": REGISTRY,
            "AKSRUN_REGISTRY_LOGIN_SERVER": front.login_server,
            "AKSRUN_ARM_ENDPOINT": arm.endpoint,
            "AKSRUN_ARM_AUDIENCE": "https://management.azure.com",
            **stack.build_env,
        }
        return stack

    @property
    def build_env(self) -> dict[str, str]:
        """What makes a build here resolve offline: the test base image, the package
        indexes of the runner's wheels and of the test-only packages."""
        index = self.images.index
        return {
            "AKSRUN_BASE_IMAGE": self.images.base_ref,
            "AKSRUN_PIP_INDEX_URL": index.index_url if index else "",
            "AKSRUN_PIP_EXTRA_INDEX_URL": self.extra_index.index_url,
        }

    def node_registry(self) -> RegistryClient:
        """How a node pulls what the front names: straight from the registry's storage, as
        AKS's kubelet identity (AcrPull, granted by admin bootstrap) does."""
        registry = self.images.registry
        assert registry is not None
        return RegistryClient(self.front.login_server, registry.cert_file,
                              address=registry.login_server)

    def stop(self) -> None:
        for part in (self.arm if self.owns_arm else None, self.front, self.extra_index):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()

    @property
    def registry_scope(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/"
                f"providers/Microsoft.ContainerRegistry/registries/{REGISTRY}")

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


