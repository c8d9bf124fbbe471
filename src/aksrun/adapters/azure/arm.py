"""Azure Resource Manager clients pointed where the settings say.

Public cloud needs nothing; sovereign clouds and private links change the endpoint and the
token audience, and every `*ManagementClient` takes both (`base_url`, `credential_scopes`).
Building them in one place keeps that true for every command (images, admin, doctor).
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def arm_scope(config: Any) -> str:
    """The token scope for ARM: its audience (default: the endpoint) + /.default."""
    audience = getattr(config, "arm_audience", None) or config.arm_endpoint
    return f"{audience.rstrip('/')}/.default"


def management_client(client_class: type[T], config: Any, credential: Any = None,
                      **kwargs: Any) -> T:
    """`client_class(credential, subscription, base_url=..., credential_scopes=[...])`."""
    from .credentials import default_credential

    return client_class(  # type: ignore[call-arg]
        credential or default_credential(),
        config.subscription_id,
        base_url=config.arm_endpoint,
        credential_scopes=[arm_scope(config)],
        **kwargs,
    )


def arm_error_code(exc: BaseException) -> str | None:
    """The ARM error code of an HttpResponseError (`ResourceNotFound`, ...), if any."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code:
        return str(code)
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except Exception:
        body = None
    if isinstance(body, dict):
        inner = body.get("error") or body
        if isinstance(inner, dict) and inner.get("code"):
            return str(inner["code"])
    return None


def arm_error_message(exc: BaseException) -> str:
    """The service's own message, first line, without the SDK's framing."""
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    return str(message).strip().splitlines()[0] if message else type(exc).__name__
