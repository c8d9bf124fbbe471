"""The one Azure credential aksrun uses, and what to tell the user when it fails.

Every Azure call in aksrun authenticates with `DefaultAzureCredential`, constructed only
here: environment variables in CI, the Azure CLI on a laptop, workload identity in a pod.
No code picks a credential type, so the same program works in all three places.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# What DefaultAzureCredential tries, in order, when its message does not list the attempts.
DEFAULT_CHAIN = (
    "EnvironmentCredential (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET or a cert)",
    "WorkloadIdentityCredential (AZURE_FEDERATED_TOKEN_FILE, set in AKS pods)",
    "ManagedIdentityCredential (Azure VMs and services)",
    "SharedTokenCacheCredential",
    "VisualStudioCodeCredential",
    "AzureCliCredential (az login)",
    "AzurePowerShellCredential (Connect-AzAccount)",
    "AzureDeveloperCliCredential (azd auth login)",
)
_MAX_REASON = 240


def default_credential(allowed_tenants: list[str] | None = None) -> TokenCredential:
    """A new `DefaultAzureCredential`. Keep and reuse it: it caches tokens.

    `allowed_tenants`: tenants besides the signed-in one it may get tokens for (an AKS
    cluster in another tenant, for a guest user); azure-identity refuses them otherwise."""
    from azure.identity import DefaultAzureCredential

    if allowed_tenants:
        return DefaultAzureCredential(additionally_allowed_tenants=list(allowed_tenants))
    return DefaultAzureCredential()


def explain_auth_error(exc: BaseException) -> str:
    """An actionable message for a failed Azure sign-in: what was tried, and how to fix it.

    Handles `CredentialUnavailableError` (no source could even try) and
    `ClientAuthenticationError` (a source tried and Entra ID refused, e.g. an expired login).
    """
    raw = str(getattr(exc, "message", None) or exc or type(exc).__name__).strip()
    attempts = _attempted_credentials(raw)
    nothing_usable = _is_unavailable(exc) or "failed to retrieve a token from the included" in raw

    if nothing_usable:
        lines = ["Azure sign-in failed: DefaultAzureCredential could not get a token."]
    else:
        first = raw.splitlines()[0] if raw else type(exc).__name__
        lines = [f"Azure sign-in failed: the credential was refused: {_shorten(first)}"]
    if attempts:
        lines.append("DefaultAzureCredential tried, in order:")
        lines += [f"  - {_shorten(a)}" for a in attempts]
    elif nothing_usable:
        lines.append(f"Reason: {_shorten(raw)}")
        lines.append("DefaultAzureCredential tries, in order:")
        lines += [f"  - {source}" for source in DEFAULT_CHAIN]
    restricted = os.environ.get("AZURE_TOKEN_CREDENTIALS")
    if restricted:
        lines.append(
            f"Note: AZURE_TOKEN_CREDENTIALS={restricted} limits which of these are tried; "
            "unset it to try them all."
        )
    lines += [
        "To fix it, use one of:",
        "  - on your machine: run `az login` (then `az account set --subscription <id>`); "
        "if you are logged in already, your login may have expired: run `az login` again;",
        "  - in CI: set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET "
        "for a service principal (or AZURE_CLIENT_CERTIFICATE_PATH instead of the secret);",
        "  - in an AKS pod: Azure Workload Identity (a service account annotated with "
        "azure.workload.identity/client-id and the pod label azure.workload.identity/use=true).",
    ]
    return "\n".join(lines)


def _is_unavailable(exc: BaseException) -> bool:
    try:
        from azure.identity import CredentialUnavailableError
    except ImportError:  # pragma: no cover - azure extra not installed
        return type(exc).__name__ == "CredentialUnavailableError"
    return isinstance(exc, CredentialUnavailableError)


def _attempted_credentials(message: str) -> list[str]:
    """The per-source reasons DefaultAzureCredential lists after "Attempted credentials:"."""
    lines = message.splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("attempted credentials"):
            found = []
            for item in lines[i + 1 :]:
                if not item.startswith(("\t", " ")):
                    break
                if item.strip():
                    found.append(item.strip())
            return found
    return []


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
