"""What runs an ACR Tasks build (a `DockerBuildRequest` run) for the fake ARM: buildah builds
the uploaded context and pushes every image name to the test registry, the way an ACR Tasks
agent runs `docker build` + `docker push`.

    executor = BuildahExecutor(registry)      # a running Registry (tests.support.images)
    result = executor(job)                    # fake_arm.builds.BuildJob -> BuildResult

Every output line reaches `job.log` as it comes (the run's log blob). A failing step is
`succeeded=False` with pip's / buildah's error line in `error`; `job.cancelled` or
`job.timeout` kills buildah and every RUN it started.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.fake_arm.builds import BuildJob, BuildResult

from .buildah import Buildah
from .steps import ImageToolError

if TYPE_CHECKING:
    from .registry import Registry

_ERROR_LINE = re.compile(r"^(ERROR|error|Error)\b|^E: |level=error")


def error_line(lines: list[str]) -> str:
    """The line a person needs: the failing tool's own error (pip's `ERROR: ...`, apt's
    `E: ...`), then buildah's verdict (`Error: building at STEP "RUN ...": ...`)."""
    errors = [line.strip() for line in lines if _ERROR_LINE.search(line.strip())]
    if not errors:
        return next((line.strip() for line in reversed(lines) if line.strip()), "build failed")
    verdict = errors[-1]
    cause = next((e for e in reversed(errors[:-1]) if e.startswith(("ERROR:", "E: "))), "")
    return f"{cause} ({verdict})" if cause else verdict


def split_name(name: str) -> tuple[str, str]:
    """`repo/name:tag` -> (`repo/name`, `tag`); no tag means latest."""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
        return repository, tag
    return name, "latest"


class BuildahExecutor:
    """Builds and pushes a BuildJob with buildah (storage shared by every run: like a warm
    ACR Tasks agent it keeps pulled base layers, never built images)."""

    def __init__(self, registry: Registry, buildah: Buildah | None = None) -> None:
        from .base import default_buildah

        store = buildah or default_buildah()
        self.registry = registry
        self.buildah = Buildah(store.root, store.runroot, store.driver, registry.cert_dir)

    def __call__(self, job: BuildJob) -> BuildResult:
        started = time.monotonic()
        names = [split_name(n) for n in job.image_names]
        tags = [f"{job.login_server}/{repo}:{tag}" for repo, tag in names]
        job.log(f"aksrun test executor: buildah bud of {job.dockerfile} for run {job.run_id}"
                f" -> {', '.join(tags) or '(no image names)'}")
        built = self.buildah.bud(
            Path(job.context_dir), tags, dockerfile=job.dockerfile,
            build_args=job.build_args, on_line=job.log, cancelled=job.cancelled,
            timeout=job.timeout, no_cache=job.no_cache, target=job.target)
        if built.cancelled:
            job.log("build canceled")
            return BuildResult(False, [], "canceled")
        if built.timed_out:
            job.log(f"build timed out after {job.timeout:.0f} s")
            return BuildResult(False, [], f"timed out after {job.timeout:.0f} s")
        if not built.ok:
            return BuildResult(False, [], error_line(built.lines))
        images: list[tuple[str, str, str]] = []
        try:
            if job.push:
                for (repo, tag), local in zip(names, tags, strict=True):
                    if job.cancelled.is_set():
                        return BuildResult(False, images, "canceled")
                    job.log(f"Pushing {local}")
                    digest = self.buildah.push(local, f"{self.registry.login_server}/"
                                                      f"{repo}:{tag}")
                    job.log(f"{tag}: digest: {digest}")
                    images.append((repo, tag, digest))
            else:
                images = [(repo, tag, "") for repo, tag in names]
        except ImageToolError as exc:
            job.log(str(exc))
            return BuildResult(False, images, str(exc).splitlines()[0])
        finally:
            self.buildah.rmi(*tags)  # the registry holds the images; the agent keeps no copy
        job.log(f"Run ID: {job.run_id} was successful after {time.monotonic() - started:.0f}s")
        return BuildResult(True, images)
