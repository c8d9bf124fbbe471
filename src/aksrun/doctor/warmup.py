"""Import the heavy client modules in the background while the first checks wait on the
network: `kubernetes.client.CoreV1Api` alone takes ~0.8 s to import (its models), which
otherwise lands in the middle of the namespace check, after the API server has answered."""

from __future__ import annotations

import importlib
import threading

from ..core.config import Config
from .scope import needs_credential

KUBERNETES_APIS = ("CoreV1Api", "BatchV1Api", "AuthorizationV1Api")


def start(config: Config) -> None:
    """Begin importing what this configuration's checks will use; never fails."""
    modules: list[str] = []
    if needs_credential(config):
        modules.append("azure.identity")
    if config.store_url.startswith("az://"):
        modules.append("azure.storage.blob")
    if config.registry:
        modules.append("azure.containerregistry")
    threading.Thread(target=_load, args=(modules, config.backend != "local"),
                     name="doctor-warmup", daemon=True).start()


def _load(modules: list[str], kubernetes: bool) -> None:
    try:
        if kubernetes:
            from kubernetes import client

            for name in KUBERNETES_APIS:
                getattr(client, name)
        for name in modules:
            importlib.import_module(name)
    except Exception:  # a missing extra: the check that needs it will say so
        pass
