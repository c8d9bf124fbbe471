"""Microsoft.Storage on the fake ARM through azure-mgmt-storage 25 (api 2026-09-01): account
creation as a 202 + Location long-running operation, the account's security settings and blob
endpoint, and blob containers made through the management plane that really appear in (and
go from) the Azurite the fake was given."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.storage import StorageManagementClient, models

from tests.fake_arm.conftest import RESOURCE_GROUP, SUBSCRIPTION, arm_client, error_code
from tests.support.fake_arm import FakeArm

pytestmark = pytest.mark.azurite

SECURE = {"minimum_tls_version": "TLS1_2", "allow_blob_public_access": False,
          "allow_shared_key_access": False, "enable_https_traffic_only": True}


@pytest.fixture
def storage(arm: FakeArm, client_id: str) -> StorageManagementClient:
    arm.grant_owner(client_id, SUBSCRIPTION)
    arm.operation_delay = 0.3
    arm.retry_after = None
    return arm_client(arm, StorageManagementClient)


@pytest.fixture
def account(arm: FakeArm, identity) -> str:
    name = f"sa{uuid.uuid4().hex[:12]}"
    arm.add_storage_account(SUBSCRIPTION, RESOURCE_GROUP, name,
                            blob_endpoint=identity.account_url, allow_shared_key_access=False)
    return name


def create_parameters(**overrides) -> models.StorageAccountCreateParameters:
    return models.StorageAccountCreateParameters(
        sku=models.Sku(name="Standard_LRS"), kind="StorageV2", location="westeurope",
        tags={"managed-by": "aksrun"}, **{**SECURE, **overrides},
    )


def test_creating_an_account_is_202_then_polled_to_the_account(arm, storage, identity) -> None:
    arm.retry_after = 1  # as the service sends it (17 there), the SDK waits that long
    arm.operation_delay = 1.5
    name = f"sa{uuid.uuid4().hex[:12]}"

    started = time.monotonic()
    poller = storage.storage_accounts.begin_create(RESOURCE_GROUP, name, create_parameters())
    first = poller.polling_method()._initial_response.http_response
    during = storage.storage_accounts.get_properties(RESOURCE_GROUP, name)
    created = poller.result()
    took = time.monotonic() - started

    assert first.status_code == 202 and first.text() == ""
    monitor = first.headers["Location"]
    assert "/providers/Microsoft.Storage/locations/westeurope/asyncoperations/" in monitor
    assert "monitor=true" in monitor and first.headers["Retry-After"] == "1"
    assert during.provisioning_state == "Creating"
    assert created.provisioning_state == "Succeeded" and took >= 2.0
    assert (created.minimum_tls_version, created.allow_blob_public_access,
            created.allow_shared_key_access, created.enable_https_traffic_only) == (
        "TLS1_2", False, False, True)
    assert created.primary_endpoints.blob == identity.account_url.rstrip("/") + "/"
    assert created.tags == {"managed-by": "aksrun"}
    monitor_path = monitor.split(arm.endpoint)[1].split("?")[0]
    polls = [c.status for c in arm.calls("GET", monitor_path)]
    assert polls[-1] == 200 and len(polls) >= 2 and set(polls[:-1]) == {202}


def test_names_are_global_and_checked(arm, storage, account) -> None:
    arm.provider("Microsoft.Storage").taken_names.add("somebodyelses")

    taken = storage.storage_accounts.check_name_availability(
        models.StorageAccountCheckNameAvailabilityParameters(
            name="somebodyelses", type="Microsoft.Storage/storageAccounts"))
    free = storage.storage_accounts.check_name_availability(
        models.StorageAccountCheckNameAvailabilityParameters(
            name=f"free{uuid.uuid4().hex[:8]}", type="Microsoft.Storage/storageAccounts"))
    with pytest.raises(HttpResponseError) as conflict:
        storage.storage_accounts.begin_create(RESOURCE_GROUP, "somebodyelses",
                                              create_parameters()).result()
    with pytest.raises(HttpResponseError) as invalid:
        storage.storage_accounts.begin_create(RESOURCE_GROUP, "Not_Valid",
                                              create_parameters()).result()

    assert (taken.name_available, taken.reason) == (False, "AlreadyExists")
    assert free.name_available is True
    assert conflict.value.status_code == 409
    assert error_code(conflict.value) == "StorageAccountAlreadyTaken"
    assert error_code(invalid.value) == "AccountNameInvalid"
    # An account of this group, created again: an update, answered at once.
    again = storage.storage_accounts.begin_create(
        RESOURCE_GROUP, account, create_parameters(minimum_tls_version="TLS1_2")).result()
    assert again.name == account and again.tags == {"managed-by": "aksrun"}


def test_a_container_made_through_arm_is_a_real_azurite_container(arm, storage, account,
                                                                   identity) -> None:
    name = f"aksrun-{uuid.uuid4().hex[:10]}"
    meta = {"managed_by": "aksrun", "aksrun_user": "alice"}
    try:
        made = storage.blob_containers.create(
            RESOURCE_GROUP, account, name,
            models.BlobContainer(public_access="None", metadata=meta),
            cls=lambda response, model, _: (response.http_response.status_code, model))
        real = identity.service_client().get_container_client(name).get_container_properties()
        again = storage.blob_containers.create(
            RESOURCE_GROUP, account, name, models.BlobContainer(metadata={**meta, "note": "x"}),
            cls=lambda response, model, _: response.http_response.status_code)
        got = storage.blob_containers.get(RESOURCE_GROUP, account, name)
        listed = list(storage.blob_containers.list(RESOURCE_GROUP, account))

        assert made[0] == 201 and made[1].name == name
        assert real.metadata == meta
        assert again == 200  # the management plane's PUT is create-or-update, never 409
        assert got.metadata == {**meta, "note": "x"} and got.public_access == "None"
        assert got.id.endswith(f"/storageAccounts/{account}/blobServices/default/containers/"
                               f"{name}")
        assert [(c.name, c.metadata) for c in listed] == [(name, None)]  # lists omit metadata

        deleted = storage.blob_containers.delete(
            RESOURCE_GROUP, account, name,
            cls=lambda response, model, _: response.http_response.status_code)
        assert deleted == 200
        assert not identity.service_client().get_container_client(name).exists()
        assert storage.blob_containers.delete(
            RESOURCE_GROUP, account, name,
            cls=lambda response, model, _: response.http_response.status_code) == 204
        with pytest.raises(ResourceNotFoundError) as missing:
            storage.blob_containers.get(RESOURCE_GROUP, account, name)
        assert error_code(missing.value) == "ContainerNotFound"
    finally:
        client = identity.service_client().get_container_client(name)
        if client.exists():
            client.delete_container()


def test_public_access_needs_the_account_to_allow_it(arm, storage, account) -> None:
    with pytest.raises(HttpResponseError) as refused:
        storage.blob_containers.create(
            RESOURCE_GROUP, account, "public", models.BlobContainer(public_access="Container"))

    assert refused.value.status_code == 409
    assert error_code(refused.value) == "PublicAccessNotPermitted"


def test_account_update_and_delete(arm, storage, account, identity) -> None:
    name = f"c{uuid.uuid4().hex[:10]}"
    storage.blob_containers.create(RESOURCE_GROUP, account, name, models.BlobContainer())

    updated = storage.storage_accounts.update(
        RESOURCE_GROUP, account, models.StorageAccountUpdateParameters(
            tags={"owner": "data"}, minimum_tls_version="TLS1_2",
            allow_shared_key_access=True))
    listed = [a.name for a in storage.storage_accounts.list_by_resource_group(RESOURCE_GROUP)]
    deleted = storage.storage_accounts.delete(
        RESOURCE_GROUP, account, cls=lambda response, model, _: response.http_response
        .status_code)

    assert updated.tags == {"owner": "data"} and updated.allow_shared_key_access is True
    assert account in listed
    assert deleted == 200
    assert not identity.service_client().get_container_client(name).exists()
    with pytest.raises(ResourceNotFoundError):
        storage.storage_accounts.get_properties(RESOURCE_GROUP, account)
