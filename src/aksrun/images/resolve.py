"""Which image a function runs in, by digest; built through ACR Tasks when the registry lacks it.

The runner image and each dependency image are named by content (see context.py), so the
question "is it built?" is one registry lookup, asked once per image and process. A missing
image is built once even when several processes need it at the same moment: they queue on a
file lock, and whoever follows the builder finds the image in the registry. Jobs reference the
image by digest, so a tag pushed again later never changes what a warm node runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RegistryUnreachableError
from .context import (
    ENV_REPOSITORY,
    RUNNER_REPOSITORY,
    BuildContext,
    env_context,
    normalize_requirements,
    python_minor,
    runner_context,
)

_known: dict[tuple[str, str, str], str] = {}  # (login server, repository, tag) -> reference
_known_lock = threading.Lock()


@dataclass(frozen=True)
class ResolvedImage:
    """An image by digest, and whether this call had to build it."""

    reference: str
    repository: str
    tag: str
    built: bool = False
    run_id: str | None = None
    seconds: float = 0.0


class Images:
    """aksrun's images in the configured registry: look up by tag, build when missing."""

    def __init__(self, config: Any, *, credential: Any = None,
                 on_line: Callable[[str], None] | None = None,
                 on_status: Callable[[str, str], None] | None = None,
                 python: str | None = None, base: str | None = None) -> None:
        if not config.login_server:
            raise ConfigError(
                "no container registry configured: set AZURE_CONTAINER_REGISTRY to your Azure "
                "Container Registry's name (e.g. myacr), or AKSRUN_IMAGE to an image you built.")
        self.config = config
        self.credential = credential
        self.on_line = on_line
        self.on_status = on_status
        self.python = python_minor(python)
        self.base = base or config.base_image
        self._registry: Any = None
        self._tasks: Any = None

    # --- what callers ask --------------------------------------------------------------------

    def runner_context(self) -> BuildContext:
        return runner_context(self.python, self.base, self._pip_args())

    def runner(self, build: bool = True) -> ResolvedImage:
        """The runner image for this client (AKSRUN_IMAGE, when set, is used as it is)."""
        context = self.runner_context()
        return self._ensure(context, build)

    def for_requirements(self, requirements: Sequence[str], *, runner: str | None = None,
                         build: bool = True) -> ResolvedImage:
        """The dependency image for `requirements`, FROM the runner (or the given image).

        Its tag needs only the runner's tag (local), so a cache hit is one lookup; the
        runner is looked up (or built) only when the dependency image must be built."""
        if not normalize_requirements(requirements):
            return self.runner(build) if runner is None else ResolvedImage(runner, "", "")
        runner_key = runner or self.runner_context().tag
        tag = env_context(requirements, "", runner_key, self.python, self.base).tag

        def context() -> BuildContext:
            runner_ref = runner or self.runner(build).reference
            return env_context(requirements, runner_ref, runner_key, self.python, self.base,
                               self._pip_args())

        return self._ensure_tag(ENV_REPOSITORY, tag, context, build)

    def reference_by_tag(self, requirements: Sequence[str] = ()) -> str:
        """Where the image will be, by tag, without asking the registry (for --dry-run)."""
        runner = self.runner_context()
        server = self.config.login_server
        if not normalize_requirements(requirements):
            return f"{server}/{RUNNER_REPOSITORY}:{runner.tag}"
        tag = env_context(requirements, "", runner.tag, self.python, self.base).tag
        return f"{server}/{ENV_REPOSITORY}:{tag}"

    # --- parts -------------------------------------------------------------------------------

    def _ensure(self, context: BuildContext, build: bool) -> ResolvedImage:
        return self._ensure_tag(context.repository, context.tag, lambda: context, build)

    def _ensure_tag(self, repository: str, tag: str, context: Callable[[], BuildContext],
                    build: bool) -> ResolvedImage:
        """Look `repository:tag` up (once per process); build `context()` when it's missing."""
        server = self.config.login_server
        key = (server, repository, tag)
        with _known_lock:
            if key in _known:
                return ResolvedImage(_known[key], repository, tag)
        try:
            found = self.registry().digest(repository, tag)
        except RegistryUnreachableError:
            # A login server that doesn't answer is most often a registry that doesn't exist:
            # ARM says so by name (RegistryNotFoundError), else the network is the problem.
            if self.config.subscription_id and (self.config.registry_resource_group
                                                or self.config.resource_group):
                self.tasks().registry_login_server()
            raise
        if found is None and not build:
            raise ConfigError(f"{server}/{repository}:{tag} is not in the registry; build it "
                              "with `aksrun image build`.")
        resolved = (ResolvedImage(f"{server}/{repository}@{found}", repository, tag)
                    if found else self._build_once(context()))
        with _known_lock:
            _known[key] = resolved.reference
        return resolved

    def _build_once(self, context: BuildContext) -> ResolvedImage:
        """Build under a per-tag file lock; whoever waited finds the image and skips the build."""
        from filelock import FileLock

        locks = Path(self.config.home_path) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{context.repository}-{context.tag[:32]}.lock"))
        with lock:
            # Another process may have built it while this one waited for the lock.
            found = self.registry().digest(context.repository, context.tag)
            if found:
                return ResolvedImage(f"{self.config.login_server}/{context.repository}"
                                     f"@{found}", context.repository, context.tag)
            built = self.tasks().build(context)
        return ResolvedImage(built.reference, context.repository, context.tag, built=True,
                             run_id=built.run_id, seconds=built.seconds)

    def registry(self) -> Any:
        if self._registry is None:
            from .registry import RegistryImages

            self._registry = RegistryImages(self.config, credential=self.credential)
        return self._registry

    def tasks(self) -> Any:
        if self._tasks is None:
            from .acr_tasks import AcrTasks

            # Through self, so callbacks set after this (per build) still reach the builder.
            self._tasks = AcrTasks(self.config, self.credential,
                                   on_line=lambda line: self.on_line and self.on_line(line),
                                   on_status=lambda run, status: (
                                       self.on_status and self.on_status(run, status)))
        return self._tasks

    def _pip_args(self) -> dict[str, str]:
        return {k: v for k, v in (("PIP_INDEX_URL", self.config.pip_index_url),
                                  ("PIP_EXTRA_INDEX_URL", self.config.pip_extra_index_url))
                if v}


def forget_known_images() -> None:
    """Drop the process's lookups (tests; a long-lived process after an admin's clean-up)."""
    with _known_lock:
        _known.clear()


def image_resolver(config: Any) -> Callable[[Any], str]:
    """options -> image reference by digest, for KubernetesCompute: AKSRUN_IMAGE or the
    function's image= as they are, requirements= in a dependency image FROM them (or FROM the
    runner), everything else in the runner image. Builds show their log on stderr."""
    images: list[Images] = []

    def resolve(options: Any) -> str:
        explicit = getattr(options, "image", None) or config.image
        requirements = tuple(getattr(options, "requirements", ()) or ())
        if explicit and not requirements:
            return explicit
        if not images:
            images.append(Images(config))
        from .progress import BuildProgress

        what = ("the image for requirements " + ", ".join(requirements) if requirements
                else "the aksrun runner image")
        with BuildProgress(what) as progress:
            images[0].on_line, images[0].on_status = progress.on_line, progress.on_status
            return images[0].for_requirements(requirements, runner=explicit).reference

    return resolve
