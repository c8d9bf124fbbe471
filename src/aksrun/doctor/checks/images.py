"""The registry and the image jobs run in: reachable, present, and built for this client's
Python and aksrun (a pickle only loads under the Python minor and cloudpickle that wrote it;
the runner refuses a mismatch when a job starts, doctor says so before anything is sent)."""

from __future__ import annotations

import json
import sys
from typing import Any

from ... import __version__
from ...images.context import RUNNER_REPOSITORY
from ..context import Context
from ..model import Outcome
from ..text import first_line

LABEL_PYTHON = "io.aksrun.python"
LABEL_VERSION = "io.aksrun.version"
BUILD_FIX = "build it with `aksrun image build` (once per aksrun version and Python)."


def registry_client(context: Context) -> Any:
    """The registry's data-plane client (shared by the image checks), bounded in time."""
    client = context.get("registry_client")
    if client is None:
        from azure.containerregistry import ContainerRegistryClient

        config = context.config
        client = ContainerRegistryClient(f"https://{config.login_server}",
                                         context.credential(),
                                         audience=config.registry_audience,
                                         **context.sdk_options())
        context.put("registry_client", client)
    return client


def check_registry(context: Context) -> Outcome:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    config = context.config
    server = config.login_server
    try:
        registry_client(context).get_repository_properties(RUNNER_REPOSITORY)
        found = True
    except ResourceNotFoundError:
        found = False
    except ClientAuthenticationError as exc:
        return _denied(config, exc)
    except HttpResponseError as exc:
        if exc.status_code in (401, 403):
            return _denied(config, exc)
        return Outcome.fail(f"registry {server} answered HTTP {exc.status_code}: {first_line(exc)}",
                            "try again in a minute; if it persists, check the registry in "
                            "the Azure portal.", registry=server)
    except ServiceRequestError as exc:
        return Outcome.fail(f"registry {server} did not answer: {first_line(exc)}",
                            "check AZURE_CONTAINER_REGISTRY (`az acr list -o table`), "
                            "AKSRUN_REGISTRY_LOGIN_SERVER and your network.", registry=server)
    return Outcome.ok(f"{server} answers" + ("" if found else
                                            f" (no {RUNNER_REPOSITORY} repository yet)"),
                      registry=server)


def check_runner_image(context: Context) -> Outcome:
    config = context.config
    if config.image:
        return _user_image(context, config.image)
    if not config.login_server:
        from ...adapters.kubernetes_compute import NO_IMAGE

        return Outcome.fail("no runner image configured", NO_IMAGE.split(": ", 1)[1])
    from ...images.registry import RegistryImages
    from ...images.resolve import Images

    tag = Images(config).runner_context().tag
    registry = RegistryImages(config, client=registry_client(context))
    digest = registry.digest(RUNNER_REPOSITORY, tag)
    where = f"{config.login_server}/{RUNNER_REPOSITORY}:{tag}"
    if digest is None:
        return Outcome.fail(f"{where} (for Python {_python()}, aksrun {__version__}) is not in "
                            "the registry", BUILD_FIX, reference=where)
    context.put("image", {"repository": RUNNER_REPOSITORY, "digest": digest, "ours": True,
                          "reference": f"{config.login_server}/{RUNNER_REPOSITORY}@{digest}"})
    return Outcome.ok(f"{where} ({digest[:19]}…)", reference=where, digest=digest)


def _user_image(context: Context, image: str) -> Outcome:
    """AKSRUN_IMAGE: looked up when it is in the configured registry (the only one whose
    API aksrun speaks); elsewhere the node pulls it and only a job can tell."""
    from azure.core.exceptions import ResourceNotFoundError

    config = context.config
    server, repository, reference = split_reference(image)
    if not config.login_server or server != config.login_server:
        return Outcome.skip(f"AKSRUN_IMAGE={image} is not in the configured registry: not "
                            "looked up", image=image)
    client = registry_client(context)
    try:
        if reference.startswith("sha256:"):
            digest = str(client.get_manifest_properties(repository, reference).digest)
        else:
            digest = str(client.get_tag_properties(repository, reference).digest)
    except ResourceNotFoundError:
        return Outcome.fail(f"AKSRUN_IMAGE={image} is not in the registry",
                            "push that image, or unset AKSRUN_IMAGE to run in aksrun's runner "
                            "image (`aksrun image build`).", image=image)
    context.put("image", {"repository": repository, "digest": digest, "ours": False,
                          "reference": f"{server}/{repository}@{digest}"})
    return Outcome.ok(f"AKSRUN_IMAGE={image} ({digest[:19]}…)", image=image, digest=digest)


def check_versions(context: Context) -> Outcome:
    import cloudpickle

    image = context.get("image") or {}
    local = {"python": _python(), "aksrun": __version__, "cloudpickle": cloudpickle.__version__}
    labels = image_labels(registry_client(context), image["repository"], image["digest"])
    remote = {"python": labels.get(LABEL_PYTHON), "aksrun": labels.get(LABEL_VERSION)}
    details = {"client": local, "image": remote, "reference": image["reference"]}
    if not any(remote.values()):
        return Outcome.skip(f"{image['reference']} has no aksrun labels (not built by aksrun): "
                            "the runner compares versions when a job starts", **details)
    skewed = [f"{name} {remote[what]} (here {local[what]})"
              for what, name in (("python", "Python"), ("aksrun", "aksrun"))
              if remote[what] != local[what]]
    if skewed:
        fix = ("unset AKSRUN_IMAGE to run in the runner image built for this client "
               "(`aksrun image build`), or use this client with the image's versions."
               if not image.get("ours") else BUILD_FIX)
        return Outcome.fail(f"the image has {' and '.join(skewed)}: its pickles won't load",
                            fix, **details)
    pickle = (f"cloudpickle {local['cloudpickle']} (pinned by the runner's tag)"
              if image.get("ours") else
              "cloudpickle not recorded in the image (the runner checks it at start)")
    return Outcome.ok(f"Python {local['python']}, aksrun {local['aksrun']} in the image and "
                      f"here; {pickle}", **details)


def image_labels(client: Any, repository: str, digest: str) -> dict[str, str]:
    """The labels of an image's config (where aksrun's Dockerfiles record versions)."""
    manifest = client.get_manifest(repository, digest).manifest or {}
    config_digest = (manifest.get("config") or {}).get("digest")
    if not config_digest:  # an index (multi-platform) or a foreign artifact: no labels read
        return {}
    data = b"".join(client.download_blob(repository, config_digest))
    try:
        image_config = json.loads(data)
    except ValueError:
        return {}
    return dict((image_config.get("config") or {}).get("Labels") or {})


def split_reference(image: str) -> tuple[str, str, str]:
    """(registry, repository, tag or digest) of `server/repo[:tag|@digest]`."""
    name, at, digest = image.partition("@")
    server, _, path = name.partition("/")
    if not at:
        head, colon, tag = path.rpartition(":")
        path, reference = (head, tag) if colon and "/" not in tag else (path, "latest")
    else:
        reference = digest
    return server.lower(), path, reference


def _denied(config: Any, exc: BaseException) -> Outcome:
    return Outcome.fail(f"registry {config.login_server} refused you: {first_line(exc)}",
                        f"ask your admin for AcrPull on registry {config.registry_name} "
                        "(AcrPush and Container Registry Tasks Contributor to build images).",
                        registry=config.login_server)


def _python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"
