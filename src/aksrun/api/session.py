"""The process's Client for the configuration in effect, built on first use and rebuilt only
when the configuration changes (so a notebook can switch AKSRUN_BACKEND between cells)."""

from __future__ import annotations

import threading

from ..core.backends import open_compute, open_store
from ..core.config import Config, load_config
from ..core.lifecycle import Client

_lock = threading.Lock()
_cached: tuple[Config, Client] | None = None


def default_client(config: Config | None = None) -> Client:
    global _cached
    config = config or load_config()
    with _lock:
        if _cached is not None and _cached[0] == config:
            return _cached[1]
        client = make_client(config)
        _cached = (config, client)
        return client


def make_client(config: Config) -> Client:
    store = open_store(config.store_url, config)
    image_for = None
    if config.backend != "local" and (config.registry or config.registry_login_server):
        from ..images.resolve import image_resolver

        image_for = image_resolver(config)
    compute = open_compute(config, image_for=image_for)
    return Client(store, compute, user=config.user, max_parallel=config.max_parallel,
                  backend=config.backend)
