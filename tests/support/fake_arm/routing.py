"""What a provider module plugs into the fake ARM: routes, requests, answers.

A provider (one module per `Microsoft.*` namespace) subclasses `Provider`, lists the
api-versions each of its resource types serves, and returns `Route`s whose patterns are the
path below `/providers/<namespace>/`, e.g. `registries/{registryName}/runs/{runId}/cancel`.
From a pattern and its method the core derives what ARM derives from a request URL, so
handlers never repeat it:

- the resource type whose api-versions apply: the literal segments
  (`registries/runs/cancel`);
- the RBAC action: `<namespace>/<types>/read|write|delete` for GET/PUT/PATCH/DELETE on a
  resource, `<namespace>/<types>/<name>/action` for a POST to an action
  (`Microsoft.ContainerRegistry/registries/runs/cancel/action`), `.../read` for a GET list;
- the scope RBAC checks and ARM's 403 names: the resource's id (an action's last segment
  dropped).

Authentication, the subscription and resource group, RBAC and the api-version are checked
before a handler runs; handlers raise `ArmError` for everything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from . import errors, validation
from .auth import Principal

if TYPE_CHECKING:
    from .server import FakeArm, ResourceGroup, Subscription

_PARAM = re.compile(r"^\{(\w+)\}$")
_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


@dataclass
class ArmResponse:
    status: int = 200
    body: Any = None  # JSON-serialisable; None sends no body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ArmRequest:
    """One authenticated, authorised request, as a handler sees it."""

    arm: FakeArm
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    raw_body: bytes
    api_version: str
    principal: Principal
    subscription: Subscription
    resource_group: ResourceGroup | None
    params: dict[str, str]
    scope: str
    request_id: str

    def json(self) -> Any:
        return validation.parse_json(self.raw_body)


Handler = Callable[[ArmRequest], ArmResponse]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    resource_type: str | None = None  # override the derived type (api-version lookup)
    action: str | None = None  # override the derived RBAC action (without the namespace)

    @property
    def segments(self) -> list[str]:
        return self.pattern.strip("/").split("/")

    @property
    def is_action(self) -> bool:
        return len(self.segments) % 2 == 1 and self.method == "POST"

    def type_name(self) -> str:
        """`registries/runs/cancel` for `registries/{r}/runs/{id}/cancel`."""
        return self.resource_type or "/".join(self.segments[0::2])

    def rbac_action(self, namespace: str) -> str:
        if self.action:
            return f"{namespace}/{self.action}"
        if self.is_action:
            return f"{namespace}/{self.type_name()}/action"
        return f"{namespace}/{self.type_name()}/{_VERBS.get(self.method, 'action')}"

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The path parameters if `segments` fit this pattern (literals in any case)."""
        mine = self.segments
        if len(mine) != len(segments):
            return None
        params: dict[str, str] = {}
        for expected, actual in zip(mine, segments, strict=True):
            name = _PARAM.match(expected)
            if name:
                if not actual:
                    return None
                params[name.group(1)] = actual
            elif expected.lower() != actual.lower():
                return None
        return params

    def scope_of(self, resource_path: str) -> str:
        """The RBAC scope of a request path: an action's own segment is not part of it."""
        if self.is_action:
            return resource_path.rsplit("/", 1)[0]
        return resource_path


class Provider:
    """A resource provider (`Microsoft.X`): its resource types' api-versions and routes."""

    namespace: ClassVar[str]
    # resource type (as derived by Route.type_name, any case) -> api-versions it serves
    api_versions: ClassVar[dict[str, tuple[str, ...]]]
    # what ARM lists as the provider's locations in NoRegisteredProviderFound
    locations: ClassVar[tuple[str, ...]] = ("eastus", "westus", "westeurope")

    def __init__(self, arm: FakeArm) -> None:
        self.arm = arm

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def supported_versions(self, resource_type: str) -> tuple[str, ...]:
        for name, versions in self.api_versions.items():
            if name.lower() == resource_type.lower():
                return versions
        raise LookupError(f"{self.namespace} lists no api-versions for {resource_type}")

    def check_api_version(self, route: Route, api_version: str, location: str) -> None:
        versions = self.supported_versions(route.type_name())
        if api_version.lower() not in {v.lower() for v in versions}:
            raise errors.no_registered_provider(
                location, api_version, route.type_name(), versions, self.locations
            )

    def resource_exists(self, resource_id: str, rest: list[str]) -> bool | None:
        """Whether the resource `resource_id` (`rest`: its path below the namespace) exists,
        for ARM's check of an extension resource's parent; None: this provider can't say."""
        return None

    def start(self) -> None:
        """Called when the server starts (background work may begin)."""

    def close(self) -> None:
        """Called when the server stops: end background work."""
