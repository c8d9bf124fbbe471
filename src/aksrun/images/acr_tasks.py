"""Build an image in the user's Azure Container Registry with ACR Tasks: no Docker needed.

The calls are the ones `az acr build` makes: get an upload URL for the source, upload the
context's tar.gz to it, schedule a `DockerBuildRequest` run, follow the run's log (an append
blob whose metadata gets `Complete=<status>` when the run ends) and read the pushed digest
from the finished run.

API version: these calls are pinned to 2019-06-01-preview, the version `az acr build` itself
uses and the longest-served one for runs. `azure-mgmt-containerregistry` 15 dropped them (they
moved to the beta `azure-mgmt-containerregistrytasks`), so aksrun needs 10.1 <= version < 15,
where the multi-API client takes `api_version=`. The registry itself is read with the client's
default (GA) version.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..adapters.azure.arm import arm_error_code, arm_error_message, management_client
from ..errors import (
    AksrunError,
    BaseImageNotFoundError,
    ImageBuildError,
    ImageBuildTimeoutError,
    RegistryNotFoundError,
    RegistryPermissionError,
    RequirementsError,
    TasksNotAllowedError,
)
from .context import BuildContext

TASKS_API_VERSION = "2019-06-01-preview"
FINAL = ("Succeeded", "Failed", "Canceled", "Error", "Timeout")
TASKS_ROLE = ("Container Registry Tasks Contributor (or Contributor) on the registry; AcrPush "
              "alone can push but not run tasks")


@dataclass(frozen=True)
class BuiltImage:
    """What a finished run pushed: the reference by digest, and how the run went."""

    reference: str  # <login server>/<repository>@sha256:...
    digest: str
    run_id: str
    seconds: float


class AcrTasks:
    """One registry's ACR Tasks, for building aksrun's images.

    `on_line` gets each line of the run's log as it is written; `on_status` gets
    (run_id, status) whenever the run's status changes (for a progress line).
    """

    def __init__(self, config: Any, credential: Any = None, *,
                 on_line: Callable[[str], None] | None = None,
                 on_status: Callable[[str, str], None] | None = None,
                 poll_interval: float = 1.0) -> None:
        from ..adapters.azure.credentials import default_credential

        missing = [env for field, env in (("subscription_id", "AZURE_SUBSCRIPTION_ID"),
                                          ("registry", "AZURE_CONTAINER_REGISTRY"))
                   if not getattr(config, field, None)]
        if not (config.registry_resource_group or config.resource_group):
            missing.append("AZURE_RESOURCE_GROUP (or AKSRUN_REGISTRY_RESOURCE_GROUP)")
        if missing:
            raise ImageBuildError(
                f"building images needs {', '.join(missing)}: set them in the environment or "
                ".env (see .env.example), or run `aksrun init`.")
        self.config = config
        self.credential = credential or default_credential()
        self.resource_group = config.registry_resource_group or config.resource_group
        self.name = config.registry_name
        self.on_line = on_line or (lambda line: None)
        self.on_status = on_status or (lambda run_id, status: None)
        self.poll_interval = poll_interval
        self._tasks_client: Any = None

    @property
    def where(self) -> str:
        return (f"registry {self.name!r} in resource group {self.resource_group!r} of "
                f"subscription {self.config.subscription_id}")

    # --- the flow ----------------------------------------------------------------------------

    def registry_login_server(self) -> str:
        """The registry's login server, as ARM knows it (also proves the registry exists)."""
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient

        client = management_client(ContainerRegistryManagementClient, self.config,
                                   self.credential)
        registry = self._call(lambda: client.registries.get(self.resource_group, self.name),
                              "Microsoft.ContainerRegistry/registries/read")
        return str(registry.login_server)

    def build(self, context: BuildContext, timeout: float | None = None) -> BuiltImage:
        """Upload, schedule, follow to the end; the pushed image by digest, or a typed error."""
        from azure.mgmt.containerregistry.v2019_06_01_preview import models
        from azure.storage.blob import BlobClient

        client = self._tasks()
        started = time.monotonic()
        source = self._call(
            lambda: client.registries.get_build_source_upload_url(self.resource_group,
                                                                   self.name),
            "Microsoft.ContainerRegistry/registries/listBuildSourceUploadUrl/action")
        BlobClient.from_blob_url(source.upload_url).upload_blob(context.tar_gz(),
                                                                overwrite=True)
        request = models.DockerBuildRequest(
            image_names=[context.image_name],
            is_push_enabled=True,
            no_cache=False,
            docker_file_path=context.dockerfile,
            arguments=[models.Argument(name=k, value=v, is_secret=False)
                       for k, v in sorted(context.build_args.items())],
            timeout=int(timeout or self.config.build_timeout),
            platform=models.PlatformProperties(os="Linux", architecture="amd64"),
            source_location=source.relative_path,
        )
        run = self._call(
            lambda: client.registries.begin_schedule_run(self.resource_group, self.name,
                                                         request).result(),
            "Microsoft.ContainerRegistry/registries/scheduleRun/action")
        run_id = str(run.run_id)
        self.on_status(run_id, str(run.status))
        try:
            run, lines = self._follow(client, run_id)
        except KeyboardInterrupt:
            self.cancel(run_id)
            raise
        return self._outcome(context, run, lines, time.monotonic() - started)

    def cancel(self, run_id: str) -> None:
        """Cancel a run (Ctrl+C during a build): the registry stops building and pushing."""
        client = self._tasks()
        try:
            client.runs.begin_cancel(self.resource_group, self.name, run_id).result(timeout=30)
        except Exception:  # the user is leaving; say what is left rather than raise
            self.on_line(f"(could not confirm that run {run_id} was cancelled: "
                         f"`az acr task cancel-run -r {self.name} --run-id {run_id}` does it)")

    # --- parts -------------------------------------------------------------------------------

    def _tasks(self) -> Any:
        if self._tasks_client is None:
            from azure.mgmt.containerregistry import ContainerRegistryManagementClient

            self._tasks_client = management_client(
                ContainerRegistryManagementClient, self.config, self.credential,
                api_version=TASKS_API_VERSION)
        return self._tasks_client

    def _follow(self, client: Any, run_id: str) -> tuple[Any, list[str]]:
        """Stream the log blob until its metadata says Complete and the run is final."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobClient

        lines: list[str] = []
        pending = b""
        offset = 0
        blob = None
        run = None
        status = None
        last_run_check = 0.0
        complete = False
        final_since: float | None = None
        while True:
            now = time.monotonic()
            if run is None or now - last_run_check >= 3 * self.poll_interval or complete:
                run = client.runs.get(self.resource_group, self.name, run_id)
                last_run_check = now
                if str(run.status) != status:
                    status = str(run.status)
                    self.on_status(run_id, status)
            if blob is None:
                link = client.runs.get_log_sas_url(self.resource_group, self.name, run_id)
                if link.log_link:
                    blob = BlobClient.from_blob_url(link.log_link)
            if blob is not None:
                try:
                    props = blob.get_blob_properties()
                except ResourceNotFoundError:
                    props = None
                if props is not None:
                    metadata = {k.lower(): v for k, v in (props.metadata or {}).items()}
                    if props.size > offset:
                        data = blob.download_blob(offset=offset,
                                                  length=props.size - offset).readall()
                        offset += len(data)
                        pending += data
                        *done, pending = pending.split(b"\n")
                        for raw in done:
                            line = raw.decode("utf-8", "replace").rstrip("\r")
                            lines.append(line)
                            self.on_line(line)
                    complete = complete or "complete" in metadata
            if status in FINAL:
                if complete or blob is None:
                    break
                # Final, but the log isn't marked complete yet: its last lines may be coming.
                final_since = final_since if final_since is not None else now
                if now - final_since > 10:
                    break
            time.sleep(self.poll_interval)
        if pending:
            line = pending.decode("utf-8", "replace")
            lines.append(line)
            self.on_line(line)
        return run, lines

    def _outcome(self, context: BuildContext, run: Any, lines: list[str],
                 seconds: float) -> BuiltImage:
        run_id, status = str(run.run_id), str(run.status)
        if status == "Succeeded":
            for image in run.output_images or []:
                if image.repository == context.repository and image.tag == context.tag:
                    server = image.registry or self.config.login_server
                    return BuiltImage(f"{server}/{image.repository}@{image.digest}",
                                      str(image.digest), run_id, seconds)
            raise ImageBuildError(
                f"ACR run {run_id} succeeded but reported no image {context.image_name}; "
                f"check its log with `az acr task logs -r {self.name} --run-id {run_id}`.",
                run_id=run_id, log_lines=tuple(lines[-20:]))
        hint = f"(full log: `az acr task logs -r {self.name} --run-id {run_id}`)"
        if status == "Timeout":
            raise ImageBuildTimeoutError(
                f"building {context.image_name} timed out (ACR run {run_id}, limit "
                f"{self.config.build_timeout:.0f} s); raise "
                f"AKSRUN_BUILD_TIMEOUT (up to 8h) or trim the requirements {hint}.",
                run_id=run_id, log_lines=tuple(lines[-20:]))
        if status == "Canceled":
            raise ImageBuildError(f"ACR run {run_id} building {context.image_name} was "
                                  f"cancelled {hint}.", run_id=run_id)
        base = context.build_args.get("BASE") or context.build_args.get("RUNNER") or ""
        missing_base = _base_image_lines(lines, base)
        if missing_base:
            raise BaseImageNotFoundError(
                f"the base image {base} could not be pulled by ACR run {run_id}: "
                f"{missing_base[-1].strip()}. Check the name and tag, or set AKSRUN_BASE_IMAGE "
                f"(or --base) to an image the registry can pull {hint}.",
                run_id=run_id, log_lines=tuple(missing_base))
        pip_errors = [line for line in lines if line.lstrip().startswith("ERROR:")]
        if pip_errors:
            shown = "\n".join(f"  {line.strip()}" for line in pip_errors[:12])
            raise RequirementsError(
                f"pip could not install the requirements of {context.image_name} "
                f"(ACR run {run_id}):\n{shown}\nFix the requirement (name, version, index: "
                f"AKSRUN_PIP_INDEX_URL) and call again {hint}.",
                run_id=run_id, log_lines=tuple(pip_errors))
        reason = (getattr(run, "run_error_message", None) or
                  next((ln for ln in reversed(lines) if ln.strip()), "no log"))
        raise ImageBuildError(
            f"ACR run {run_id} building {context.image_name} ended {status}: {reason} {hint}.",
            run_id=run_id, log_lines=tuple(lines[-20:]))

    def _call(self, call: Callable[[], Any], action: str) -> Any:
        """Run an ARM call, turning its refusals into errors that say what to do."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        try:
            return call()
        except ClientAuthenticationError as exc:
            status = getattr(exc, "status_code", None)
            if status == 403 or arm_error_code(exc) == "AuthorizationFailed":
                raise self._permission(exc, action) from exc
            from ..adapters.azure.credentials import explain_auth_error

            raise AksrunError(explain_auth_error(exc)) from exc
        except HttpResponseError as exc:
            code = arm_error_code(exc)
            message = arm_error_message(exc)
            if code in ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound") \
                    or exc.status_code == 404:
                raise RegistryNotFoundError(
                    f"{self.where} was not found ({code}: {message}). Check "
                    "AZURE_CONTAINER_REGISTRY and AKSRUN_REGISTRY_RESOURCE_GROUP / "
                    "AZURE_RESOURCE_GROUP, or create it with `aksrun admin bootstrap`.") from exc
            if code == "TasksOperationsNotAllowed":
                raise TasksNotAllowedError(
                    f"ACR Tasks refused {self.where}: {message} Free and trial subscriptions "
                    "can't run ACR Tasks: use a pay-as-you-go subscription for the registry, "
                    "or build and push the image yourself and set AKSRUN_IMAGE.") from exc
            if exc.status_code == 403 or code == "AuthorizationFailed":
                raise self._permission(exc, action) from exc
            raise ImageBuildError(f"ACR Tasks on {self.where} failed: {code or exc.status_code}"
                                  f": {message}") from exc

    def _permission(self, exc: BaseException, action: str) -> RegistryPermissionError:
        if action.endswith("/read"):
            # ARM answers 403, not 404, for a resource under a scope you have no role on:
            # the registry may not exist at all.
            return RegistryPermissionError(
                f"you may not read {self.where}, or it does not exist there "
                f"({arm_error_message(exc)}). Check AZURE_CONTAINER_REGISTRY and "
                "AKSRUN_REGISTRY_RESOURCE_GROUP / AZURE_RESOURCE_GROUP; if they are right, ask "
                f"an admin for {TASKS_ROLE}.")
        verb = action.rsplit("/", 2)[-2]
        return RegistryPermissionError(
            f"you may not {verb} on {self.where} ({arm_error_message(exc)}). Ask an admin for "
            f"{TASKS_ROLE}; a new role assignment takes a few minutes to apply (needed: "
            f"{action}).")


def _base_image_lines(lines: list[str], base: str) -> list[str]:
    """Log lines saying the FROM image could not be pulled (docker's and buildah's words)."""
    if not base:
        return []
    repo = re.escape(base.split("@", 1)[0].rsplit(":", 1)[0] if "/" in base else base)
    failing = re.compile(r"manifest unknown|not found|pull access denied|name unknown|"
                         r"repository does not exist|unauthorized|denied", re.I)
    return [line for line in lines if re.search(repo, line) and failing.search(line)]
