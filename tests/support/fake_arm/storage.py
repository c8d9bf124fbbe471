"""Microsoft.Storage for the fake ARM: storage accounts and their blob containers, the
containers being real ones in the Azurite the fake was given (`FakeArm(storage=...)`).

- `PUT storageAccounts/{name}` creates as the service does: 202 Accepted, no body, a
  `Location` monitor (`.../providers/Microsoft.Storage/locations/{location}/asyncoperations/
  {id}?monitor=true&api-version=...`) and `Retry-After` (`arm.retry_after`; the service says
  17); the monitor answers 202 until `arm.operation_delay` has passed, then 200 with the
  account (azure-mgmt-storage 25: `begin_create` accepts 200/202 and polls the Location). A
  PUT on an account that exists in the same resource group updates it (200, at once). Names
  are global: 3-24 lower-case letters and digits (400 AccountNameInvalid), taken elsewhere
  409 StorageAccountAlreadyTaken (names in `taken_names` count as taken by strangers), in
  another group of the subscription 409 StorageAccountInAnotherResourceGroup.
- `GET` (`minimumTlsVersion`, `allowBlobPublicAccess`, `allowSharedKeyAccess`,
  `supportsHttpsTrafficOnly`, `primaryEndpoints.blob` = the blob endpoint given or
  `arm.blob_endpoint`), lists, `PATCH` (200), `DELETE` (200, 204 when absent; the account's
  containers are deleted from Azurite), `POST checkNameAvailability` on the subscription.
- `blobServices/default/containers/{name}`: `PUT` creates the container in Azurite (201) with
  its metadata, or updates the metadata of one that exists (200: the management plane's PUT is
  create-or-update, which is why `az storage container-rm create --fail-on-exist` checks
  first; spec example BlobContainersPut has both 201 and 200); `GET` (404
  ContainerNotFound), `DELETE` (200, 204 when absent), list. As the service does, the list
  shows no metadata (spec example BlobContainersList): read a container to see it. Public
  access on an account with `allowBlobPublicAccess` false: 409 PublicAccessNotPermitted.

An account sees the containers made through it (or named in `add_storage_account(...,
containers=[...])`) that still exist in Azurite, so accounts sharing one Azurite account do not
list or delete each other's containers, nor the fake's own (ACR's) containers.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from . import errors, validation
from .routing import ArmRequest, ArmResponse, Provider, Route

NAMESPACE = "Microsoft.Storage"
SDK_PACKAGE = "azure.mgmt.storage"
ACCOUNT_TYPE = f"{NAMESPACE}/storageAccounts"
CONTAINER_TYPE = f"{ACCOUNT_TYPE}/blobServices/containers"
STORAGE_API_VERSIONS = (
    "2015-05-01-preview", "2015-06-15", "2016-01-01", "2016-05-01", "2016-12-01",
    "2017-06-01", "2017-10-01", "2018-02-01", "2018-03-01-preview", "2018-07-01",
    "2018-11-01", "2019-04-01", "2019-06-01", "2020-08-01-preview", "2021-01-01",
    "2021-02-01", "2021-04-01", "2021-05-01", "2021-06-01", "2021-08-01", "2021-09-01",
    "2022-05-01", "2022-09-01", "2023-01-01", "2023-04-01", "2023-05-01", "2024-01-01",
    "2025-01-01", "2025-06-01", "2025-08-01", "2026-04-01", "2026-06-01", "2026-09-01",
)
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$|^\$root$")
_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Writable account properties the fake keeps (REST names) and their defaults on create.
ACCOUNT_DEFAULTS: dict[str, Any] = {
    "minimumTlsVersion": "TLS1_2",
    "allowBlobPublicAccess": False,
    "supportsHttpsTrafficOnly": True,
    "accessTier": "Hot",
    "publicNetworkAccess": "Enabled",
    "allowCrossTenantReplication": False,
    "defaultToOAuthAuthentication": False,
    "dnsEndpointType": "Standard",
}


@dataclass
class StorageAccount:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    blob_endpoint: str
    sku: str = "Standard_LRS"
    kind: str = "StorageV2"
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=lambda: dict(ACCOUNT_DEFAULTS))
    provisioning_state: str = "Succeeded"
    containers: set[str] = field(default_factory=set)  # names it made or was given
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{ACCOUNT_TYPE}/{self.name}"
        )

    def container_id(self, container: str) -> str:
        return f"{self.id}/blobServices/default/containers/{container}"

    def resource(self) -> dict[str, Any]:
        created = _iso(self.created)
        blob = self.blob_endpoint.rstrip("/") + "/"
        host = f"{self.name}.{{}}.core.windows.net/"
        properties = dict(self.properties)
        properties.update({
            "provisioningState": self.provisioning_state,
            "creationTime": created,
            "keyCreationTime": {"key1": created, "key2": created},
            "primaryEndpoints": {
                "blob": blob, "dfs": "https://" + host.format("dfs"),
                "web": "https://" + host.format("z6.web"),
                "queue": "https://" + host.format("queue"),
                "table": "https://" + host.format("table"),
                "file": "https://" + host.format("file"),
            },
            "primaryLocation": self.location,
            "statusOfPrimary": "available",
            "privateEndpointConnections": [],
            "networkAcls": {"bypass": "AzureServices", "virtualNetworkRules": [],
                            "ipRules": [], "ipv6Rules": [], "defaultAction": "Allow"},
            "encryption": {
                "requireInfrastructureEncryption": False, "keySource": "Microsoft.Storage",
                "services": {
                    "file": {"keyType": "Account", "enabled": True,
                             "lastEnabledTime": created},
                    "blob": {"keyType": "Account", "enabled": True,
                             "lastEnabledTime": created},
                },
            },
        })
        return {
            "sku": {"name": self.sku, "tier": self.sku.split("_")[0]},
            "kind": self.kind, "id": self.id, "name": self.name, "type": ACCOUNT_TYPE,
            "location": self.location, "tags": dict(self.tags), "properties": properties,
        }


class Storage(Provider):
    namespace = NAMESPACE
    api_versions = {
        "storageAccounts": STORAGE_API_VERSIONS,
        "checkNameAvailability": STORAGE_API_VERSIONS,
        "locations/asyncoperations": STORAGE_API_VERSIONS,
        "storageAccounts/blobServices/containers": STORAGE_API_VERSIONS,
    }

    def __init__(self, arm: Any) -> None:
        super().__init__(arm)
        self._lock = threading.RLock()
        self._accounts: dict[tuple[str, str, str], StorageAccount] = {}
        self.taken_names: set[str] = set()  # names held by accounts outside the fake

    def routes(self) -> list[Route]:
        account = "storageAccounts/{accountName}"
        containers = account + "/blobServices/default/containers"
        return [
            Route("POST", "checkNameAvailability", self.check_name),
            Route("GET", "storageAccounts", self.list_accounts),
            Route("GET", account, self.get_account),
            Route("PUT", account, self.put_account),
            Route("PATCH", account, self.patch_account),
            Route("DELETE", account, self.delete_account),
            Route("GET", "locations/{location}/asyncoperations/{operationId}", self.monitor),
            Route("GET", containers, self.list_containers,
                  resource_type="storageAccounts/blobServices/containers"),
            Route("GET", containers + "/{containerName}", self.get_container,
                  resource_type="storageAccounts/blobServices/containers"),
            Route("PUT", containers + "/{containerName}", self.put_container,
                  resource_type="storageAccounts/blobServices/containers"),
            Route("DELETE", containers + "/{containerName}", self.delete_container,
                  resource_type="storageAccounts/blobServices/containers"),
        ]

    # ---- state --------------------------------------------------------------------------------

    def add_storage_account(
        self, subscription_id: str, resource_group: str, name: str, *, blob_endpoint: str,
        location: str | None = None, containers: list[str] | tuple[str, ...] = (),
        tags: dict[str, str] | None = None, sku: str = "Standard_LRS", kind: str = "StorageV2",
        **properties: Any,
    ) -> StorageAccount:
        """An existing account whose blobs live at `blob_endpoint` (Azurite's account URL, or
        a gate in front of it). `properties` in REST or snake_case spelling
        (`allow_shared_key_access=False`) override the defaults of a new account;
        `containers` are existing Azurite containers the account owns."""
        group = self.arm.resource_group(subscription_id, resource_group)
        if group is None:
            raise KeyError(f"add_resource_group({subscription_id!r}, {resource_group!r}) first")
        if not _ACCOUNT_NAME.match(name):
            raise ValueError(f"storage account names are 3-24 lowercase letters/digits: {name!r}")
        account = StorageAccount(
            group.subscription_id, group.name, name, location or group.location, blob_endpoint,
            sku=sku, kind=kind, tags=dict(tags or {}), containers=set(containers),
        )
        account.properties.update({_camel(k): v for k, v in properties.items()})
        with self._lock:
            self._accounts[_key(subscription_id, resource_group, name)] = account
        return account

    def account(
        self, subscription_id: str, resource_group: str, name: str
    ) -> StorageAccount | None:
        with self._lock:
            return self._accounts.get(_key(subscription_id, resource_group, name))

    def resource_exists(self, resource_id: str, rest: list[str]) -> bool | None:
        parts = resource_id.strip("/").split("/")
        if not rest or rest[0].lower() != "storageaccounts" or len(rest) < 2:
            return None
        account = self.account(parts[1], parts[3], rest[1])
        if account is None:
            return False
        if len(rest) == 2:
            return True
        if len(rest) == 6 and [r.lower() for r in rest[2:5]] == [
            "blobservices", "default", "containers"
        ]:
            return self._container_exists(account, rest[5])
        return None

    # ---- accounts -----------------------------------------------------------------------------

    def check_name(self, request: ArmRequest) -> ArmResponse:
        models = validation.package_models(SDK_PACKAGE)
        raw = request.json()
        validation.validate_body(models, "StorageAccountCheckNameAvailabilityParameters", raw)
        name = str(raw["name"])
        if not _ACCOUNT_NAME.match(name):
            return ArmResponse(200, {"nameAvailable": False, "reason": "AccountNameInvalid",
                                     "message": _invalid_name_message(name)})
        if self._taken(name):
            return ArmResponse(200, {"nameAvailable": False, "reason": "AlreadyExists",
                                     "message": f"The storage account named {name} is already "
                                     "taken."})
        return ArmResponse(200, {"nameAvailable": True})

    def list_accounts(self, request: ArmRequest) -> ArmResponse:
        group = request.resource_group.name.lower() if request.resource_group else None
        with self._lock:
            found = [
                a for (sub, rg, _), a in sorted(self._accounts.items())
                if sub == request.subscription.id.lower() and (group is None or rg == group)
            ]
        return ArmResponse(200, {"value": [self._render(a) for a in found]})

    def get_account(self, request: ArmRequest) -> ArmResponse:
        return ArmResponse(200, self._render(self._account(request)))

    def put_account(self, request: ArmRequest) -> ArmResponse:
        assert request.resource_group is not None
        name = request.params["accountName"]
        models = validation.package_models(SDK_PACKAGE)
        raw = request.json()
        validation.validate_body(models, "StorageAccountCreateParameters", raw)
        if not _ACCOUNT_NAME.match(name):
            raise errors.ArmError(400, "AccountNameInvalid", _invalid_name_message(name))
        existing = self.account(request.subscription.id, request.resource_group.name, name)
        if existing is not None:
            if existing.provisioning_state != "Succeeded":
                raise errors.ArmError(
                    409, "StorageAccountOperationInProgress",
                    "An operation is currently performing on this storage account that "
                    "requires exclusive access.",
                )
            self._apply(existing, raw)
            return ArmResponse(200, self._render(existing))
        self._check_free(request, name)
        account = StorageAccount(
            request.subscription.id, request.resource_group.name, name,
            str(raw["location"]).replace(" ", "").lower(), self._new_endpoint(name),
            sku=raw["sku"]["name"], kind=raw["kind"], provisioning_state="Creating",
        )
        self._apply(account, raw)
        with self._lock:
            self._accounts[_key(account.subscription_id, account.resource_group, name)] = account

        def created() -> None:
            account.provisioning_state = "Succeeded"

        operation = self.arm.operations.start(
            "create storage account", account.id, self.arm.operation_delay, on_done=created
        )
        operation.result = account
        return ArmResponse(202, None, self._monitor_headers(request, account, operation.id))

    def monitor(self, request: ArmRequest) -> ArmResponse:
        operation = self.arm.operations.get(request.params["operationId"])
        if operation is None or not isinstance(operation.result, StorageAccount):
            raise errors.ArmError(
                404, "ResourceNotFound",
                f"The async operation {request.params['operationId']} was not found.",
            )
        account = operation.result
        if operation.status == "InProgress":
            return ArmResponse(202, None, self._monitor_headers(request, account, operation.id))
        if operation.status == "Failed":
            raise errors.ArmError(500, "InternalError", "The storage account creation failed.")
        return ArmResponse(200, self._render(account))

    def patch_account(self, request: ArmRequest) -> ArmResponse:
        account = self._account(request)
        models = validation.package_models(SDK_PACKAGE)
        raw = request.json()
        validation.validate_body(models, "StorageAccountUpdateParameters", raw)
        self._apply(account, raw)
        return ArmResponse(200, self._render(account))

    def delete_account(self, request: ArmRequest) -> ArmResponse:
        assert request.resource_group is not None
        key = _key(request.subscription.id, request.resource_group.name,
                   request.params["accountName"])
        with self._lock:
            account = self._accounts.pop(key, None)
        if account is None:
            return ArmResponse(204, None)
        for container in sorted(account.containers):
            try:
                self._blobs().delete_container(container)
            except Exception:  # already gone
                pass
        return ArmResponse(200, None)

    # ---- containers ---------------------------------------------------------------------------

    def list_containers(self, request: ArmRequest) -> ArmResponse:
        account = self._account(request)
        found = []
        for name in sorted(account.containers):
            properties = self._container_properties(name)
            if properties is not None:
                found.append(self._container_resource(account, name, properties, listing=True))
        return ArmResponse(200, {"value": [
            validation.render(validation.package_models(SDK_PACKAGE), "ListContainerItem", r)
            for r in found
        ]})

    def get_container(self, request: ArmRequest) -> ArmResponse:
        account = self._account(request)
        name = request.params["containerName"]
        properties = self._container_properties(name) if name in account.containers else None
        if properties is None:
            raise _container_not_found()
        return ArmResponse(200, validation.render(
            validation.package_models(SDK_PACKAGE), "BlobContainer",
            self._container_resource(account, name, properties),
        ))

    def put_container(self, request: ArmRequest) -> ArmResponse:
        account = self._account(request)
        name = request.params["containerName"]
        models = validation.package_models(SDK_PACKAGE)
        raw = request.json() or {}
        validation.validate_body(models, "BlobContainer", raw)
        if account.provisioning_state != "Succeeded":
            raise errors.ArmError(
                409, "StorageAccountIsNotProvisioned",
                "The storage account provisioning state must be 'Succeeded' before executing "
                "the operation.",
            )
        if not _CONTAINER_NAME.match(name):
            raise errors.ArmError(
                400, "ContainerOperationFailure",
                "The specified resource name contains invalid characters.",
            )
        properties = raw.get("properties") or {}
        metadata = dict(properties.get("metadata") or {})
        bad = [k for k in metadata if not _METADATA_KEY.match(k)]
        if bad:
            raise errors.ArmError(
                400, "ContainerOperationFailure",
                f"The metadata specified is invalid. It has characters that are not permitted: "
                f"'{bad[0]}'.",
            )
        access = properties.get("publicAccess") or "None"
        if access != "None" and not account.properties.get("allowBlobPublicAccess"):
            raise errors.ArmError(
                409, "PublicAccessNotPermitted",
                "Public access is not permitted on this storage account.",
            )
        blobs = self._blobs()
        exists = self._container_exists(account, name)
        if exists:
            blobs.get_container_client(name).set_container_metadata(metadata)
        else:
            from azure.core.exceptions import ResourceExistsError

            try:
                blobs.create_container(name, metadata=metadata or None)
            except ResourceExistsError:  # in Azurite but not this account's: take it over
                blobs.get_container_client(name).set_container_metadata(metadata)
        with self._lock:
            account.containers.add(name)
        return ArmResponse(200 if exists else 201, {
            "id": account.container_id(name), "name": name, "type": CONTAINER_TYPE,
        })

    def delete_container(self, request: ArmRequest) -> ArmResponse:
        account = self._account(request)
        name = request.params["containerName"]
        if not self._container_exists(account, name):
            return ArmResponse(204, None)
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._blobs().delete_container(name)
        except ResourceNotFoundError:
            return ArmResponse(204, None)
        with self._lock:
            account.containers.discard(name)
        return ArmResponse(200, None)

    # ---- helpers ------------------------------------------------------------------------------

    def _account(self, request: ArmRequest) -> StorageAccount:
        assert request.resource_group is not None
        name = request.params["accountName"]
        account = self.account(request.subscription.id, request.resource_group.name, name)
        if account is None:
            raise errors.resource_not_found(ACCOUNT_TYPE, name, request.resource_group.name)
        return account

    def _taken(self, name: str) -> bool:
        with self._lock:
            mine = any(n == name.lower() for (_, _, n) in self._accounts)
        return mine or name.lower() in {t.lower() for t in self.taken_names}

    def _check_free(self, request: ArmRequest, name: str) -> None:
        with self._lock:
            same_subscription = [
                a for (sub, _, n), a in self._accounts.items()
                if n == name.lower() and sub == request.subscription.id.lower()
            ]
        if same_subscription:
            raise errors.ArmError(
                409, "StorageAccountInAnotherResourceGroup",
                f"The account {name} is already in another resource group in this "
                "subscription.",
            )
        if self._taken(name):
            raise errors.ArmError(
                409, "StorageAccountAlreadyTaken",
                f"The storage account named {name} is already taken.",
            )

    def _new_endpoint(self, name: str) -> str:
        if self.arm.blob_endpoint:
            return self.arm.blob_endpoint
        return f"https://{name}.blob.core.windows.net/"

    @staticmethod
    def _apply(account: StorageAccount, raw: dict[str, Any]) -> None:
        """Take a create/update body's writable parts (the rest is validated, not kept)."""
        if raw.get("tags") is not None:
            account.tags = dict(raw["tags"])
        if raw.get("sku"):
            account.sku = raw["sku"].get("name") or account.sku
        for key, value in (raw.get("properties") or {}).items():
            if value is not None and not isinstance(value, dict | list):
                account.properties[key] = value

    def _render(self, account: StorageAccount) -> dict[str, Any]:
        return validation.render(
            validation.package_models(SDK_PACKAGE), "StorageAccount", account.resource()
        )

    def _monitor_headers(
        self, request: ArmRequest, account: StorageAccount, operation_id: str
    ) -> dict[str, str]:
        headers = {"Location": (
            f"{self.arm.endpoint}/subscriptions/{account.subscription_id}/providers/{NAMESPACE}"
            f"/locations/{account.location}/asyncoperations/{operation_id}"
            f"?monitor=true&api-version={request.api_version}"
        )}
        if self.arm.retry_after is not None:
            headers["Retry-After"] = str(self.arm.retry_after)
        return headers

    def _blobs(self) -> Any:
        if self.arm.storage is None:
            raise RuntimeError("FakeArm needs storage= (Azurite) for blob containers")
        return self.arm.storage

    def _container_exists(self, account: StorageAccount, name: str) -> bool:
        return name in account.containers and self._container_properties(name) is not None

    def _container_properties(self, name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._blobs().get_container_client(name).get_container_properties()
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _container_resource(
        account: StorageAccount, name: str, properties: Any, listing: bool = False
    ) -> dict[str, Any]:
        modified = properties.last_modified
        shown: dict[str, Any] = {
            "publicAccess": _public_access(properties.public_access),
            "leaseStatus": "Locked" if properties.lease.status == "locked" else "Unlocked",
            "leaseState": str(properties.lease.state or "available").capitalize(),
            "lastModifiedTime": _iso(modified) if modified else None,
            "hasImmutabilityPolicy": bool(properties.has_immutability_policy),
            "hasLegalHold": bool(properties.has_legal_hold),
        }
        if not listing:
            shown.update({
                "metadata": dict(properties.metadata or {}),
                "deleted": False, "remainingRetentionDays": 0,
                "defaultEncryptionScope": "$account-encryption-key",
                "denyEncryptionScopeOverride": False,
                "immutableStorageWithVersioning": {"enabled": False},
            })
        return {
            "id": account.container_id(name), "name": name, "type": CONTAINER_TYPE,
            "etag": properties.etag, "properties": shown,
        }


def _public_access(value: Any) -> str:
    text = str(value or "").lower()
    return {"container": "Container", "blob": "Blob"}.get(text, "None")


def _container_not_found() -> errors.ArmError:
    return errors.ArmError(404, "ContainerNotFound", "The specified container does not exist.")


def _invalid_name_message(name: str) -> str:
    return (
        f"{name} is not a valid storage account name. Storage account name must be between 3 "
        "and 24 characters in length and use numbers and lower-case letters only."
    )


def _camel(name: str) -> str:
    if name == "enable_https_traffic_only":  # the SDK's old name of supportsHttpsTrafficOnly
        return "supportsHttpsTrafficOnly"
    if "_" not in name:
        return name
    head, *rest = name.split("_")
    special = {"tls": "Tls", "https": "Https", "sftp": "Sftp", "nfs": "Nfs", "v3": "V3"}
    return head + "".join(special.get(part, part.capitalize()) for part in rest)


def _key(subscription_id: str, resource_group: str, name: str) -> tuple[str, str, str]:
    return subscription_id.lower(), resource_group.lower(), name.lower()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

