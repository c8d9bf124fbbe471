"""Workload identity's chain, link by link: the service account names a client id, a
user-assigned identity has that client id, and that identity trusts tokens the cluster's OIDC
issuer signs for exactly this service account. A broken link shows up in a pod only as
AADSTS70021 ("no matching federated identity record"), far from its cause."""

from __future__ import annotations

from typing import Any

from ...adapters.azure.arm import arm_error_code, arm_error_message
from ...core import naming
from ...errors import ConfigError
from ..context import Context
from ..model import Outcome
from ..scope import add_user_command, identity_name, person, subject


def find_identity(context: Context, client_id: str) -> tuple[Any | None, Any | None]:
    """(the identity whose client id this is, the one `admin add-user` would have named) —
    by name first (one GET: Reader on your own identity is enough), then by listing the
    resource group and the subscription, as far as you may."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.msi import ManagedServiceIdentityClient

    config = context.config
    msi = context.arm(ManagedServiceIdentityClient)
    named = None
    name = identity_name(config)
    if name:
        try:
            named = msi.user_assigned_identities.get(config.resource_group, name)
        except ResourceNotFoundError:
            named = None
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
    if named is not None and _same(named.client_id, client_id):
        return named, named
    listers = (lambda: msi.user_assigned_identities.list_by_resource_group(
                   config.resource_group),
               msi.user_assigned_identities.list_by_subscription)
    for lister in listers:
        try:
            for identity in lister():
                if _same(identity.client_id, client_id):
                    return identity, named
        except HttpResponseError as exc:
            if exc.status_code != 403 or named is None:
                raise
            break  # may read only your own identity: it is not the one the annotation names
    return None, named


def check_federated_credential(context: Context) -> Outcome:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.msi import ManagedServiceIdentityClient

    config = context.config
    client_id = context.get("client_id") or ""
    issuer = (context.get("aks") or {}).get("oidc_issuer_url") or ""
    wanted = subject(config)
    account = f"service account {config.service_account} in {config.effective_namespace}"
    try:
        identity, named = find_identity(context, client_id)
    except HttpResponseError as exc:
        return _arm_failure(exc, "user-assigned identities", config)
    if identity is None:
        fix = (f"set the annotation to your identity {named.name}'s client id: "
               f"`kubectl annotate --overwrite serviceaccount "
               f"{config.service_account} -n {config.effective_namespace} "
               f"{naming.WORKLOAD_IDENTITY_CLIENT_ID}={named.client_id}`."
               if named is not None else
               f"ask your admin to run {add_user_command(config)}, which creates your "
               "identity and writes its client id on the service account.")
        summary = (f"the annotation on {account} names client id {client_id}, but your "
                   f"identity {named.name} has {named.client_id}" if named is not None else
                   f"no user-assigned identity you can see has client id {client_id} (the "
                   f"annotation on {account})")
        return Outcome.fail(summary, fix, client_id=client_id)
    group = _resource_group(identity.id) or config.resource_group
    msi = context.arm(ManagedServiceIdentityClient)
    try:
        credentials = list(msi.federated_identity_credentials.list(group, identity.name))
    except HttpResponseError as exc:
        return _arm_failure(exc, f"the federated credentials of identity {identity.name}",
                            config)
    details = {"identity": identity.name, "client_id": client_id, "subject": wanted,
               "issuer": issuer, "trusted": [
                   {"name": c.name, "issuer": c.issuer, "subject": c.subject,
                    "audiences": list(c.audiences or [])} for c in credentials]}
    create = (f"`az identity federated-credential create -g {group} --identity-name "
              f"{identity.name} --name {_credential_name(config)} "
              f"--issuer {issuer or '<cluster OIDC issuer>'} --subject {wanted} "
              f"--audiences {naming.TOKEN_AUDIENCE}`")
    for_subject = [c for c in credentials if c.subject == wanted]
    if not for_subject:
        trusted = ", ".join(sorted({c.subject for c in credentials})) or "nothing"
        return Outcome.fail(
            f"identity {identity.name} does not trust {wanted} (it trusts: {trusted})",
            f"ask your admin to run {add_user_command(config)}, or run {create}.", **details)
    if issuer:
        for_issuer = [c for c in for_subject if _same_issuer(c.issuer, issuer)]
        if not for_issuer:
            theirs = for_subject[0].issuer or ""
            slash = (" (they differ only in the trailing '/', and Entra compares exactly)"
                     if theirs.rstrip("/") == issuer.rstrip("/") else "")
            return Outcome.fail(
                f"identity {identity.name} trusts {wanted} from issuer {theirs}, not from "
                f"this cluster's {issuer}{slash}",
                f"ask your admin to run {add_user_command(config)} (it writes this cluster's "
                f"issuer), or run {create}.", **details)
        for_subject = for_issuer
    if not any(naming.TOKEN_AUDIENCE in (c.audiences or []) for c in for_subject):
        return Outcome.fail(
            f"identity {identity.name}'s federated credential for {wanted} has audiences "
            f"{list(for_subject[0].audiences or [])}, not {naming.TOKEN_AUDIENCE}",
            f"ask your admin to run {add_user_command(config)}, or run {create}.", **details)
    return Outcome.ok(f"identity {identity.name} ({client_id}) trusts {wanted}"
                      + (" from this cluster's issuer" if issuer else ""), **details)


def _arm_failure(exc: Any, what: str, config: Any) -> Outcome:
    status = getattr(exc, "status_code", None)
    if status == 403:
        return Outcome.fail(f"you may not read {what}: {arm_error_message(exc)}",
                            f"ask your admin for Reader on your identity "
                            f"{identity_name(config) or ''} (or its resource group "
                            f"{config.resource_group}).")
    return Outcome.fail(f"ARM answered HTTP {status} {arm_error_code(exc) or ''} reading "
                        f"{what}: {arm_error_message(exc)}",
                        "try again in a minute; if it persists, check Azure's status page.")


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b) and str(a).lower() == str(b).lower()


def _same_issuer(a: str | None, b: str | None) -> bool:
    """Issuer URLs as Entra compares them: exactly (a missing trailing slash is a mismatch)."""
    return bool(a and b) and str(a) == str(b)


def _resource_group(resource_id: str | None) -> str | None:
    parts = (resource_id or "").split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        i = lowered.index("resourcegroups")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def _credential_name(config: Any) -> str:
    try:
        return naming.federated_credential(person(config))
    except ConfigError:
        return "aksrun-sa"
