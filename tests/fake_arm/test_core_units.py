"""The fake ARM's generic parts on their own (no server): body validation against the SDK's
versioned models, resources rendered per api-version, RBAC role matching and scopes, routes."""

from __future__ import annotations

import pytest

from tests.support.fake_arm import ArmError, ArmResponse, Route
from tests.support.fake_arm.rbac import role, scope_covers
from tests.support.fake_arm.validation import problems, render, sdk_models, validate_body

TASKS = sdk_models("azure.mgmt.containerregistry", "2019-06-01-preview")
REGISTRIES = sdk_models("azure.mgmt.containerregistry", "2025-04-01")


def docker_build(**changes) -> dict:
    body = {
        "type": "DockerBuildRequest",
        "dockerFilePath": "Dockerfile",
        "platform": {"os": "Linux"},
        "timeout": 600,
    }
    body.update(changes)
    return body


def test_a_valid_polymorphic_body_becomes_the_sdk_subclass() -> None:
    model = validate_body(TASKS, "RunRequest", docker_build(
        imageNames=["a:1"], arguments=[{"name": "X", "value": "1", "isSecret": True}],
        platform={"os": "linux", "architecture": "arm64"},  # enums match in any case, as ARM's
    ))

    assert type(model).__name__ == "DockerBuildRequest"
    assert (model.docker_file_path, model.timeout) == ("Dockerfile", 600)
    assert model.image_names == ["a:1"]
    assert model.arguments[0].is_secret is True


def test_every_problem_is_found_with_its_json_path() -> None:
    found = problems(TASKS, "RunRequest", docker_build(
        dockerFilePath=None, timeout=5, platform={"os": "BeOS", "variant": "v9"},
        arguments=[{"name": "X"}, {"value": "1"}],
    ))

    assert [(p.path, p.shape) for p in found] == [
        ("dockerFilePath", False),
        ("arguments[0].value", False),
        ("arguments[1].name", False),
        ("timeout", False),
        ("platform.os", False),
        ("platform.variant", False),
    ]


def test_type_errors_are_invalid_request_content_and_rules_bad_request() -> None:
    with pytest.raises(ArmError) as shape:
        validate_body(TASKS, "RunRequest", docker_build(imageNames="a:1"))
    with pytest.raises(ArmError) as rule:
        validate_body(TASKS, "RunRequest", docker_build(timeout=30000, dockerFilePath=None))
    with pytest.raises(ArmError) as no_body:
        validate_body(TASKS, "RunRequest", None)

    assert (shape.value.status, shape.value.code) == (400, "InvalidRequestContent")
    assert "imageNames" in shape.value.message
    assert (rule.value.status, rule.value.code, rule.value.target) == (
        400, "BadRequest", "dockerFilePath"
    )
    assert [d["target"] for d in rule.value.details] == ["dockerFilePath", "timeout"]
    assert no_body.value.code == "InvalidRequestContent"


def test_read_only_fields_in_a_request_are_ignored_as_arm_ignores_them() -> None:
    assert problems(TASKS, "RunRequest", docker_build()) == []
    assert problems(REGISTRIES, "Registry", {
        "location": "eastus", "sku": {"name": "Standard"},
        "properties": {"loginServer": 42},  # read-only: never checked, never a problem
    }) == []
    assert [p.path for p in problems(REGISTRIES, "Registry", {"location": "eastus"})] == ["sku"]


def test_render_keeps_only_what_the_api_version_knows() -> None:
    stored = {
        "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/"
        "registries/r",
        "name": "r", "type": "Microsoft.ContainerRegistry/registries", "location": "eastus",
        "sku": {"name": "Premium", "tier": "Premium"},
        "properties": {"loginServer": "r.azurecr.io", "someFutureField": True},
        "futureTopLevel": 1,
    }

    shown = render(REGISTRIES, "Registry", stored)

    assert shown["properties"] == {"loginServer": "r.azurecr.io"}
    assert "futureTopLevel" not in shown and shown["sku"]["name"] == "Premium"


def test_roles_match_actions_with_wildcards_and_not_actions() -> None:
    reader, contributor = role("reader"), role("Contributor")
    tasks = role("fb382eab-e894-4461-af04-94435c366c3f")

    assert reader.allows("Microsoft.ContainerRegistry/registries/read")
    assert reader.allows("microsoft.containerregistry/registries/runs/READ")
    assert not reader.allows("Microsoft.ContainerRegistry/registries/scheduleRun/action")
    assert contributor.allows("Microsoft.ContainerRegistry/registries/scheduleRun/action")
    assert not contributor.allows("Microsoft.Authorization/roleAssignments/write")
    assert tasks.name == "Container Registry Tasks Contributor"
    assert tasks.allows("Microsoft.ContainerRegistry/registries/runs/cancel/action")
    assert not role("AcrPush").allows("Microsoft.ContainerRegistry/registries/read")
    with pytest.raises(ValueError, match="AcrPush"):
        role("Registry Wizard")


def test_an_assignment_covers_its_scope_and_below_only() -> None:
    group = "/subscriptions/S/resourceGroups/RG"

    assert scope_covers(group, "/subscriptions/s/resourcegroups/rg/providers/X/y/z")
    assert scope_covers(group, group)
    assert not scope_covers(group, "/subscriptions/S/resourceGroups/RG2")
    assert not scope_covers(group, "/subscriptions/S")


def test_routes_derive_arms_resource_type_action_and_scope() -> None:
    def handler(request):
        return ArmResponse()

    cancel = Route("POST", "registries/{registryName}/runs/{runId}/cancel", handler)
    get = Route("GET", "registries/{registryName}", handler)
    runs = Route("GET", "registries/{registryName}/runs", handler)
    path = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"

    assert cancel.match(["Registries", "r", "RUNS", "cb1", "cancel"]) == {
        "registryName": "r", "runId": "cb1"
    }
    assert cancel.match(["registries", "r", "runs", "cb1"]) is None
    assert cancel.type_name() == "registries/runs/cancel"
    assert cancel.rbac_action("Microsoft.ContainerRegistry") == (
        "Microsoft.ContainerRegistry/registries/runs/cancel/action"
    )
    assert cancel.scope_of(f"{path}/runs/cb1/cancel") == f"{path}/runs/cb1"
    assert get.rbac_action("Microsoft.ContainerRegistry") == (
        "Microsoft.ContainerRegistry/registries/read"
    )
    assert (runs.type_name(), runs.scope_of(f"{path}/runs")) == ("registries/runs", f"{path}/runs")
