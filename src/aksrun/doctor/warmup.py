"""Import the heavy client modules once, in one thread, before the checks start.

The checks run in parallel threads and import lazily. Two threads importing packages that
share dependencies for the first time (kubernetes and azure-identity both pull in requests
and urllib3) can each hold a module lock the other needs; Python breaks that deadlock by
handing one of them a partially initialised module, and the check fails with "cannot import
name ... (most likely due to a circular import)". Importing everything a configuration's
checks use here first (about a second, mostly kubernetes' models) leaves the checks nothing
heavy to import concurrently.
"""

from __future__ import annotations

import importlib

from ..core.config import Config
from .scope import has_cluster_settings, needs_credential

KUBERNETES_APIS = ("CoreV1Api", "BatchV1Api", "AuthorizationV1Api", "VersionApi")
ARM_CLIENTS = ("azure.mgmt.core", "azure.mgmt.containerservice", "azure.mgmt.msi",
               "azure.mgmt.storage", "azure.mgmt.containerregistry")


def modules_for(config: Config) -> list[str]:
    """What this configuration's checks will import, in dependency order."""
    modules: list[str] = []
    if needs_credential(config):
        modules += ["azure.core", "azure.identity"]
    if config.store_url.startswith("az://"):
        modules += ["azure.storage.blob"]
    if config.registry:
        modules += ["azure.containerregistry"]
    if has_cluster_settings(config):
        modules += list(ARM_CLIENTS)
    if config.backend != "local":
        modules += ["kubernetes.client", "kubernetes.config"]
    return modules


def preload(config: Config) -> None:
    """Import them now; never fails (a missing extra: the check that needs it says so)."""
    for name in modules_for(config):
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        if name == "kubernetes.client":
            for api in KUBERNETES_APIS:
                getattr(module, api, None)
