"""Who `--principal` is: an Entra ID object id or user principal name, looked up in Microsoft
Graph, so a typo fails before anything is created.

The answer gives what the rest needs: the object id (role assignments), the principal type
(`principalType`, which must be set) and the name the Kubernetes API server knows the person
by (RoleBinding subject): AKS's Entra integration names users by their UPN, service
principals and groups by their object id.

Graph is a plain azure-core pipeline GET: `{endpoint}/v1.0/users/{id or UPN}` (then
`servicePrincipals/{id}` and `groups/{id}` for an object id), with a token for
`{audience}/.default`. The endpoint and audience come from the settings `graph_endpoint` and
`graph_audience` (default https://graph.microsoft.com) for sovereign clouds and tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .errors import AdminError, PrincipalNotFoundError

GRAPH = "https://graph.microsoft.com"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_KINDS = (("users", "User"), ("servicePrincipals", "ServicePrincipal"), ("groups", "Group"))


@dataclass(frozen=True)
class Principal:
    object_id: str
    principal_type: str  # User | ServicePrincipal | Group (ARM's principalType)
    kubernetes_name: str  # the RoleBinding subject's name
    display: str  # for messages
    verified: bool = True  # False: Graph could not be read, the type is a guess

    @property
    def kubernetes_kind(self) -> str:
        return "Group" if self.principal_type == "Group" else "User"


def graph_settings(config: Any) -> tuple[str, str]:
    """(endpoint, token audience): the settings, else public Graph; the audience defaults
    to the endpoint (as in sovereign clouds)."""
    endpoint = (getattr(config, "graph_endpoint", None) or GRAPH).rstrip("/")
    audience = (getattr(config, "graph_audience", None) or endpoint).rstrip("/")
    return endpoint, audience


def resolve(config: Any, credential: Any, principal: str) -> Principal:
    """The principal, or PrincipalNotFoundError saying what was looked for where."""
    text = (principal or "").strip()
    if not text:
        raise PrincipalNotFoundError("--principal is empty: give the person's Entra object id "
                                     "or user principal name (alice@contoso.com).")
    is_id = bool(_GUID.match(text))
    if not is_id and "@" not in text:
        raise PrincipalNotFoundError(
            f"--principal {text!r} is neither an Entra object id (a GUID) nor a user principal "
            "name (alice@contoso.com): find it with `az ad user show --id <upn> --query id`.")
    endpoint, audience = graph_settings(config)
    client = _client(endpoint, audience, credential)
    kinds = _KINDS if is_id else _KINDS[:1]
    refused = None
    for path, kind in kinds:
        status, body = _get(client, f"{endpoint}/v1.0/{path}/{quote(text, safe='@')}")
        if status == 200:
            return _principal(kind, body, text)
        if status in (401, 403):
            refused = _graph_message(body) or f"HTTP {status}"
            break
        if status != 404:
            raise AdminError(f"Microsoft Graph failed looking up {text!r} (HTTP {status}): "
                             f"{_graph_message(body)}")
    if refused is not None:
        if is_id:  # ARM still checks the id (PrincipalNotFound); the type is guessed
            return Principal(text.lower(), "User", text.lower(), text, verified=False)
        raise PrincipalNotFoundError(
            f"Microsoft Graph refused to look up {text!r} ({refused}): give the person's "
            "object id instead (`az ad user show --id <upn> --query id`).")
    where = "users, service principals or groups" if is_id else "users"
    raise PrincipalNotFoundError(
        f"no principal {text!r} among the Entra ID {where} of this tenant: check the spelling, "
        "or find the object id with `az ad user show --id <upn> --query id`.")


def _principal(kind: str, body: dict[str, Any], asked: str) -> Principal:
    object_id = str(body.get("id") or asked).lower()
    upn = body.get("userPrincipalName")
    display = upn or body.get("displayName") or object_id
    name = upn if kind == "User" and upn else object_id
    return Principal(object_id, kind, name, str(display))


def _client(endpoint: str, audience: str, credential: Any) -> Any:
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import (
        BearerTokenCredentialPolicy,
        HeadersPolicy,
        NetworkTraceLoggingPolicy,
        RetryPolicy,
        UserAgentPolicy,
    )

    policies = [HeadersPolicy({"Accept": "application/json"}), UserAgentPolicy("aksrun-admin"),
                RetryPolicy(retry_total=3),
                BearerTokenCredentialPolicy(credential, f"{audience}/.default"),
                NetworkTraceLoggingPolicy()]
    return PipelineClient(base_url=endpoint, policies=policies)


def _get(client: Any, url: str) -> tuple[int, dict[str, Any]]:
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
    from azure.core.rest import HttpRequest

    from ..adapters.azure.credentials import explain_auth_error

    try:
        response = client.send_request(HttpRequest("GET", url))
    except ClientAuthenticationError as exc:
        raise AdminError(explain_auth_error(exc)) from exc
    except ServiceRequestError as exc:
        raise AdminError(f"could not reach Microsoft Graph at {url} ({exc}); check the "
                         "network, or AKSRUN_GRAPH_ENDPOINT.") from exc
    try:
        body = response.json()
    except Exception:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def _graph_message(body: dict[str, Any]) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    return ""
