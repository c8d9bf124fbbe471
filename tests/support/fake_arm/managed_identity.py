"""Microsoft.ManagedIdentity for the fake ARM: user-assigned identities and their federated
identity credentials, with the limits the real service enforces.

- `PUT userAssignedIdentities/{name}` -> 201 with new `principalId`/`clientId`/`tenantId`,
  200 when it exists (tags updated; another location is ARM's 400 InvalidResourceLocation).
  Every new identity is also a new service principal in the fake's Entra directory (appId =
  clientId), subject to `arm.replication_delay` like any new directory object;
- `GET`, `PATCH` (tags), `DELETE` (200, or 204 when absent; its federated credentials and
  its service principal go with it, its role assignments stay behind as in Azure), list by
  resource group and by subscription;
- `.../federatedIdentityCredentials/{name}` PUT (201 new / 200 replaced), GET, DELETE, list.
  The service's rules: issuer an https URL, subject and one audience or more, at most 20
  credentials per identity (400), one issuer+subject pair per identity (400 "Issuer and
  subject combination already exists for this Managed Identity."), and no two writes under
  one identity at the same time: a write takes `arm.fic_write_seconds`, and any write (PUT or
  DELETE) arriving meanwhile gets 409 ConcurrentFederatedIdentityCredentialsWritesForSingle
  ManagedIdentity, worded as Azure words it (seen in Azure/bicep-registry-modules#1447).

`federation(client_id)` is what Entra knows for workload identity's token exchange: the
identity's ids and each credential with the wall-clock time from which Entra accepts it
(written + `arm.federation_delay`; until then AADSTS70021).

Sources: azure-mgmt-msi 7.1 (api 2024-11-30 operations: 200/201 on PUT, 200/204 on DELETE);
azure-rest-api-specs msi examples; Entra's "federated identity credential considerations"
(20 per identity, no concurrent writes); error texts quoted in GitHub issues (bicep, terraform
azurerm, bicep-types-az #2029).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import errors, validation
from .routing import ArmRequest, ArmResponse, Provider, Route

NAMESPACE = "Microsoft.ManagedIdentity"
SDK_PACKAGE = "azure.mgmt.msi"
IDENTITY_TYPE = f"{NAMESPACE}/userAssignedIdentities"
FIC_TYPE = f"{IDENTITY_TYPE}/federatedIdentityCredentials"
MAX_CREDENTIALS = 20
# What ARM lists for the types (NoRegisteredProviderFound answers, 2025), and the SDK's.
IDENTITY_API_VERSIONS = (
    "2015-08-31-preview", "2018-11-30", "2021-09-30-preview", "2022-01-31-preview",
    "2023-01-31", "2023-07-31-preview", "2024-11-30", "2025-01-31-preview",
)
FIC_API_VERSIONS = (
    "2022-01-31-preview", "2023-01-31", "2023-07-31-preview", "2024-11-30",
    "2025-01-31-preview",
)
_IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
_FIC_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,119}$")


@dataclass
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: list[str]
    written: float = field(default_factory=time.time)  # wall clock, for Entra's delay


@dataclass
class UserAssignedIdentity:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    tenant_id: str
    principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tags: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, FederatedCredential] = field(default_factory=dict)  # lower name
    writing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            f"/providers/{IDENTITY_TYPE}/{self.name}"
        )

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "type": IDENTITY_TYPE, "location": self.location,
            "tags": dict(self.tags),
            "properties": {
                "tenantId": self.tenant_id, "principalId": self.principal_id,
                "clientId": self.client_id, "isolationScope": "None",
            },
        }

    def credential_resource(self, credential: FederatedCredential) -> dict[str, Any]:
        return {
            "id": f"{self.id}/federatedIdentityCredentials/{credential.name}",
            "name": credential.name, "type": FIC_TYPE,
            "properties": {
                "issuer": credential.issuer, "subject": credential.subject,
                "audiences": list(credential.audiences),
            },
        }


@dataclass(frozen=True)
class Federation:
    """A managed identity as Entra sees it for the token exchange."""

    client_id: str
    object_id: str
    tenant_id: str
    # (issuer, subject, audiences, accepted from: a wall-clock time)
    credentials: tuple[tuple[str, str, tuple[str, ...], float], ...]

    def accepts(self, issuer: str, subject: str, audiences: list[str], now: float) -> str:
        """"ok", "not yet" (matching but not propagated) or "no match"."""
        matching = [c for c in self.credentials
                    if c[0] == issuer and c[1] == subject and set(c[2]) & set(audiences)]
        if any(c[3] <= now for c in matching):
            return "ok"
        return "not yet" if matching else "no match"


class ManagedIdentity(Provider):
    namespace = NAMESPACE
    api_versions = {
        "userAssignedIdentities": IDENTITY_API_VERSIONS,
        "userAssignedIdentities/federatedIdentityCredentials": FIC_API_VERSIONS,
    }

    def __init__(self, arm: Any) -> None:
        super().__init__(arm)
        self._lock = threading.RLock()
        self._identities: dict[tuple[str, str, str], UserAssignedIdentity] = {}

    def routes(self) -> list[Route]:
        fic = "userAssignedIdentities/{resourceName}/federatedIdentityCredentials"
        return [
            Route("GET", "userAssignedIdentities", self.list_identities),
            Route("GET", "userAssignedIdentities/{resourceName}", self.get_identity),
            Route("PUT", "userAssignedIdentities/{resourceName}", self.put_identity),
            Route("PATCH", "userAssignedIdentities/{resourceName}", self.patch_identity),
            Route("DELETE", "userAssignedIdentities/{resourceName}", self.delete_identity),
            Route("GET", fic, self.list_credentials),
            Route("GET", fic + "/{credentialName}", self.get_credential),
            Route("PUT", fic + "/{credentialName}", self.put_credential),
            Route("DELETE", fic + "/{credentialName}", self.delete_credential),
        ]

    # ---- state --------------------------------------------------------------------------------

    def add_identity(
        self, subscription_id: str, resource_group: str, name: str, *,
        location: str | None = None, tags: dict[str, str] | None = None,
        tenant_id: str | None = None, replicated: bool = True,
    ) -> UserAssignedIdentity:
        """An identity made before the test (its service principal long replicated unless
        `replicated=False`)."""
        group = self.arm.resource_group(subscription_id, resource_group)
        if group is None:
            raise KeyError(f"add_resource_group({subscription_id!r}, {resource_group!r}) first")
        subscription = self.arm.subscription(subscription_id)
        identity = UserAssignedIdentity(
            group.subscription_id, group.name, name, location or group.location,
            tenant_id or subscription.tenant_id or "00000000-0000-0000-0000-0000000000aa",
            tags=dict(tags or {}),
        )
        self._store(identity, created=None if not replicated else float("-inf"))
        return identity

    def identity(
        self, subscription_id: str, resource_group: str, name: str
    ) -> UserAssignedIdentity | None:
        with self._lock:
            return self._identities.get(_key(subscription_id, resource_group, name))

    def by_client_id(self, client_id: str) -> UserAssignedIdentity | None:
        with self._lock:
            for identity in self._identities.values():
                if identity.client_id.lower() == client_id.lower():
                    return identity
        return None

    def federation(self, client_id: str) -> Federation | None:
        identity = self.by_client_id(client_id)
        if identity is None:
            return None
        delay = self.arm.federation_delay
        with self._lock:
            credentials = tuple(
                (c.issuer, c.subject, tuple(c.audiences), c.written + delay)
                for c in identity.credentials.values()
            )
        return Federation(identity.client_id, identity.principal_id, identity.tenant_id,
                          credentials)

    def resource_exists(self, resource_id: str, rest: list[str]) -> bool | None:
        parts = resource_id.strip("/").split("/")
        if len(rest) == 2 and rest[0].lower() == "userassignedidentities":
            return self.identity(parts[1], parts[3], rest[1]) is not None
        return None

    def _store(self, identity: UserAssignedIdentity, created: float | None = None) -> None:
        with self._lock:
            self._identities[_key(identity.subscription_id, identity.resource_group,
                                  identity.name)] = identity
        self.arm.directory.add(
            identity.principal_id, kind="ServicePrincipal", display_name=identity.name,
            app_id=identity.client_id, created=created,
        )

    # ---- identities ---------------------------------------------------------------------------

    def list_identities(self, request: ArmRequest) -> ArmResponse:
        group = request.resource_group.name.lower() if request.resource_group else None
        with self._lock:
            found = [
                i.resource() for (sub, rg, _), i in sorted(self._identities.items())
                if sub == request.subscription.id.lower() and (group is None or rg == group)
            ]
        models = validation.models_for(SDK_PACKAGE, request.api_version, "Identity")
        return ArmResponse(200, {"value": [validation.render(models, "Identity", r)
                                           for r in found]})

    def get_identity(self, request: ArmRequest) -> ArmResponse:
        return self._identity_answer(request, self._identity(request), 200)

    def put_identity(self, request: ArmRequest) -> ArmResponse:
        models = validation.models_for(SDK_PACKAGE, request.api_version, "Identity")
        body = validation.validate_body(models, "Identity", request.json())
        name = request.params["resourceName"]
        if not _IDENTITY_NAME.match(name):
            raise errors.ArmError(
                400, "InvalidResourceName",
                f"Resource name {name} is invalid. The name can be 3-128 characters long and "
                "must start with a letter or number; it can contain letters, numbers, hyphens "
                "and underscores.",
            )
        assert request.resource_group is not None
        existing = self.identity(request.subscription.id, request.resource_group.name, name)
        if existing is not None:
            if _norm(body.location) != _norm(existing.location):
                raise _location_conflict(existing.name, existing.location,
                                         request.resource_group.name, body.location)
            existing.tags = dict(body.tags or {})
            return self._identity_answer(request, existing, 200)
        identity = UserAssignedIdentity(
            request.subscription.id, request.resource_group.name, name, body.location,
            request.subscription.tenant_id or request.principal.tenant_id,
            tags=dict(body.tags or {}),
        )
        self._store(identity)
        return self._identity_answer(request, identity, 201)

    def patch_identity(self, request: ArmRequest) -> ArmResponse:
        identity = self._identity(request)
        models = validation.models_for(SDK_PACKAGE, request.api_version, "IdentityUpdate")
        body = validation.validate_body(models, "IdentityUpdate", request.json())
        if body.tags is not None:
            identity.tags = dict(body.tags)
        return self._identity_answer(request, identity, 200)

    def delete_identity(self, request: ArmRequest) -> ArmResponse:
        assert request.resource_group is not None
        key = _key(request.subscription.id, request.resource_group.name,
                   request.params["resourceName"])
        with self._lock:
            identity = self._identities.pop(key, None)
        if identity is None:
            return ArmResponse(204, None)
        self.arm.directory.remove(identity.principal_id)
        return ArmResponse(200, None)

    def _identity_answer(
        self, request: ArmRequest, identity: UserAssignedIdentity, status: int
    ) -> ArmResponse:
        models = validation.models_for(SDK_PACKAGE, request.api_version, "Identity")
        return ArmResponse(status, validation.render(models, "Identity", identity.resource()))

    # ---- federated identity credentials -------------------------------------------------------

    def list_credentials(self, request: ArmRequest) -> ArmResponse:
        identity = self._identity(request)
        models = self._fic_models(request)
        with self._lock:
            found = [identity.credential_resource(c) for c in identity.credentials.values()]
        return ArmResponse(200, {"value": [
            validation.render(models, "FederatedIdentityCredential", r) for r in found
        ]})

    def get_credential(self, request: ArmRequest) -> ArmResponse:
        identity = self._identity(request)
        credential = self._credential(request, identity)
        return ArmResponse(200, validation.render(
            self._fic_models(request), "FederatedIdentityCredential",
            identity.credential_resource(credential),
        ))

    def put_credential(self, request: ArmRequest) -> ArmResponse:
        identity = self._identity(request)
        models = self._fic_models(request)
        body = validation.validate_body(models, "FederatedIdentityCredential", request.json())
        name = request.params["credentialName"]
        if not _FIC_NAME.match(name):
            raise errors.ArmError(
                400, "BadRequest",
                f"Federated Identity Credential name '{name}' is invalid. The name must be 3-120 "
                "characters long, start with a letter or number and contain only letters, "
                "numbers, hyphens and underscores.",
            )
        issuer, subject = body.issuer or "", body.subject or ""
        audiences = list(body.audiences or [])
        _check_credential(issuer, subject, audiences)
        with self._writing(identity):
            key = name.lower()
            with self._lock:
                existing = identity.credentials.get(key)
                others = [c for k, c in identity.credentials.items() if k != key]
            if any(c.issuer == issuer and c.subject == subject for c in others):
                raise errors.ArmError(
                    400, "BadRequest",
                    "Issuer and subject combination already exists for this Managed Identity.",
                )
            if existing is None and len(others) >= MAX_CREDENTIALS:
                raise errors.ArmError(
                    400, "BadRequest",
                    f"The number of Federated Identity Credentials for the managed identity "
                    f"'{identity.id}' cannot exceed {MAX_CREDENTIALS}.",
                )
            credential = FederatedCredential(existing.name if existing else name, issuer,
                                             subject, audiences)
            with self._lock:
                identity.credentials[key] = credential
        return ArmResponse(201 if existing is None else 200, validation.render(
            models, "FederatedIdentityCredential", identity.credential_resource(credential)
        ))

    def delete_credential(self, request: ArmRequest) -> ArmResponse:
        identity = self._identity(request)
        with self._writing(identity), self._lock:
            removed = identity.credentials.pop(request.params["credentialName"].lower(), None)
        return ArmResponse(200 if removed else 204, None)

    def _writing(self, identity: UserAssignedIdentity) -> _Write:
        return _Write(identity, self.arm.fic_write_seconds)

    # ---- request checks -----------------------------------------------------------------------

    def _identity(self, request: ArmRequest) -> UserAssignedIdentity:
        assert request.resource_group is not None
        name = request.params["resourceName"]
        identity = self.identity(request.subscription.id, request.resource_group.name, name)
        if identity is None:
            raise errors.resource_not_found(IDENTITY_TYPE, name, request.resource_group.name)
        return identity

    def _credential(
        self, request: ArmRequest, identity: UserAssignedIdentity
    ) -> FederatedCredential:
        name = request.params["credentialName"]
        with self._lock:
            credential = identity.credentials.get(name.lower())
        if credential is None:
            raise errors.ArmError(
                404, "NotFound",
                f"The federated identity credential '{name}' was not found under the managed "
                f"identity '{identity.name}'.",
            )
        return credential

    @staticmethod
    def _fic_models(request: ArmRequest) -> Any:
        return validation.models_for(SDK_PACKAGE, request.api_version,
                                     "FederatedIdentityCredential")


class _Write:
    """One federated-credential write under an identity: it takes `seconds`, and another
    write under the same identity meanwhile is refused as Azure refuses it."""

    def __init__(self, identity: UserAssignedIdentity, seconds: float) -> None:
        self.identity = identity
        self.seconds = seconds

    def __enter__(self) -> None:
        if not self.identity.writing.acquire(blocking=False):
            raise errors.ArmError(
                409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                "Too many Federated Identity Credentials are written concurrently for the "
                f"managed identity '{_message_id(self.identity)}'. "
                "Concurrent Federated Identity Credentials writes under the same managed "
                "identity are not supported.",
            )
        time.sleep(self.seconds)

    def __exit__(self, *exc: object) -> None:
        self.identity.writing.release()


def _check_credential(issuer: str, subject: str, audiences: list[str]) -> None:
    problems = []
    parts = urlsplit(issuer)
    if not issuer:
        problems.append(("properties.issuer", "The issuer field is required."))
    elif parts.scheme != "https" or not parts.netloc:
        problems.append(("properties.issuer",
                         f"The issuer '{issuer}' is not a valid https URL."))
    if not subject:
        problems.append(("properties.subject", "The subject field is required."))
    elif len(subject) > 600:
        problems.append(("properties.subject", "The subject can be at most 600 characters."))
    if not audiences or not all(audiences):
        problems.append(("properties.audiences", "At least one audience is required."))
    if problems:
        target, message = problems[0]
        raise errors.ArmError(400, "BadRequest", message, target=target, details=[
            {"code": "BadRequest", "target": t, "message": m} for t, m in problems
        ])


def _location_conflict(name: str, location: str, group: str, wanted: str) -> errors.ArmError:
    return errors.ArmError(
        400, "InvalidResourceLocation",
        f"The resource '{name}' already exists in location '{location}' in resource group "
        f"'{group}'. A resource with the same name cannot be created in location '{wanted}'. "
        "Please select a new resource name.",
    )


def _norm(location: str | None) -> str:
    return (location or "").replace(" ", "").lower()


def _key(subscription_id: str, resource_group: str, name: str) -> tuple[str, str, str]:
    return subscription_id.lower(), resource_group.lower(), name.lower()


def _message_id(identity: UserAssignedIdentity) -> str:
    """The identity's id as the 409 names it: provider and types in lower case."""
    return (
        f"/subscriptions/{identity.subscription_id}/resourcegroups/{identity.resource_group}"
        f"/providers/microsoft.managedidentity/userassignedidentities/{identity.name}"
    )
