"""Everything a test session needs for real images, started together and stopped together:
the registry (its storage in the cache, so images survive the session), the package index,
the base image pushed into the registry, and the runner image built from this client.

    images = TestImages(workdir).start()      # after `python -m tests.support.images prepare`
    images.runner.reference                    # 127.0.0.1:PORT/aksrun-runner@sha256:...
    images.executor(job)                       # builds a fake ACR Tasks run
    images.stop()

Nothing here reaches the network: the base image and the wheels must have been prepared
(`make test` does it); if they were not, start() says so and how.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from .acr_executor import BuildahExecutor
from .base import BaseImage, cached_base, default_buildah, push_base
from .cache import cache_root
from .distribution import RegistryClient
from .pypi import PackageIndex, prepared_wheels, serve_index
from .registry import Registry, start_registry
from .runner import RunnerImage, ensure_runner_image
from .steps import ImageToolError

PREPARE = "python -m tests.support.images prepare"


class TestImages:
    """Registry + index + base + runner image for one session (`workdir`: its temp files)."""

    __test__ = False  # not a pytest test class

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.registry: Registry | None = None
        self.index: PackageIndex | None = None
        self.base: BaseImage | None = None
        self.base_ref = ""
        self.runner: RunnerImage | None = None
        self.timings: dict[str, float] = {}

    def start(self, say: Callable[[str], None] = lambda _text: None) -> TestImages:
        try:
            self._start(say)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, say: Callable[[str], None]) -> None:
        base, wheels = cached_base(), prepared_wheels()
        missing = [what for what, found in (("the base image", base), ("the wheels", wheels))
                   if found is None]
        if missing:
            raise ImageToolError(
                f"step 'find prepared images': {' and '.join(missing)} for the image tests "
                f"were not prepared in {cache_root()} (tests never download). Fix: run "
                f"`{PREPARE}` once (`make test` does), then the tests again.")
        assert base is not None and wheels is not None
        buildah = default_buildah()
        if not buildah.exists(base.image) and not base.layer.exists():
            raise ImageToolError(f"step 'find prepared images': the base image is gone from "
                                 f"{buildah.root}. Fix: run `{PREPARE}` again.")
        started = time.monotonic()
        self.base = base
        self.registry = start_registry(cache_root() / "registry", workdir=self.workdir)
        self.index = serve_index(wheels)
        self.timings["registry_s"] = time.monotonic() - started
        self.base_ref = push_base(base, self.registry, buildah)
        self.timings["base_push_s"] = time.monotonic() - started - self.timings["registry_s"]
        self.runner = ensure_runner_image(self.registry, self.index, base, self.base_ref,
                                          say=say)
        self.timings["total_s"] = time.monotonic() - started

    @property
    def login_server(self) -> str:
        assert self.registry is not None
        return self.registry.login_server

    def registry_clients(self) -> list[RegistryClient]:
        """What a node agent pulls from."""
        assert self.registry is not None
        return [self.registry.client()]

    @property
    def layer_cache(self) -> Path:
        """Where node agents unpack pulled layers (kept by digest across sessions)."""
        return cache_root() / "node"

    @property
    def executor(self) -> BuildahExecutor:
        """The ACR Tasks executor over this session's registry."""
        assert self.registry is not None
        return BuildahExecutor(self.registry)

    def stop(self) -> None:
        if self.index is not None:
            with contextlib.suppress(Exception):
                self.index.stop()
        if self.registry is not None:
            self.registry.stop()
