"""Microsoft.ContainerRegistry for the fake ARM: registries and ACR Tasks quick builds.

What `az acr build` (and aksrun's image build) calls, answered as the service answers it
(azure-rest-api-specs `containerregistry_build.json` 2019-06-01-preview and its examples;
azure-cli `acr/build.py`, `_archive_utils.py`, `_stream_utils.py`):

- `GET registries/{name}` (api 2025-04-01 in the SDK's default profile);
- `POST .../listBuildSourceUploadUrl` -> a SAS URL for a new block blob and its
  `relativePath` (`source/<yyyymmddhhmm>/<uuid>.tar.gz`), on Azurite;
- `POST .../scheduleRun` with a `DockerBuildRequest` -> 200 and the Run (`Queued`); the build
  then runs in a thread through the pluggable executor (`builds.py`): Queued -> Started ->
  Running -> Succeeded | Failed | Canceled | Error | Timeout;
- `GET .../runs/{runId}`, `GET .../runs`;
- `POST .../runs/{runId}/listLogSasUrl` -> a read SAS URL of the run's append blob
  `logs/<runId>/rawtext.log`, written as the run goes in acb's format (Go log timestamps, CRLF
  line ends, "Run ID: cb1 was successful after 42s") and finished with blob metadata
  `Complete=<outcome>`, the signal az's log streamer waits for;
- `POST .../runs/{runId}/cancel` -> 202; the run ends `Canceled`.

Subscriptions whose ACR Tasks are blocked (free/trial) get the real `TasksOperationsNotAllowed`
on scheduleRun: `add_registry(..., tasks_allowed=False)`.

Registries themselves, for `aksrun admin bootstrap`'s "found or created" and `teardown`:

- `PUT registries/{name}` creates as the service does: 201 with provisioningState Creating
  and an `Azure-AsyncOperation` header to `.../registries/{name}/operationStatuses/
  registries-<guid>` (the shape quoted in ARM's 403s for
  `Microsoft.ContainerRegistry/registries/operationStatuses/read`), Succeeded after
  `arm.operation_delay`; a PUT on an existing registry updates tags and admin user (200).
  Names are 5-50 alphanumerics and global: a name in use elsewhere (another subscription of
  the fake, or `taken_names`) gets 409 AlreadyInUse ("The registry DNS name x.azurecr.io is
  already in use. ...", the service's words);
- `GET registries` (resource group and subscription lists), `DELETE` (200, 204 when absent),
  `POST checkNameAvailability` on the subscription.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import io
import pkgutil
import re
import shutil
import tarfile
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from . import errors, validation
from .builds import BuildJob, BuildResult
from .routing import ArmRequest, ArmResponse, Provider, Route

NAMESPACE = "Microsoft.ContainerRegistry"
SDK_PACKAGE = "azure.mgmt.containerregistry"
REGISTRY_TYPE = f"{NAMESPACE}/registries"

# What ARM listed for type 'registries' in a NoRegisteredProviderFound answer (2024-11), plus
# the versions azure-mgmt-containerregistry 14.0 was generated from since then.
REGISTRY_API_VERSIONS = (
    "2017-03-01", "2017-10-01", "2019-05-01", "2019-12-01-preview", "2020-11-01-preview",
    "2021-06-01-preview", "2021-08-01-preview", "2021-09-01", "2021-12-01-preview",
    "2022-02-01-preview", "2022-12-01", "2023-01-01-preview", "2023-06-01-preview",
    "2023-07-01", "2023-08-01-preview", "2023-11-01-preview", "2024-11-01-preview",
    "2025-03-01-preview", "2025-04-01",
)
# The ACR Tasks operations have api-versions of their own (their spec files:
# stable/2018-09-01, stable/2019-04-01, preview/2019-06-01-preview, preview/2025-03-01-preview).
TASKS_API_VERSIONS = ("2018-09-01", "2019-04-01", "2019-06-01-preview", "2025-03-01-preview")
LOCATIONS = (
    "westus", "eastus", "southcentralus", "westeurope", "northeurope", "uksouth", "ukwest",
    "australiaeast", "australiasoutheast", "centralindia", "koreacentral", "francecentral",
    "southafricanorth", "uaenorth", "eastasia", "japaneast", "japanwest", "southeastasia",
    "southindia", "brazilsouth", "canadaeast", "canadacentral", "centralus", "eastus2",
    "northcentralus", "westcentralus", "westus2", "switzerlandnorth", "germanywestcentral",
    "norwayeast", "swedencentral", "westus3",
)

TERMINAL = frozenset({"Succeeded", "Failed", "Canceled", "Error", "Timeout"})
# The `Complete` metadata value per final status: az's streamer (_stream_utils.py) treats
# 'failed' and 'internalerror' as failures, 'timedout' as a timeout, 'canceled' as canceled.
COMPLETE_METADATA = {
    "Succeeded": "Succeeded", "Failed": "Failed", "Canceled": "Canceled",
    "Error": "InternalError", "Timeout": "TimedOut",
}
DEFAULT_TIMEOUT = 3600  # the service's default run timeout (60 minutes)
STEP = "acb_step_0"  # the step id acb gives the build of a quick build
SAS_LIFETIME = dt.timedelta(hours=1)


@dataclass
class Registry:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    login_server: str
    sku: str = "Standard"
    tasks_allowed: bool = True
    run_prefix: str = "cb"
    created: dt.datetime = field(default_factory=lambda: _now())
    tags: dict[str, str] = field(default_factory=dict)
    admin_user_enabled: bool = False
    provisioning_state: str = "Succeeded"
    container: str = field(default_factory=lambda: f"container-{uuid.uuid4().hex}")
    uploads: set[str] = field(default_factory=set)  # relativePaths handed out
    runs: dict[str, Run] = field(default_factory=dict)
    run_count: int = 0

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{REGISTRY_TYPE}/{self.name}"
        )

    def resource(self) -> dict[str, Any]:
        """The registry as the newest api-version shows it; `render` trims per version."""
        created = _iso(self.created)
        return {
            "id": self.id,
            "name": self.name,
            "type": REGISTRY_TYPE,
            "location": self.location,
            "tags": dict(self.tags),
            "systemData": {
                "createdBy": "fake-arm", "createdByType": "Application", "createdAt": created,
                "lastModifiedBy": "fake-arm", "lastModifiedByType": "Application",
                "lastModifiedAt": created,
            },
            "sku": {"name": self.sku, "tier": self.sku},
            "properties": {
                "loginServer": self.login_server,
                "creationDate": created,
                "provisioningState": self.provisioning_state,
                "adminUserEnabled": self.admin_user_enabled,
                "policies": {
                    "quarantinePolicy": {"status": "disabled"},
                    "trustPolicy": {"type": "Notary", "status": "disabled"},
                    "retentionPolicy": {"days": 7, "lastUpdatedTime": created,
                                        "status": "disabled"},
                    "exportPolicy": {"status": "enabled"},
                    "azureADAuthenticationAsArmPolicy": {"status": "enabled"},
                    "softDeletePolicy": {"retentionDays": 7, "lastUpdatedTime": created,
                                         "status": "disabled"},
                },
                "encryption": {"status": "disabled"},
                "dataEndpointEnabled": False,
                "dataEndpointHostNames": [],
                "privateEndpointConnections": [],
                "publicNetworkAccess": "Enabled",
                "networkRuleBypassOptions": "AzureServices",
                "zoneRedundancy": "Disabled",
                "anonymousPullEnabled": False,
            },
        }


@dataclass
class Run:
    registry: Registry
    run_id: str
    source: str  # the blob (relativePath) with the build context
    dockerfile: str
    image_names: list[str]
    build_args: dict[str, str]
    no_cache: bool
    push: bool
    target: str | None
    timeout: int  # seconds, as requested
    platform: dict[str, str]
    cpu: int
    log: RunLog
    status: str = "Queued"
    create_time: dt.datetime = field(default_factory=lambda: _now())
    start_time: dt.datetime | None = None
    finish_time: dt.datetime | None = None
    last_updated: dt.datetime = field(default_factory=lambda: _now())
    output_images: list[dict[str, str]] = field(default_factory=list)
    error_message: str | None = None
    cancel_requested: bool = False
    timed_out: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def resource(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "runId": self.run_id,
            "status": self.status,
            "lastUpdatedTime": _iso(self.last_updated),
            "runType": "QuickBuild",
            "createTime": _iso(self.create_time),
            "platform": self.platform,
            "agentConfiguration": {"cpu": self.cpu},
            "provisioningState": "Succeeded",
            "isArchiveEnabled": False,
        }
        if self.start_time:
            properties["startTime"] = _iso(self.start_time)
        if self.finish_time:
            properties["finishTime"] = _iso(self.finish_time)
        if self.output_images:
            properties["outputImages"] = self.output_images
        if self.error_message:
            properties["runErrorMessage"] = self.error_message
        return {
            "id": f"{self.registry.id}/runs/{self.run_id}",
            "name": self.run_id,
            "type": f"{REGISTRY_TYPE}/runs",
            "properties": properties,
        }


class RunLog:
    """The run's append blob: lines buffered and appended in order, then marked complete."""

    def __init__(self, blob_client: Any) -> None:
        from azure.storage.blob import ContentSettings

        self.blob = blob_client
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        blob_client.create_append_blob(
            content_settings=ContentSettings(content_type="text/plain; charset=utf-8")
        )

    def write(self, text: str, stamp: bool = True) -> None:
        """Service lines get acb's Go log timestamp; build output goes in as it is."""
        prefix = f"{_now():%Y/%m/%d %H:%M:%S} " if stamp else ""
        lines = text.splitlines() or [""]
        with self._lock:
            self._pending.extend(f"{prefix}{line}\r\n" for line in lines)

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                data = "".join(self._pending).encode()
                self._pending.clear()
            for start in range(0, len(data), 4 * 1024 * 1024):  # an append block's limit
                self.blob.append_block(data[start:start + 4 * 1024 * 1024])

    def complete(self, status: str) -> None:
        self.flush()
        self.blob.set_blob_metadata({"Complete": COMPLETE_METADATA[status]})


class ContainerRegistry(Provider):
    namespace = NAMESPACE
    locations = LOCATIONS
    api_versions = {
        "registries": REGISTRY_API_VERSIONS,
        "registries/operationStatuses": REGISTRY_API_VERSIONS,
        "checkNameAvailability": REGISTRY_API_VERSIONS,
        "registries/listBuildSourceUploadUrl": TASKS_API_VERSIONS,
        "registries/scheduleRun": TASKS_API_VERSIONS,
        "registries/runs": TASKS_API_VERSIONS,
        "registries/runs/listLogSasUrl": TASKS_API_VERSIONS,
        "registries/runs/cancel": TASKS_API_VERSIONS,
    }

    def __init__(self, arm: Any) -> None:
        super().__init__(arm)
        self._lock = threading.RLock()
        self._registries: dict[tuple[str, str, str], Registry] = {}
        self._closing = False
        self.taken_names: set[str] = set()  # registry names held outside the fake
        # Where a registry created through the API is served, by name (a sandbox points it at
        # its ACR data-plane stand-in); default `<name>.azurecr.io`, which nothing here serves.
        self.login_server_for: Callable[[str], str] | None = None

    def routes(self) -> list[Route]:
        return [
            Route("POST", "checkNameAvailability", self.check_name),
            Route("GET", "registries", self.list_registries),
            Route("PUT", "registries/{registryName}", self.put_registry),
            Route("DELETE", "registries/{registryName}", self.delete_registry),
            Route("GET", "registries/{registryName}/operationStatuses/{operationId}",
                  self.operation_status),
            Route("GET", "registries/{registryName}", self.get_registry),
            Route("POST", "registries/{registryName}/listBuildSourceUploadUrl", self.upload_url),
            Route("POST", "registries/{registryName}/scheduleRun", self.schedule_run),
            Route("GET", "registries/{registryName}/runs", self.list_runs),
            Route("GET", "registries/{registryName}/runs/{runId}", self.get_run),
            Route("POST", "registries/{registryName}/runs/{runId}/listLogSasUrl", self.log_url),
            Route("POST", "registries/{registryName}/runs/{runId}/cancel", self.cancel),
        ]

    # ---- state --------------------------------------------------------------------------------

    def add_registry(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        login_server: str | None = None,
        sku: str = "Standard",
        tasks_allowed: bool = True,
        location: str | None = None,
        run_prefix: str = "cb",
    ) -> Registry:
        """A registry in an existing resource group. `login_server` defaults to
        `<name>.azurecr.io`; point it at a local registry for executors that push."""
        group = self.arm.resource_group(subscription_id, resource_group)
        if group is None:
            raise KeyError(f"add_resource_group({subscription_id!r}, {resource_group!r}) first")
        if not re.fullmatch(r"[a-zA-Z0-9]{5,50}", name):
            raise ValueError(f"registry names are 5-50 alphanumerics: {name!r}")
        registry = Registry(
            subscription_id=group.subscription_id, resource_group=group.name, name=name,
            location=location or group.location,
            login_server=login_server or f"{name.lower()}.azurecr.io", sku=sku,
            tasks_allowed=tasks_allowed, run_prefix=run_prefix,
        )
        with self._lock:
            self._registries[_key(subscription_id, resource_group, name)] = registry
        if self.arm.storage is not None:
            self.arm.storage.create_container(registry.container)
        return registry

    def registry(self, subscription_id: str, resource_group: str, name: str) -> Registry | None:
        with self._lock:
            return self._registries.get(_key(subscription_id, resource_group, name))

    def resource_exists(self, resource_id: str, rest: list[str]) -> bool | None:
        parts = resource_id.strip("/").split("/")
        if len(rest) == 2 and rest[0].lower() == "registries":
            return self.registry(parts[1], parts[3], rest[1]) is not None
        return None

    def close(self) -> None:
        self._closing = True
        with self._lock:
            runs = [r for reg in self._registries.values() for r in reg.runs.values()]
        for run in runs:
            run.cancelled.set()
        for run in runs:
            if run.thread is not None:
                run.thread.join(self.arm.cancel_grace + 2)
        if self.arm.storage is not None:
            for registry in list(self._registries.values()):
                try:
                    self.arm.storage.delete_container(registry.container)
                except Exception:  # already gone, or Azurite stopped first
                    pass

    # ---- registries ---------------------------------------------------------------------------

    def check_name(self, request: ArmRequest) -> ArmResponse:
        models = _models_for(request.api_version, "RegistryNameCheckRequest")
        body = validation.validate_body(models, "RegistryNameCheckRequest", request.json())
        name = str(body.name)
        if not re.fullmatch(r"[a-zA-Z0-9]{5,50}", name):
            return ArmResponse(200, {
                "nameAvailable": False, "reason": "Invalid",
                "message": "The specified resource name is disallowed",
            })
        if self._taken(name):
            return ArmResponse(200, {
                "nameAvailable": False, "reason": "AlreadyExists",
                "message": f"The registry {name} is already in use.",
            })
        return ArmResponse(200, {"nameAvailable": True})

    def list_registries(self, request: ArmRequest) -> ArmResponse:
        group = request.resource_group.name.lower() if request.resource_group else None
        with self._lock:
            found = [
                r.resource() for (sub, rg, _), r in sorted(self._registries.items())
                if sub == request.subscription.id.lower() and (group is None or rg == group)
            ]
        models = _models_for(request.api_version, "Registry")
        return ArmResponse(200, {"value": [validation.render(models, "Registry", r)
                                           for r in found]})

    def put_registry(self, request: ArmRequest) -> ArmResponse:
        assert request.resource_group is not None
        name = request.params["registryName"]
        models = _models_for(request.api_version, "Registry")
        body = validation.validate_body(models, "Registry", request.json())
        existing = self.registry(request.subscription.id, request.resource_group.name, name)
        if existing is not None:
            existing.tags = dict(body.tags or {})
            if body.admin_user_enabled is not None:
                existing.admin_user_enabled = bool(body.admin_user_enabled)
            return ArmResponse(200, validation.render(models, "Registry", existing.resource()))
        if not re.fullmatch(r"[a-zA-Z0-9]{5,50}", name):
            raise errors.ArmError(
                400, "InvalidRegistryName",
                f"Registry name '{name}' is invalid: it may contain only alphanumeric "
                "characters and must be between 5 and 50 characters long.",
            )
        if self._taken(name):
            raise errors.ArmError(
                409, "AlreadyInUse",
                f"The registry DNS name {name.lower()}.azurecr.io is already in use. You can "
                "check if the name is already claimed using following API: "
                "https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/"
                "checknameavailability",
            )
        registry = self.add_registry(
            request.subscription.id, request.resource_group.name, name,
            login_server=self.login_server_for(name) if self.login_server_for else None,
            sku=str(body.sku.name), location=str(body.location).replace(" ", "").lower(),
        )
        registry.tags = dict(body.tags or {})
        registry.admin_user_enabled = bool(body.admin_user_enabled)
        registry.provisioning_state = "Creating"

        def created() -> None:
            registry.provisioning_state = "Succeeded"

        operation = self.arm.operations.start(
            "create registry", registry.id, self.arm.operation_delay, on_done=created
        )
        url = (
            f"{self.arm.endpoint}{registry.id}/operationStatuses/registries-{operation.id}"
            f"?api-version={request.api_version}"
        )
        headers = {"Azure-AsyncOperation": url}
        if self.arm.retry_after is not None:
            headers["Retry-After"] = str(self.arm.retry_after)
        return ArmResponse(201, validation.render(models, "Registry", registry.resource()),
                           headers)

    def operation_status(self, request: ArmRequest) -> ArmResponse:
        wanted = request.params["operationId"]
        found = self.arm.operations.get(wanted.removeprefix("registries-"))
        registry_path = request.path.lower().rsplit("/operationstatuses/", 1)[0]
        if found is None or found.target.lower() != registry_path:
            raise errors.ArmError(404, "NotFound", f"Operation {wanted} was not found.")
        document = found.document()
        document["id"] = document["name"] = wanted
        return ArmResponse(200, document)

    def delete_registry(self, request: ArmRequest) -> ArmResponse:
        assert request.resource_group is not None
        key = _key(request.subscription.id, request.resource_group.name,
                   request.params["registryName"])
        with self._lock:
            registry = self._registries.pop(key, None)
        if registry is None:
            return ArmResponse(204, None)
        for run in list(registry.runs.values()):
            run.cancelled.set()
        if self.arm.storage is not None:
            with contextlib.suppress(Exception):
                self.arm.storage.delete_container(registry.container)
        return ArmResponse(200, None)

    def _taken(self, name: str) -> bool:
        with self._lock:
            ours = any(n == name.lower() for (_, _, n) in self._registries)
        return ours or name.lower() in {t.lower() for t in self.taken_names}

    # ---- handlers -----------------------------------------------------------------------------

    def get_registry(self, request: ArmRequest) -> ArmResponse:
        registry = self._registry(request)
        models = _models_for(request.api_version, "Registry")
        return ArmResponse(200, validation.render(models, "Registry", registry.resource()))

    def upload_url(self, request: ArmRequest) -> ArmResponse:
        from azure.storage.blob import BlobSasPermissions

        registry = self._registry(request)
        relative = f"source/{_now():%Y%m%d%H%M}/{uuid.uuid4()}.tar.gz"
        with self._lock:
            registry.uploads.add(relative)
        url = self._sas_url(registry, relative, BlobSasPermissions(read=True, write=True))
        return ArmResponse(200, {"uploadUrl": url, "relativePath": relative})

    def schedule_run(self, request: ArmRequest) -> ArmResponse:
        registry = self._registry(request)
        if not registry.tasks_allowed:
            raise errors.ArmError(
                400, "TasksOperationsNotAllowed",
                f"ACR Tasks requests for the registry {registry.name} and "
                f"{registry.subscription_id} are not permitted. Please file an Azure support "
                "request at http://aka.ms/azuresupport for assistance.",
                target="request",
            )
        models = _models_for(request.api_version, "RunRequest")
        body = validation.validate_body(models, "RunRequest", request.json())
        if type(body).__name__ != "DockerBuildRequest":
            raise errors.ArmError(
                400, "BadRequest",
                f"The fake ARM runs DockerBuildRequest only, not {type(body).__name__}.",
                target="type",
            )
        self._check_platform(body)
        source = self._check_source(registry, body.source_location)
        timeout = body.timeout if body.timeout is not None else DEFAULT_TIMEOUT
        with self._lock:
            registry.run_count += 1
            run_id = f"{registry.run_prefix}{registry.run_count}"
            log = RunLog(self._blob(registry, f"logs/{run_id}/rawtext.log"))
            run = Run(
                registry=registry, run_id=run_id, source=source,
                dockerfile=body.docker_file_path,
                image_names=[n.replace("{{.Run.ID}}", run_id) for n in body.image_names or []],
                build_args={a.name: a.value for a in body.arguments or []},
                no_cache=bool(body.no_cache), push=bool(body.is_push_enabled),
                target=body.target, timeout=int(timeout),
                platform={
                    "os": str(body.platform.os).lower(),
                    "architecture": str(body.platform.architecture or "amd64").lower(),
                },
                cpu=(body.agent_configuration.cpu if body.agent_configuration else None) or 2,
                log=log,
            )
            registry.runs[run_id] = run
        run.thread = threading.Thread(
            target=self._execute, args=(run,), name=f"fake-acr-{run_id}", daemon=True
        )
        run.thread.start()
        return self._run_answer(request, run)

    def list_runs(self, request: ArmRequest) -> ArmResponse:
        registry = self._registry(request)
        models = _models_for(request.api_version, "Run")
        with self._lock:
            runs = sorted(registry.runs.values(), key=lambda r: r.create_time, reverse=True)
            resources = [r.resource() for r in runs]
        return ArmResponse(
            200, {"value": [validation.render(models, "Run", r) for r in resources]}
        )

    def get_run(self, request: ArmRequest) -> ArmResponse:
        return self._run_answer(request, self._run(request))

    def log_url(self, request: ArmRequest) -> ArmResponse:
        from azure.storage.blob import BlobSasPermissions

        run = self._run(request)
        blob = f"logs/{run.run_id}/rawtext.log"
        return ArmResponse(
            200, {"logLink": self._sas_url(run.registry, blob, BlobSasPermissions(read=True))}
        )

    def cancel(self, request: ArmRequest) -> ArmResponse:
        run = self._run(request)
        with self._lock:
            if run.status in TERMINAL:
                return ArmResponse(200, None)
            run.cancel_requested = True
        run.cancelled.set()
        return ArmResponse(202, None)

    # ---- request checks -----------------------------------------------------------------------

    def _registry(self, request: ArmRequest) -> Registry:
        assert request.resource_group is not None
        name = request.params["registryName"]
        registry = self.registry(request.subscription.id, request.resource_group.name, name)
        if registry is None:
            raise errors.resource_not_found(REGISTRY_TYPE, name, request.resource_group.name)
        return registry

    def _run(self, request: ArmRequest) -> Run:
        registry = self._registry(request)
        run_id = request.params["runId"]
        with self._lock:
            run = registry.runs.get(run_id.lower()) or registry.runs.get(run_id)
        if run is None:
            raise errors.ArmError(
                404, "ResourceNotFound",
                f"The run '{run_id}' was not found in registry '{registry.name}'.",
            )
        return run

    @staticmethod
    def _check_platform(body: Any) -> None:
        if str(body.platform.os).lower() != "linux":
            raise errors.ArmError(
                400, "BadRequest",
                f"The fake ARM builds for Linux only, not {body.platform.os}.",
                target="platform.os",
            )

    def _check_source(self, registry: Registry, source: str | None) -> str:
        if not source:
            raise errors.ArmError(
                400, "BadRequest", "The sourceLocation field is required.",
                target="sourceLocation",
            )
        with self._lock:
            issued = source in registry.uploads
        if not issued:
            raise errors.ArmError(
                400, "BadRequest",
                f"The source location '{source}' is not a source upload of registry "
                f"'{registry.name}'. Get an upload location from listBuildSourceUploadUrl "
                "(the fake ARM does not fetch git or remote tarball contexts).",
                target="sourceLocation",
            )
        if not self._blob(registry, source).exists():
            raise errors.ArmError(
                400, "BadRequest",
                f"The source location '{source}' has no uploaded content.",
                target="sourceLocation",
            )
        return source

    def _run_answer(self, request: ArmRequest, run: Run) -> ArmResponse:
        models = _models_for(request.api_version, "Run")
        with self._lock:
            resource = run.resource()
        return ArmResponse(200, validation.render(models, "Run", resource))

    # ---- storage ------------------------------------------------------------------------------

    def _blob(self, registry: Registry, name: str) -> Any:
        if self.arm.storage is None:
            raise RuntimeError("FakeArm needs storage= (Azurite) for ACR Tasks")
        return self.arm.storage.get_blob_client(registry.container, name)

    def _sas_url(self, registry: Registry, name: str, permission: Any) -> str:
        from azure.storage.blob import generate_blob_sas

        blob = self._blob(registry, name)
        credential = self.arm.storage.credential
        sas = generate_blob_sas(
            account_name=credential.account_name, container_name=registry.container,
            blob_name=name, account_key=credential.account_key, permission=permission,
            expiry=_now() + SAS_LIFETIME,
        )
        return f"{blob.url}?{sas}"

    # ---- the run ------------------------------------------------------------------------------

    def _set(self, run: Run, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(run, name, value)
            run.last_updated = _now()

    def _execute(self, run: Run) -> None:
        """The service side of a quick build, around the executor's build."""
        log, workdir = run.log, None
        try:
            run.cancelled.wait(self.arm.queue_delay)
            if run.cancelled.is_set():
                self._finish(run, "Canceled")
                return
            self._set(run, status="Started", start_time=_now())
            log.write("Downloading source code...")
            log.flush()
            workdir = Path(tempfile.mkdtemp(prefix=f"fake-acr-{run.run_id}-"))
            try:
                self._unpack(run, workdir)
            except Exception as exc:
                log.write(f"Failed to download source code: {exc}")
                self._finish(run, "Error", f"failed to download source code: {exc}")
                return
            log.write("Finished downloading source code")
            self._set(run, status="Running")
            login = run.registry.login_server
            for line in (
                f"Using acb_vol_{uuid.uuid4()} as the home volume",
                "Setting up Docker configuration...",
                "Successfully set up Docker configuration",
                f"Logging in to registry: {login}",
                f"Successfully logged into {login}",
                f"Executing step ID: {STEP}. Timeout(sec): {run.timeout}, Working directory: "
                "'', Network: 'acb_default_network'",
                "Scanning for dependencies...",
                "Successfully scanned dependencies",
                f"Launching container with name: {STEP}",
            ):
                log.write(line)
            log.flush()
            dockerfile = (workdir / run.dockerfile).resolve()
            if not dockerfile.is_relative_to(workdir.resolve()) or not dockerfile.is_file():
                log.write(
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                    f"lstat /workspace/{run.dockerfile}: no such file or directory", stamp=False,
                )
                self._step_failed(run, "exit status 1")
                return
            self._build(run, workdir)
        except Exception as exc:  # the fake's own failure: the run errs, as the service's would
            self.arm.server_errors.append(traceback.format_exc())
            if run.status not in TERMINAL:
                with contextlib.suppress(Exception):
                    self._finish(run, "Error", f"internal error: {exc}")
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _unpack(self, run: Run, workdir: Path) -> None:
        data = self._blob(run.registry, run.source).download_blob().readall()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            archive.extractall(workdir, filter="data")

    def _build(self, run: Run, workdir: Path) -> None:
        executor = self.arm.executor
        if executor is None:
            self._finish(run, "Error", "the fake ARM has no executor to build with")
            return
        job = BuildJob(
            run_id=run.run_id, context_dir=workdir, dockerfile=run.dockerfile,
            image_names=list(run.image_names), build_args=dict(run.build_args),
            no_cache=run.no_cache, push=run.push, login_server=run.registry.login_server,
            timeout=run.timeout * self.arm.run_timeout_scale,
            log=lambda line: run.log.write(line, stamp=False),
            cancelled=run.cancelled, target=run.target,
        )
        outcome: dict[str, Any] = {}

        def build() -> None:
            try:
                outcome["result"] = executor(job)
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=build, name=f"fake-acr-build-{run.run_id}", daemon=True)
        started = time.monotonic()
        worker.start()
        deadline, give_up = started + job.timeout, None
        while worker.is_alive():
            worker.join(0.05)
            run.log.flush()
            now = time.monotonic()
            if give_up is None:
                if run.cancel_requested or self._closing:
                    give_up = now + self.arm.cancel_grace
                elif now >= deadline:
                    run.timed_out = True
                    run.cancelled.set()
                    give_up = now + self.arm.cancel_grace
            elif now >= give_up:
                break  # the executor ignores its cancel event; the run ends without it
        elapsed = time.monotonic() - started
        result = outcome.get("result")
        if run.cancel_requested or (self._closing and result is None):
            self._finish(run, "Canceled")
        elif run.timed_out:
            self._finish(run, "Timeout", "failed during run, err: context deadline exceeded")
        elif "error" in outcome:
            error = outcome["error"]
            self._finish(run, "Error", f"{type(error).__name__}: {error}")
        elif not isinstance(result, BuildResult):
            self._finish(run, "Error", f"the executor returned {result!r}, not a BuildResult")
        elif not result.succeeded:
            self._step_failed(run, result.error or "exit status 1")
        else:
            self._succeeded(run, result, elapsed)

    def _step_failed(self, run: Run, error: str) -> None:
        run.log.write(f"Container failed during run: {STEP}. No retries remaining.")
        run.log.write(f"failed to run step ID: {STEP}: {error}")
        self._finish(run, "Failed", f"failed during run, err: {error}")

    def _succeeded(self, run: Run, result: BuildResult, elapsed: float) -> None:
        log, login = run.log, run.registry.login_server
        log.write(f"Successfully executed container: {STEP}")
        if run.push:
            for name in run.image_names:
                log.write(f"Pushing image: {login}/{name}, attempt 1")
                log.write(f"Successfully pushed image: {login}/{name}")
        log.write(f"Step ID: {STEP} marked as successful (elapsed time in seconds: {elapsed:.6f})")
        images = [
            {"registry": login, "repository": repo, "tag": tag, "digest": digest}
            for repo, tag, digest in result.images
        ]
        if images:
            log.write(f"Populating digests for step ID: {STEP}...")
            log.write(f"Successfully populated digests for step ID: {STEP}")
            log.write("The following dependencies were found:")
            for image in images:
                log.write(
                    f"- image:\n    registry: {login}\n    repository: {image['repository']}\n"
                    f"    tag: {image['tag']}\n    digest: {image['digest']}\n  git: {{}}",
                    stamp=False,
                )
        self._finish(run, "Succeeded", images=images)

    def _finish(
        self, run: Run, status: str, error: str | None = None,
        images: list[dict[str, str]] | None = None,
    ) -> None:
        """Log the outcome, mark the log blob complete, then show the final status."""
        took = _go_duration((_now() - (run.start_time or run.create_time)).total_seconds())
        run.log.write("", stamp=False)
        if status == "Succeeded":
            run.log.write(f"Run ID: {run.run_id} was successful after {took}", stamp=False)
        elif status == "Canceled":
            run.log.write(f"Run ID: {run.run_id} was canceled after {took}", stamp=False)
        else:
            run.log.write(f"Run ID: {run.run_id} failed after {took}. Error: {error}", stamp=False)
        try:
            run.log.complete(status)
        finally:
            self._set(
                run, status=status, finish_time=_now(), error_message=error,
                output_images=images or [],
            )
            run.cancelled.set()  # nothing may keep building for a finished run


def _models_for(api_version: str, model_name: str) -> ModuleType:
    """The SDK models of this api-version, else of the nearest older one having the model."""
    try:
        models = validation.sdk_models(SDK_PACKAGE, api_version)
        if hasattr(models, model_name):
            return models
    except LookupError:
        pass
    candidates = [v for v in _sdk_versions() if hasattr(_sdk_models(v), model_name)]
    older = [v for v in candidates if _version_key(v) <= _version_key(api_version)]
    chosen = (older or candidates)[-1 if older else 0]
    return _sdk_models(chosen)


def _sdk_versions() -> list[str]:
    package = importlib.import_module(SDK_PACKAGE)
    versions = []
    for module in pkgutil.iter_modules(package.__path__):
        found = re.fullmatch(r"v(\d{4})_(\d{2})_(\d{2})(_preview)?", module.name)
        if found:
            versions.append("-".join(found.group(1, 2, 3)) + ("-preview" if found[4] else ""))
    return sorted(versions, key=_version_key)


def _sdk_models(api_version: str) -> ModuleType:
    return validation.sdk_models(SDK_PACKAGE, api_version)


def _version_key(api_version: str) -> tuple[str, int]:
    return api_version[:10], 0 if api_version.endswith("-preview") else 1


def _key(subscription_id: str, resource_group: str, name: str) -> tuple[str, str, str]:
    return subscription_id.lower(), resource_group.lower(), name.lower()


def _go_duration(seconds: float) -> str:
    """How acb prints a run's length: Go's time.Duration, rounded to the second ("1m9s")."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
