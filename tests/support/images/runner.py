"""The runner image a test session's pods run in: `aksrun.images.context.runner_context`
built for real (buildah, through the same executor the fake ACR Tasks uses) FROM the test
base image in the test registry, with pip reading the local package index.

Built once per context: the context's tag hashes the Dockerfile, this client's aksrun files
and pins, and the base's recipe, so when the registry's storage (kept in the cache) already
has `aksrun-runner:<tag>` nothing is built.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .acr_executor import BuildahExecutor, BuildJob
from .base import BaseImage
from .cache import cache_root, locked
from .steps import ImageToolError, tail

if TYPE_CHECKING:
    from .pypi import PackageIndex
    from .registry import Registry

PYTHON = "3.11"
BUILD_TIMEOUT = 900.0


@dataclass
class RunnerImage:
    """An image in the test registry, by digest (what aksrun puts into a Job)."""

    login_server: str
    repository: str
    tag: str
    digest: str
    built: bool = False
    seconds: float = 0.0
    log: Path | None = None

    @property
    def reference(self) -> str:
        return f"{self.login_server}/{self.repository}@{self.digest}"

    @property
    def tagged(self) -> str:
        return f"{self.login_server}/{self.repository}:{self.tag}"


def ensure_runner_image(registry: Registry, index: PackageIndex, base: BaseImage,
                        base_ref: str, python: str = PYTHON,
                        say: Callable[[str], None] = lambda _text: None) -> RunnerImage:
    """The runner image for this client in `registry`, built first if it is not there."""
    from aksrun.images.context import runner_context

    ctx = runner_context(python=python, base=base.logical_name,
                         pip_args={"PIP_INDEX_URL": index.index_url})
    client = registry.client()
    found = client.exists(ctx.repository, ctx.tag)
    if found:
        return RunnerImage(registry.login_server, ctx.repository, ctx.tag, found)
    with locked(f"runner-{ctx.tag}"):
        found = client.exists(ctx.repository, ctx.tag)
        if found:
            return RunnerImage(registry.login_server, ctx.repository, ctx.tag, found)
        log = cache_root() / "builds" / f"{ctx.repository}-{ctx.tag}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        say(f"runner image: building {ctx.repository}:{ctx.tag} FROM {base_ref} (first time "
            f"for this aksrun; about 1 min). Log: {log}")
        started = time.monotonic()
        with open(log, "w") as out, tempfile.TemporaryDirectory(prefix="runner-ctx-") as tmp:
            def write(line: str) -> None:
                out.write(line + "\n")
                out.flush()

            result = BuildahExecutor(registry)(BuildJob(
                run_id="session", context_dir=ctx.write(tmp), dockerfile=ctx.dockerfile,
                image_names=[ctx.image_name], build_args={**ctx.build_args, "BASE": base_ref},
                no_cache=False, push=True, login_server=registry.login_server,
                timeout=BUILD_TIMEOUT, log=write, cancelled=threading.Event()))
        seconds = time.monotonic() - started
        if not result.succeeded:
            raise ImageToolError(
                f"step 'build the runner image' failed after {seconds:.0f} s: {result.error}. "
                f"Log: {log}. Last lines:\n{tail(log)}\nFix: read the log; a pip error means "
                "the local index lacks a wheel: run `python -m tests.support.images prepare`.")
        (_repo, tag, digest), = result.images
        say(f"runner image: built {ctx.repository}:{tag} in {seconds:.0f} s ({digest})")
        return RunnerImage(registry.login_server, ctx.repository, tag, digest, True, seconds,
                           log)
