"""ACR Tasks quick builds as `az acr build` drives them, through the SDK clients it uses
(api 2019-06-01-preview): upload URL -> upload the tar.gz -> scheduleRun -> runs.get until the
run ends -> the log blob (complete when its metadata says so) -> cancel."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.v2019_06_01_preview.models import (
    AgentProperties,
    Argument,
    DockerBuildRequest,
    PlatformProperties,
    Run,
)
from azure.storage.blob import BlobClient

from tests.fake_arm.conftest import (
    REGISTRY,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    tasks_client,
    upload_context,
    wait_for_run,
)

pytestmark = pytest.mark.azurite

DOCKERFILE = "0f3c_Dockerfile"  # az acr build adds the Dockerfile to the tar as <uuid>_<name>


def build_request(source: str, **changes: object) -> DockerBuildRequest:
    fields = {
        "source_location": source,
        "docker_file_path": DOCKERFILE,
        "image_names": ["aksrun-runner:py3.11-0.1.0-{{.Run.ID}}"],
        "is_push_enabled": True,
        "platform": PlatformProperties(os="Linux", architecture="amd64"),
        "arguments": [
            Argument(name="BASE", value="localhost/python:3.11", is_secret=False),
            Argument(name="TOKEN", value="s3cret", is_secret=True),
        ],
    }
    fields.update(changes)
    return DockerBuildRequest(**fields)


def schedule(tasks: ContainerRegistryManagementClient, request: object) -> Run:
    return tasks.registries.begin_schedule_run(RESOURCE_GROUP, REGISTRY, request).result()


def log_blob(tasks: ContainerRegistryManagementClient, run_id: str) -> BlobClient:
    link = tasks.runs.get_log_sas_url(RESOURCE_GROUP, REGISTRY, run_id)
    return BlobClient.from_blob_url(link.log_link)


def log_text(blob: BlobClient) -> str:
    return blob.download_blob().readall().decode()


@pytest.fixture
def tasks(arm, registry, client_id) -> ContainerRegistryManagementClient:
    """The build's identity holds just the role meant for this (on the registry only)."""
    arm.grant(client_id, "Container Registry Tasks Contributor", registry.id)
    return tasks_client(arm)


# ---- the happy path ---------------------------------------------------------------------------


def test_a_quick_build_runs_to_success_with_the_images_digest_and_a_complete_log(
    arm, tasks, builder, context_files
) -> None:
    source = upload_context(tasks, context_files)
    queued = schedule(tasks, build_request(source, no_cache=True,
                                           agent_configuration=AgentProperties(cpu=2)))
    done = wait_for_run(tasks, queued.run_id)
    blob = log_blob(tasks, done.run_id)
    text = log_text(blob)

    assert source.startswith("source/") and source.endswith(".tar.gz")
    assert (queued.run_id, queued.status, queued.run_type) == ("cb1", "Queued", "QuickBuild")
    assert queued.provisioning_state == "Succeeded"
    assert done.status == "Succeeded"
    assert done.start_time and done.finish_time and done.finish_time >= done.start_time
    image = done.output_images[0]
    digest = "sha256:" + hashlib.sha256(context_files[DOCKERFILE].encode()).hexdigest()
    assert (image.registry, image.repository, image.tag, image.digest) == (
        "aksrunacr.azurecr.io", "aksrun-runner", "py3.11-0.1.0-cb1", digest
    )
    job = builder.jobs[0]
    assert builder.files[0] == ["0f3c_Dockerfile", "app/main.py"]
    assert (job.dockerfile, job.image_names, job.login_server) == (
        DOCKERFILE, ["aksrun-runner:py3.11-0.1.0-cb1"], "aksrunacr.azurecr.io"
    )
    assert job.build_args == {"BASE": "localhost/python:3.11", "TOKEN": "s3cret"}
    assert (job.no_cache, job.push, job.timeout) == (True, True, 3600)
    lines = text.split("\r\n")
    assert lines[0].endswith(" Downloading source code...") and lines[0][:4].isdigit()
    assert "Step 1/2 : FROM localhost/python:3.11" in lines  # the builder's own output
    assert any(line.endswith(
        "Successfully pushed image: aksrunacr.azurecr.io/aksrun-runner:py3.11-0.1.0-cb1"
    ) for line in lines)
    assert lines[-2].startswith("Run ID: cb1 was successful after ") and lines[-1] == ""
    assert blob.get_blob_properties().metadata == {"Complete": "Succeeded"}
    assert "s3cret" not in text
    assert [r.id for r in tasks.runs.list(RESOURCE_GROUP, REGISTRY)] == [done.id]


def test_runs_are_numbered_per_registry_and_the_log_link_is_read_only(
    arm, tasks, context_files
) -> None:
    first = schedule(tasks, build_request(upload_context(tasks, context_files)))
    second = schedule(tasks, build_request(upload_context(tasks, context_files)))
    wait_for_run(tasks, second.run_id)
    blob = log_blob(tasks, first.run_id)

    with pytest.raises(HttpResponseError) as write:
        blob.append_block(b"forged\r\n")

    assert (first.run_id, second.run_id) == ("cb1", "cb2")
    assert write.value.status_code == 403


def test_the_log_is_not_complete_while_the_run_is_running(
    arm, tasks, builder, context_files
) -> None:
    builder.mode = "hang"
    run = schedule(tasks, build_request(upload_context(tasks, context_files)))
    assert builder.started.wait(10)
    running = wait_for_run(tasks, run.run_id, until=lambda r: r.status == "Running")
    blob = log_blob(tasks, run.run_id)
    metadata = blob.get_blob_properties().metadata

    tasks.runs.begin_cancel(RESOURCE_GROUP, REGISTRY, run.run_id).result()

    assert running.start_time is not None and running.finish_time is None
    assert not any(key.lower() == "complete" for key in metadata)


# ---- runs that do not succeed -----------------------------------------------------------------


def test_a_failing_build_ends_failed_with_the_error_in_run_and_log(
    arm, tasks, builder, context_files
) -> None:
    builder.mode = "fail"
    run = wait_for_run(tasks, schedule(tasks, build_request(
        upload_context(tasks, context_files))).run_id)
    blob = log_blob(tasks, run.run_id)
    text = log_text(blob)

    assert run.status == "Failed"
    assert run.run_error_message == "failed during run, err: exit status 1"
    assert not run.output_images
    assert "The command '/bin/sh -c false' returned a non-zero code: 1\r\n" in text
    assert "\r\nRun ID: cb1 failed after " in text
    assert text.endswith(". Error: failed during run, err: exit status 1\r\n")
    assert blob.get_blob_properties().metadata == {"Complete": "Failed"}


def test_a_crashing_executor_is_a_run_error(arm, tasks, builder, context_files) -> None:
    builder.mode = "raise"
    run = wait_for_run(tasks, schedule(tasks, build_request(
        upload_context(tasks, context_files))).run_id)

    assert run.status == "Error"
    assert run.run_error_message == "RuntimeError: the builder fell over"
    assert log_blob(tasks, run.run_id).get_blob_properties().metadata == {
        "Complete": "InternalError"
    }


def test_a_missing_dockerfile_fails_the_run_as_docker_would(arm, tasks, builder) -> None:
    source = upload_context(tasks, {"app/main.py": "print(1)\n"})
    run = wait_for_run(tasks, schedule(tasks, build_request(source)).run_id)

    assert run.status == "Failed"
    assert builder.jobs == []
    assert "unable to evaluate symlinks in Dockerfile path" in log_text(log_blob(tasks, "cb1"))


def test_cancel_is_accepted_and_stops_the_build(arm, tasks, builder, context_files) -> None:
    builder.mode = "hang"
    run = schedule(tasks, build_request(upload_context(tasks, context_files)))
    assert builder.started.wait(10)

    tasks.runs.begin_cancel(RESOURCE_GROUP, REGISTRY, run.run_id).result()
    ended = wait_for_run(tasks, run.run_id)

    assert ended.status == "Canceled"
    assert builder.saw_cancel.is_set()
    assert [r.status for r in arm.calls("POST", f"/runs/{run.run_id}/cancel")] == [202]
    blob = log_blob(tasks, run.run_id)
    assert blob.get_blob_properties().metadata == {"Complete": "Canceled"}
    assert "\r\nRun ID: cb1 was canceled after " in log_text(blob)


def test_a_run_past_its_timeout_is_stopped_and_ends_timeout(
    arm, tasks, builder, context_files
) -> None:
    arm.run_timeout_scale = 0.002  # the requested 300 s (the minimum) become 0.6 s
    builder.mode = "hang"
    run = schedule(tasks, build_request(upload_context(tasks, context_files), timeout=300))
    ended = wait_for_run(tasks, run.run_id)

    assert ended.status == "Timeout"
    assert builder.jobs[0].timeout == pytest.approx(0.6)
    assert builder.saw_cancel.is_set()
    assert log_blob(tasks, run.run_id).get_blob_properties().metadata == {"Complete": "TimedOut"}


# ---- refusals ---------------------------------------------------------------------------------


def test_a_tasks_blocked_subscription_gets_tasks_operations_not_allowed(
    arm, tasks, registry, context_files
) -> None:
    registry.tasks_allowed = False  # what a free-trial subscription gets
    source = upload_context(tasks, context_files)  # the upload URL is still handed out

    with pytest.raises(HttpResponseError) as refused:
        schedule(tasks, build_request(source))

    assert refused.value.status_code == 400
    assert refused.value.error.code == "TasksOperationsNotAllowed"
    assert refused.value.error.message == (
        f"ACR Tasks requests for the registry {REGISTRY} and {SUBSCRIPTION} are not permitted. "
        "Please file an Azure support request at http://aka.ms/azuresupport for assistance."
    )
    assert refused.value.error.target == "request"
    assert registry.runs == {}


def test_acr_push_does_not_allow_scheduling_a_run(arm, registry, client_id) -> None:
    arm.grant(client_id, "AcrPush", registry.id)
    tasks = tasks_client(arm)

    with pytest.raises(HttpResponseError) as denied:
        schedule(tasks, build_request("source/202611301800/x.tar.gz"))

    assert denied.value.status_code == 403
    assert denied.value.error.code == "AuthorizationFailed"
    assert (
        "does not have authorization to perform action "
        "'Microsoft.ContainerRegistry/registries/scheduleRun/action' over scope "
        f"'{registry.id}' or the scope is invalid." in denied.value.error.message
    )


BAD_REQUESTS = {
    "no dockerFilePath": (
        {"docker_file_path": None}, "BadRequest", "The dockerFilePath field is required.",
        "dockerFilePath",
    ),
    "timeout under the minimum": (
        {"timeout": 299}, "BadRequest", "The field timeout must be between 300 and 28800.",
        "timeout",
    ),
    "timeout over the maximum": (
        {"timeout": 28801}, "BadRequest", "The field timeout must be between 300 and 28800.",
        "timeout",
    ),
    "unknown os": (
        {"platform": PlatformProperties(os="Plan9")}, "BadRequest",
        "The value 'Plan9' is not valid for platform.os. The allowed values are: Windows, Linux.",
        "platform.os",
    ),
    "argument without a value": (
        {"arguments": [Argument(name="BASE", value=None)]}, "BadRequest",
        "The arguments[0].value field is required.", "arguments[0].value",
    ),
    "no platform": (
        {"platform": None}, "BadRequest", "The platform field is required.", "platform",
    ),
}


@pytest.mark.parametrize("changes, code, message, target", BAD_REQUESTS.values(),
                         ids=BAD_REQUESTS.keys())
def test_invalid_build_requests_are_refused_naming_the_field(
    arm, tasks, registry, context_files, changes, code, message, target
) -> None:
    source = upload_context(tasks, context_files)

    with pytest.raises(HttpResponseError) as refused:
        schedule(tasks, build_request(source, **changes))

    assert refused.value.status_code == 400
    assert (refused.value.error.code, refused.value.error.message) == (code, message)
    assert refused.value.error.target == target
    assert registry.runs == {}


def test_a_source_location_the_registry_did_not_hand_out_is_refused(
    arm, tasks, registry, context_files
) -> None:
    issued_but_empty = tasks.registries.get_build_source_upload_url(
        RESOURCE_GROUP, REGISTRY
    ).relative_path

    with pytest.raises(HttpResponseError) as unknown:
        schedule(tasks, build_request("source/202611301800/made-up.tar.gz"))
    with pytest.raises(HttpResponseError) as empty:
        schedule(tasks, build_request(issued_but_empty))

    assert unknown.value.status_code == empty.value.status_code == 400
    assert unknown.value.error.target == empty.value.error.target == "sourceLocation"
    assert "'source/202611301800/made-up.tar.gz' is not a source upload" in (
        unknown.value.error.message
    )
    assert empty.value.error.message == (
        f"The source location '{issued_but_empty}' has no uploaded content."
    )
    assert registry.runs == {}


def test_bodies_that_are_not_a_run_request_are_refused(arm, tasks, registry) -> None:
    with pytest.raises(HttpResponseError) as not_json:
        schedule(tasks, io.BytesIO(b"{not json"))
    with pytest.raises(HttpResponseError) as unknown_type:
        schedule(tasks, io.BytesIO(json.dumps({"type": "ShellRequest"}).encode()))
    with pytest.raises(HttpResponseError) as wrong_type:
        schedule(tasks, io.BytesIO(json.dumps({
            "type": "DockerBuildRequest", "dockerFilePath": "Dockerfile",
            "platform": {"os": "Linux"}, "timeout": "an hour",
        }).encode()))

    assert not_json.value.error.code == "InvalidRequestContent"
    assert not_json.value.error.message.startswith(
        "The request content was invalid and could not be deserialized: '"
    )
    assert unknown_type.value.error.code == "BadRequest"
    assert unknown_type.value.error.message.startswith(
        "The value 'ShellRequest' of type is not a known RunRequest type."
    )
    assert wrong_type.value.error.code == "InvalidRequestContent"
    assert "timeout" in wrong_type.value.error.message
    assert registry.runs == {}


def test_an_unknown_run_is_404(arm, tasks) -> None:
    with pytest.raises(HttpResponseError) as missing:
        tasks.runs.get(RESOURCE_GROUP, REGISTRY, "cb41")

    assert missing.value.status_code == 404
    assert missing.value.error.code == "ResourceNotFound"
