"""ARM calls for the admin commands, with Azure's errors turned into aksrun's typed ones.

Every call goes through `call` (or `get_or_none` for lookups), so a missing resource group,
a refused role assignment or a sign-in problem reads the same whichever step hit it, and
names the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..adapters.azure.arm import arm_error_code, arm_error_message
from ..adapters.azure.credentials import explain_auth_error
from ..errors import AksrunError, ConfigError
from .errors import (
    AdminError,
    AdminPermissionError,
    PrincipalNotFoundError,
    ResourceGroupNotFoundError,
)

T = TypeVar("T")
ADMIN_ROLES = ("Owner on the resource group (or Contributor plus Role Based Access Control "
               "Administrator, to assign roles)")
# A 404 with these codes is about the request's container, not the resource looked up.
_CONTAINER_MISSING = ("ResourceGroupNotFound", "SubscriptionNotFound", "InvalidSubscriptionId")


def call(what: str, fn: Callable[[], T], *, subscription_id: str = "",
         resource_group: str = "") -> T:
    """`fn()`, with any Azure failure raised as an aksrun error about `what`."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    try:
        return fn()
    except ClientAuthenticationError as exc:
        if getattr(exc, "status_code", None) is None:  # the credential, not ARM, failed
            raise AdminError(explain_auth_error(exc)) from exc
        raise translate(exc, what, subscription_id, resource_group) from exc
    except HttpResponseError as exc:
        raise translate(exc, what, subscription_id, resource_group) from exc
    except ServiceRequestError as exc:
        raise AdminError(f"{what}: could not reach Azure Resource Manager ({exc}). Check the "
                         "network or proxy (HTTPS_PROXY), and AKSRUN_ARM_ENDPOINT.") from exc


def get_or_none(what: str, fn: Callable[[], T], **where: str) -> T | None:
    """`fn()`, or None when the resource (or its parent) does not exist."""
    from azure.core.exceptions import HttpResponseError

    def attempt() -> T | None:
        try:
            return fn()
        except HttpResponseError as exc:
            if is_not_found(exc):
                return None
            raise

    return call(what, attempt, **where)


def is_not_found(exc: BaseException) -> bool:
    """A 404 about the resource itself (not its resource group or subscription)."""
    code = arm_error_code(exc) or ""
    return getattr(exc, "status_code", None) == 404 and code not in _CONTAINER_MISSING


def translate(exc: Any, what: str, subscription_id: str = "",
              resource_group: str = "") -> AksrunError:
    status = getattr(exc, "status_code", None)
    code = arm_error_code(exc) or ""
    message = arm_error_message(exc)
    if code == "ResourceGroupNotFound":
        return ResourceGroupNotFoundError(
            f"resource group {resource_group or '?'!r} does not exist in subscription "
            f"{subscription_id or '?'}: create it (`az group create --name {resource_group} "
            "--location <region>`) or pass the right --resource-group (and "
            f"AZURE_SUBSCRIPTION_ID). Azure said: {message}")
    if code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
        return ConfigError(f"subscription {subscription_id!r} was not found or is not visible "
                           "to you: check AZURE_SUBSCRIPTION_ID (`az account list -o table`). "
                           f"Azure said: {message}")
    if code == "PrincipalNotFound":
        return PrincipalNotFoundError(f"{what}: Azure knows no principal of that id. Check the "
                                      f"--principal (an Entra object id or UPN). Azure said: "
                                      f"{message}")
    if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return AdminPermissionError(f"{what} was refused: {message} The admin commands need "
                                    f"{ADMIN_ROLES}.")
    if status == 401:
        return AdminError(f"{what}: Azure Resource Manager refused the sign-in ({code}): "
                          f"{message} Run `az login` again, or check AKSRUN_ARM_AUDIENCE.")
    return AdminError(f"{what} failed (HTTP {status}, {code or 'no code'}): {message}")
