"""The contract between the fake ACR Tasks service and whatever really builds the image.

The fake does what the service does around a build (accepts the request, fetches and unpacks
the uploaded context, keeps the run's status, log and timeout); an executor does the build
itself: a tiny in-test one, or one driving buildah against a local registry. Keep these
shapes stable: executors are written against them elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BuildJob:
    run_id: str
    context_dir: Path                   # the uploaded tar.gz, extracted into a fresh temp dir
    dockerfile: str                     # DockerBuildRequest.docker_file_path, relative to context_dir  # noqa: E501
    image_names: list[str]              # e.g. ["aksrun-runner:py3.11-0.1.0-abc123"], relative to login_server  # noqa: E501
    build_args: dict[str, str]          # name -> value (secret ones included)
    no_cache: bool
    push: bool
    login_server: str                   # where to push: the registry's loginServer
    timeout: float                      # seconds
    log: Callable[[str], None]          # append one line to the run's log blob
    cancelled: threading.Event          # set on cancel or timeout: stop the build promptly
    target: str | None = None


@dataclass
class BuildResult:
    succeeded: bool
    images: list[tuple[str, str, str]]  # (repository, tag, digest "sha256:...")
    error: str | None = None            # one line for the run's error message


Executor = Callable[[BuildJob], BuildResult]
