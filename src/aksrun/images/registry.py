"""Read aksrun's images from the registry with `azure-containerregistry` (data plane).

A lookup is one request (the tag's properties carry its digest); listing reads each image's
labels from its config blob, where the Dockerfiles record Python, aksrun and requirements.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ImageBuildError, RegistryPermissionError, RegistryUnreachableError
from .context import ENV_REPOSITORY, RUNNER_REPOSITORY

_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


@dataclass(frozen=True)
class ImageInfo:
    """One of aksrun's images as `aksrun image ls` shows it."""

    repository: str
    tag: str
    digest: str
    reference: str
    python: str
    aksrun_version: str
    requirements: tuple[str, ...]
    created: str


class RegistryImages:
    """The configured registry's aksrun images, through DefaultAzureCredential."""

    def __init__(self, config: Any, credential: Any = None, client: Any = None) -> None:
        self.login_server = config.login_server
        if client is None:
            from azure.containerregistry import ContainerRegistryClient

            from ..adapters.azure.credentials import default_credential

            client = ContainerRegistryClient(f"https://{self.login_server}",
                                             credential or default_credential(),
                                             audience=config.registry_audience)
        self.client = client

    def digest(self, repository: str, tag: str) -> str | None:
        """The tag's digest, or None when the registry has no such tag (or repository)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._call(lambda: self.client.get_tag_properties(repository, tag))
        except ResourceNotFoundError:
            return None
        return str(props.digest)

    def images(self) -> Iterator[ImageInfo]:
        """aksrun-runner and aksrun-env images, newest first per repository."""
        from azure.core.exceptions import ResourceNotFoundError

        for repository in (RUNNER_REPOSITORY, ENV_REPOSITORY):
            try:
                tags = list(self._call(lambda r=repository: list(
                    self.client.list_tag_properties(r, order_by="timedesc"))))
            except ResourceNotFoundError:
                continue
            for tag in tags:
                labels = self._labels(repository, str(tag.digest))
                try:
                    requirements = tuple(json.loads(labels.get("io.aksrun.requirements") or "[]"))
                except ValueError:
                    requirements = ()
                yield ImageInfo(
                    repository, str(tag.name), str(tag.digest),
                    f"{self.login_server}/{repository}@{tag.digest}",
                    labels.get("io.aksrun.python", "?"), labels.get("io.aksrun.version", "?"),
                    requirements,
                    tag.last_updated_on.isoformat() if tag.last_updated_on else "",
                )

    def _labels(self, repository: str, digest: str) -> dict[str, str]:
        manifest = self._call(lambda: self.client.get_manifest(repository, digest)).manifest
        config = (manifest or {}).get("config") or {}
        if not config.get("digest"):
            return {}
        stream = self._call(lambda: self.client.download_blob(repository, config["digest"]))
        data = b"".join(stream)
        try:
            image_config = json.loads(data)
        except ValueError:
            return {}
        return dict((image_config.get("config") or {}).get("Labels") or {})

    def _call(self, call: Any) -> Any:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        try:
            return call()
        except ResourceNotFoundError:
            raise
        except ClientAuthenticationError as exc:
            raise RegistryPermissionError(
                f"the registry {self.login_server} refused your sign-in ({_first(exc)}). "
                "Pulling and listing images needs AcrPull (or Reader) on it; building needs "
                "Container Registry Tasks Contributor.") from exc
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise RegistryPermissionError(
                    f"the registry {self.login_server} denied access ({_first(exc)}); ask an "
                    "admin for AcrPull on it (AcrPush to build).") from exc
            raise ImageBuildError(f"the registry {self.login_server} failed: "
                                  f"{_first(exc)}") from exc
        except ServiceRequestError as exc:
            raise RegistryUnreachableError(
                f"the registry {self.login_server} could not be reached ({_first(exc)}); "
                "check AZURE_CONTAINER_REGISTRY / AKSRUN_REGISTRY_LOGIN_SERVER and your "
                "network.") from exc


def _first(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
