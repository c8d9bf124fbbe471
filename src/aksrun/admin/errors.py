"""What `aksrun admin` raises: each error names what is wrong and the command that fixes it.

Bad input (a name, a principal, a resource group that doesn't exist) derives from
`ConfigError`, so the CLI exits 2 as for any usage error; a refusal or failure of Azure or
the cluster derives from `AksrunError` and exits 1.
"""

from __future__ import annotations

from ..errors import AksrunError, ConfigError


class AdminError(AksrunError):
    """Azure or the cluster refused or failed a provisioning step."""


class ResourceGroupNotFoundError(ConfigError):
    """The resource group does not exist in the subscription."""


class ClusterNotFoundError(ConfigError):
    """No AKS cluster of that name in the resource group."""


class PrincipalNotFoundError(ConfigError):
    """The person (object id or UPN) is unknown to Entra ID."""


class NotBootstrappedError(ConfigError):
    """add-user needs what `aksrun admin bootstrap` sets up first."""


class UserConflictError(ConfigError):
    """The user name is taken: by another person, or by something aksrun did not create."""


class NameTakenError(ConfigError):
    """A globally unique name (storage account, registry) belongs to someone else."""


class AdminPermissionError(AdminError):
    """The signed-in admin may not do a step; the message names the role that allows it."""


class PropagationTimeoutError(AdminError, TimeoutError):
    """A new identity could not reach its container within the bound (Entra/RBAC lag)."""
