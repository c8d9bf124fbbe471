"""The names aksrun gives what it provisions for a person, in one place: `admin` creates
them, `doctor` and `init` look for them, `remove-user` and `teardown` find them again.

Every Azure resource aksrun creates carries the tags below and every Kubernetes object the
label, so removal touches only what aksrun made.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

MANAGED_BY_TAG = "managed-by"
MANAGED_BY = "aksrun"
USER_TAG = "aksrun-user"
K8S_MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
K8S_USER_LABEL = "aksrun.io/user"
SERVICE_ACCOUNT = "aksrun"
WORKLOAD_IDENTITY_CLIENT_ID = "azure.workload.identity/client-id"
WORKLOAD_IDENTITY_USE = "azure.workload.identity/use"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"
# A user name becomes a namespace (63), a container (3-63, lowercase, no "--"), an identity.
_USER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,38}[a-z0-9]$|^[a-z0-9]$")


def check_user(name: str) -> str:
    """A user name that fits every name derived from it, or a ConfigError saying why."""
    if not isinstance(name, str) or not _USER.match(name):
        raise ConfigError(
            f"user name {name!r} can't name a namespace, a blob container and an identity: "
            "use 1-40 lowercase letters, digits and single '-' (not at either end), "
            "e.g. 'alice' or 'bob-smith'.")
    return name


def namespace(user: str) -> str:
    return f"aksrun-{check_user(user)}"


def container(user: str) -> str:
    return f"aksrun-{check_user(user)}"


def identity(user: str) -> str:
    return f"aksrun-{check_user(user)}"


def federated_credential(user: str) -> str:
    return f"aksrun-{check_user(user)}-sa"


def subject(user: str) -> str:
    """The service-account subject the federated credential trusts."""
    return f"system:serviceaccount:{namespace(user)}:{SERVICE_ACCOUNT}"


def tags(user: str | None = None) -> dict[str, str]:
    out = {MANAGED_BY_TAG: MANAGED_BY}
    if user:
        out[USER_TAG] = check_user(user)
    return out


def labels(user: str | None = None) -> dict[str, str]:
    out = {K8S_MANAGED_BY_LABEL: MANAGED_BY}
    if user:
        out[K8S_USER_LABEL] = check_user(user)
    return out
