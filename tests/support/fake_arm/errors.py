"""ARM's error answers, word for word where the wording is known.

Every error the fake sends goes through `ArmError`, so the body always has ARM's shape
(`{"error": {"code", "message"[, "target", "details"]}}`) and the SDK's `ARMErrorFormat`
turns it into the same `HttpResponseError.error.code` a client sees against Azure. The
constructors below carry the texts seen in real ARM answers (quoted in GitHub issues of the
Azure SDKs, azure-cli and azd); providers add their own service errors with `ArmError(...)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

RESOURCE_NOT_FOUND_FIX = "https://aka.ms/ARMResourceNotFoundFix"


class ArmError(Exception):
    """An error answer; raise it anywhere in a handler and the server sends it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: Iterable[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = [dict(d) for d in details]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}


# ---- api-version ------------------------------------------------------------------------------


def missing_api_version() -> ArmError:
    return ArmError(
        400, "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def invalid_api_version(api_version: str, supported: Iterable[str]) -> ArmError:
    """ARM's own resources (resource groups, subscriptions) answer a bad version this way."""
    return ArmError(
        400, "InvalidApiVersionParameter",
        f"The api-version '{api_version}' is invalid. "
        f"The supported versions are '{','.join(supported)}'.",
    )


def no_registered_provider(
    location: str, api_version: str, resource_type: str, supported: Iterable[str],
    locations: Iterable[str],
) -> ArmError:
    """A provider's resource type answers an api-version it does not serve this way."""
    return ArmError(
        400, "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version "
        f"'{api_version}' for type '{resource_type}'. The supported api-versions are "
        f"'{', '.join(supported)}'. The supported locations are '{', '.join(locations)}'.",
    )


# ---- authentication ---------------------------------------------------------------------------


def _challenge(authority: str, tenant: str | None, description: str) -> dict[str, str]:
    uri = f"{authority.rstrip('/')}/{tenant or 'common'}"
    return {
        "WWW-Authenticate": (
            f'Bearer authorization_uri="{uri}", error="invalid_token", '
            f'error_description="{description}"'
        )
    }


def unauthenticated(
    code: str, message: str, authority: str, tenant: str | None = None
) -> ArmError:
    """401 with the bearer challenge ARM sends next to it."""
    return ArmError(401, code, message, headers=_challenge(authority, tenant, message))


def missing_authorization_header(authority: str) -> ArmError:
    return unauthenticated(
        "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
        authority,
    )


def invalid_authorization_header(authority: str) -> ArmError:
    return unauthenticated(
        "AuthenticationFailedInvalidHeader",
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        authority,
    )


def invalid_token(authority: str) -> ArmError:
    return unauthenticated("InvalidAuthenticationToken", "The access token is invalid.", authority)


def wrong_audience(audience: object, allowed: Iterable[str], authority: str) -> ArmError:
    listed = ",".join(f"'{a}'" for a in allowed)
    return unauthenticated(
        "InvalidAuthenticationTokenAudience",
        f"The access token has been obtained for wrong audience or resource '{audience}'. "
        f"It should exactly match with one of the allowed audiences {listed}.",
        authority,
    )


def expired_token(expiry: dt.datetime, now: dt.datetime, authority: str) -> ArmError:
    return unauthenticated(
        "ExpiredAuthenticationToken",
        f"The access token expiry UTC time '{_dotnet_time(expiry)}' is earlier than current "
        f"UTC time '{_dotnet_time(now)}'.",
        authority,
    )


def wrong_tenant(token_tenant: str, tenant: str, authority: str) -> ArmError:
    return unauthenticated(
        "InvalidAuthenticationTokenTenant",
        f"The access token is from the wrong issuer 'https://sts.windows.net/{token_tenant}/'. "
        f"It must match the tenant 'https://sts.windows.net/{tenant}/' associated with this "
        f"subscription. Please use the authority (URL) 'https://login.windows.net/{tenant}' to "
        "get the token. Note, if the subscription is transferred to another tenant there is no "
        "impact to the services, but information about new tenant could take time to propagate "
        "(up to an hour). If you just transferred your subscription and see this error message, "
        "please try back later.",
        authority,
        tenant,
    )


# ---- authorization ----------------------------------------------------------------------------


def authorization_failed(client: str, object_id: str, action: str, scope: str) -> ArmError:
    return ArmError(
        403, "AuthorizationFailed",
        f"The client '{client}' with object id '{object_id}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was "
        "recently granted, please refresh your credentials.",
    )


# ---- not found --------------------------------------------------------------------------------


def subscription_not_found(subscription_id: str) -> ArmError:
    return ArmError(
        404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found."
    )


def resource_group_not_found(name: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    """`resource_type` is `Namespace/type`, e.g. `Microsoft.ContainerRegistry/registries`."""
    return ArmError(
        404, "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not "
        f"found. For more details please go to {RESOURCE_NOT_FOUND_FIX}",
    )


# ---- routing ----------------------------------------------------------------------------------


def invalid_namespace(namespace: str) -> ArmError:
    return ArmError(
        400, "InvalidResourceNamespace", f"The resource namespace '{namespace}' is invalid."
    )


def invalid_resource_type(resource_type: str, namespace: str, api_version: str) -> ArmError:
    return ArmError(
        400, "InvalidResourceType",
        f"The resource type '{resource_type}' could not be found in the namespace "
        f"'{namespace}' for api version '{api_version}'.",
    )


def method_not_allowed(method: str) -> ArmError:
    return ArmError(
        405, "MethodNotAllowed",
        f"The requested resource does not support http method '{method}'.",
    )


# ---- request content --------------------------------------------------------------------------


def invalid_request_content(detail: str) -> ArmError:
    return ArmError(
        400, "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{detail}'.",
    )


def _dotnet_time(moment: dt.datetime) -> str:
    """'1/18/2023 5:10:42 PM', the way ARM (a .NET service) prints times in messages."""
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return (
        f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:"
        f"{moment.second:02d} {half}"
    )
