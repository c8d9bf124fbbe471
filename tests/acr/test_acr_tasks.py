"""`AcrTasks.build`: the calls `az acr build` makes, followed to the pushed digest, and every
refusal turned into a typed error that says what to do."""

from __future__ import annotations

import pytest

from aksrun.errors import (
    BaseImageNotFoundError,
    ImageBuildError,
    ImageBuildTimeoutError,
    RegistryNotFoundError,
    RegistryPermissionError,
    RequirementsError,
    TasksNotAllowedError,
)
from aksrun.images.acr_tasks import AcrTasks
from aksrun.images.context import env_context, runner_context

from .conftest import REGISTRY, RESOURCE_GROUP, SUBSCRIPTION, config_for


def tasks_for(arm, **overrides):
    lines, statuses = [], []
    tasks = AcrTasks(config_for(arm, **overrides), on_line=lines.append,
                     on_status=lambda run, status: statuses.append((run, status)),
                     poll_interval=0.05)
    return tasks, lines, statuses


def test_build_uploads_schedules_follows_the_log_and_returns_the_digest(
        arm, builder, principal, registry_scope):
    registry = arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)
    arm.grant(principal, "Container Registry Tasks Contributor", registry_scope)
    builder.lines = [f"line {i}" for i in range(40)]
    context = runner_context("3.11", base="example.azurecr.io/python:3.11-slim")
    tasks, lines, statuses = tasks_for(arm, build_timeout="45m")

    built = tasks.build(context)

    assert built.reference == f"{registry.login_server}/aksrun-runner@{built.digest}"
    assert built.digest.startswith("sha256:") and built.run_id == "cb1"
    job = builder.jobs[0]
    assert job.image_names == [context.image_name] and job.push
    assert job.build_args["BASE"] == "example.azurecr.io/python:3.11-slim"
    assert job.timeout == 45 * 60
    assert "Dockerfile" in builder.contexts[0]
    assert any(name.startswith("wheels/aksrun-") for name in builder.contexts[0])
    # Every line the build wrote reached the caller, in order, then the service's verdict.
    body = [line for line in lines if line.startswith("line ")]
    assert body == builder.lines
    assert any("Run ID: cb1 was successful" in line for line in lines)
    assert statuses[0][0] == "cb1" and statuses[-1] == ("cb1", "Succeeded")
    # The calls were az acr build's, with the pinned API version for the Tasks ones.
    scheduled = arm.calls("POST", "/scheduleRun")
    assert len(scheduled) == 1 and scheduled[0].api_version == "2019-06-01-preview"


def test_a_missing_registry_is_named_with_where_it_was_looked_for(arm, principal):
    arm.grant_owner(principal, SUBSCRIPTION)
    tasks, _, _ = tasks_for(arm)
    with pytest.raises(RegistryNotFoundError) as info:
        tasks.build(runner_context("3.11"))
    text = str(info.value)
    assert f"registry {REGISTRY!r}" in text and RESOURCE_GROUP in text
    assert "AZURE_CONTAINER_REGISTRY" in text


def test_a_missing_resource_group_is_a_missing_registry(arm, principal):
    arm.grant_owner(principal, SUBSCRIPTION)
    tasks, _, _ = tasks_for(arm, resource_group="rg-nope")
    with pytest.raises(RegistryNotFoundError, match="rg-nope"):
        tasks.registry_login_server()


def test_acrpush_alone_may_not_run_tasks_and_the_role_to_ask_for_is_named(
        arm, principal, registry_scope):
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)
    arm.grant(principal, "AcrPush", registry_scope)
    arm.grant(principal, "Reader", registry_scope)
    tasks, _, _ = tasks_for(arm)
    with pytest.raises(RegistryPermissionError) as info:
        tasks.build(runner_context("3.11"))
    assert "Container Registry Tasks Contributor" in str(info.value)
    assert "listBuildSourceUploadUrl" in str(info.value)
    assert arm.calls("POST", "/scheduleRun") == []


def test_free_subscriptions_get_tasks_not_allowed(arm, principal, registry_scope):
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY, tasks_allowed=False)
    arm.grant(principal, "Owner", registry_scope)
    tasks, _, _ = tasks_for(arm)
    with pytest.raises(TasksNotAllowedError) as info:
        tasks.build(runner_context("3.11"))
    assert "AKSRUN_IMAGE" in str(info.value) and "trial" in str(info.value)


def test_a_build_past_its_time_limit_is_a_timeout(arm, builder, principal, registry_scope):
    arm.run_timeout_scale = 0.002  # the service's minimum is 300 s: 0.6 s here
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)
    arm.grant(principal, "Owner", registry_scope)
    builder.mode = "hang"
    tasks, _, statuses = tasks_for(arm, build_timeout="5m")
    with pytest.raises(ImageBuildTimeoutError) as info:
        tasks.build(runner_context("3.11"))
    assert "AKSRUN_BUILD_TIMEOUT" in str(info.value) and info.value.run_id == "cb1"
    assert statuses[-1] == ("cb1", "Timeout")
    assert builder.cancelled.is_set()


def test_requirements_pip_cannot_install_fail_with_pip_s_own_lines(
        arm, builder, principal, registry_scope):
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)
    arm.grant(principal, "Owner", registry_scope)
    builder.mode = "fail"
    builder.lines = [
        "STEP 5/8: RUN python -m pip install --requirement /tmp/aksrun-env/requirements.txt",
        "ERROR: Could not find a version that satisfies the requirement nope-pkg==9 (from "
        "versions: none)",
        "ERROR: No matching distribution found for nope-pkg==9",
        "error building at STEP \"RUN python -m pip install\": exit status 1",
    ]
    context = env_context(["nope-pkg==9"], "r.io/aksrun-runner@sha256:" + "1" * 64, "t", "3.11")
    tasks, _, _ = tasks_for(arm)
    with pytest.raises(RequirementsError) as info:
        tasks.build(context)
    assert "No matching distribution found for nope-pkg==9" in str(info.value)
    assert len(info.value.log_lines) == 2 and isinstance(info.value, ImageBuildError)


def test_a_base_image_that_cannot_be_pulled_is_named(arm, builder, principal, registry_scope):
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)
    arm.grant(principal, "Owner", registry_scope)
    builder.mode = "fail"
    base = "example.azurecr.io/python:3.99-slim"
    builder.lines = [
        f"STEP 1/8: FROM {base}",
        f"Error: creating build container: initializing source docker://{base}: reading "
        "manifest 3.99-slim in example.azurecr.io/python: manifest unknown",
    ]
    tasks, _, _ = tasks_for(arm)
    with pytest.raises(BaseImageNotFoundError) as info:
        tasks.build(runner_context("3.11", base=base))
    assert base in str(info.value) and "AKSRUN_BASE_IMAGE" in str(info.value)


def test_ctrl_c_while_following_cancels_the_run(arm, builder, principal, registry_scope):
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, REGISTRY)
    arm.grant(principal, "Owner", registry_scope)
    builder.mode = "hang"

    def interrupt(line: str) -> None:
        if line.startswith("Step 1/6"):
            raise KeyboardInterrupt

    tasks = AcrTasks(config_for(arm), on_line=interrupt, poll_interval=0.05)
    with pytest.raises(KeyboardInterrupt):
        tasks.build(runner_context("3.11"))
    assert builder.cancelled.wait(10)
    assert len(arm.calls("POST", "/cancel")) == 1
