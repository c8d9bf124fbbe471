"""Which credential DefaultAzureCredential resolved, and as whom: environment variables, the
Azure CLI and workload identity all look alike until something is refused."""

from __future__ import annotations

import os

from ...adapters.azure.arm import arm_scope
from ..claims import principal
from ..context import Context
from ..model import Outcome
from ..scope import store_needs_identity
from ..text import first_line

STORAGE_SCOPE = "https://storage.azure.com/.default"


def token_scope(context: Context) -> str:
    """A scope aksrun really asks for here: ARM when a subscription is set, else storage,
    else the registry."""
    config = context.config
    if config.subscription_id:
        return arm_scope(config)
    if store_needs_identity(config):
        return STORAGE_SCOPE
    return f"{config.registry_audience.rstrip('/')}/.default"


def check_credential(context: Context) -> Outcome:
    from azure.core.exceptions import ClientAuthenticationError

    restricted = os.environ.get("AZURE_TOKEN_CREDENTIALS", "").strip()
    scope = token_scope(context)
    try:
        credential = context.credential()
        token = credential.get_token(scope)
    except ValueError as exc:  # DefaultAzureCredential refuses a bad AZURE_TOKEN_CREDENTIALS
        return Outcome.fail(f"DefaultAzureCredential could not start: {first_line(exc)}",
                            "set AZURE_TOKEN_CREDENTIALS to a value it lists, or unset it.")
    except ClientAuthenticationError as exc:
        if _unavailable(exc):
            limit = (f" (AZURE_TOKEN_CREDENTIALS={restricted} allows only that)"
                     if restricted else "")
            fix = (f"sign in with what AZURE_TOKEN_CREDENTIALS={restricted} allows (e.g. "
                   "`az login` for AzureCliCredential), or unset AZURE_TOKEN_CREDENTIALS."
                   if restricted else
                   "run `az login` (in CI set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
                   "AZURE_CLIENT_SECRET).")
            return Outcome.fail(f"DefaultAzureCredential found no credential to use{limit}",
                                fix, scope=scope)
        return Outcome.fail(f"Entra ID refused the credential: {first_line(exc)}",
                            "sign in again with `az login` (or check AZURE_CLIENT_ID, "
                            "AZURE_TENANT_ID and the secret or federated token).", scope=scope)
    who = principal(token.token)
    # azure-identity names the credential that answered only in its log and this attribute.
    used = getattr(credential, "_successful_credential", None)
    source = type(used).__name__ if used is not None else type(credential).__name__
    context.put("principal", who)
    return Outcome.ok(f"{source} as {who.describe()}", credential=source, scope=scope,
                      **who.as_dict())


def _unavailable(exc: BaseException) -> bool:
    from azure.identity import CredentialUnavailableError

    return isinstance(exc, CredentialUnavailableError) or (
        "failed to retrieve a token from the included credentials" in str(exc))
