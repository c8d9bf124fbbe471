"""Registries on the fake ARM for `aksrun admin bootstrap`'s "found or created": creation as a
201 + Azure-AsyncOperation long-running operation, listing, global names, deletion."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistry.v2025_04_01.models import Registry, RegistryNameCheckRequest, Sku

from tests.fake_arm.conftest import RESOURCE_GROUP, SUBSCRIPTION, arm_client, error_code
from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite


@pytest.fixture
def acr(arm: FakeArm, client_id: str):
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    arm.grant_owner(client_id, SUBSCRIPTION)
    arm.retry_after = None
    arm.operation_delay = 0.3
    return arm_client(arm, ContainerRegistryManagementClient)


def test_a_registry_is_created_as_a_long_running_operation(arm, acr) -> None:
    body = Registry(location="westeurope", sku=Sku(name="Standard"), admin_user_enabled=False,
                    tags={"managed-by": "aksrun"})

    poller = acr.registries.begin_create(RESOURCE_GROUP, "aksrunnew01", body)
    first = poller.polling_method()._initial_response.http_response
    during = acr.registries.get(RESOURCE_GROUP, "aksrunnew01")
    created = poller.result()
    listed = [r.name for r in acr.registries.list_by_resource_group(RESOURCE_GROUP)]
    everywhere = [r.name for r in acr.registries.list()]

    assert first.status_code == 201
    assert "/registries/aksrunnew01/operationStatuses/registries-" in (
        first.headers["Azure-AsyncOperation"])
    assert during.provisioning_state == "Creating"
    assert created.provisioning_state == "Succeeded"
    assert (created.login_server, created.sku.name, created.tags) == (
        "aksrunnew01.azurecr.io", "Standard", {"managed-by": "aksrun"})
    assert listed == ["aksrunnew01"] and everywhere == ["aksrunnew01"]


def test_registry_names_are_global(arm, acr) -> None:
    acr_provider = arm.provider("Microsoft.ContainerRegistry")
    acr_provider.taken_names.add("contosoacr")

    check = acr.registries.check_name_availability(RegistryNameCheckRequest(name="contosoacr"))
    with pytest.raises(HttpResponseError) as taken:
        acr.registries.begin_create(RESOURCE_GROUP, "contosoacr", Registry(
            location="westeurope", sku=Sku(name="Standard"))).result()

    assert (check.name_available, check.reason) == (False, "AlreadyExists")
    assert taken.value.status_code == 409 and error_code(taken.value) == "AlreadyInUse"
    assert taken.value.error.message.startswith(
        "The registry DNS name contosoacr.azurecr.io is already in use.")


def test_a_registry_is_deleted(arm, acr) -> None:
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, "aksrungone")

    acr.registries.begin_delete(RESOURCE_GROUP, "aksrungone").result()
    acr.registries.begin_delete(RESOURCE_GROUP, "aksrungone").result()  # absent: 204

    with pytest.raises(ResourceNotFoundError):
        acr.registries.get(RESOURCE_GROUP, "aksrungone")
    assert [c.status for c in arm.calls("DELETE", "/registries/aksrungone")] == [200, 204]
