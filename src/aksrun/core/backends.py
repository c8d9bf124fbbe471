"""Pick the Store and Compute implementations a configuration names (imported lazily, so a
local run never imports Azure or kubernetes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .config import Config

if TYPE_CHECKING:
    from ..ports.compute import Compute
    from ..ports.store import Store


def open_store(url: str, config: Config | None = None) -> Store:
    """A store from its URL: `file:///dir` or `az://container[/prefix]`."""
    if url.startswith("file://"):
        from ..adapters.local_store import LocalStore

        return LocalStore.from_url(url)
    if url.startswith("az://"):
        try:
            from ..adapters.blob_store import BlobStore
        except ImportError as exc:
            raise ConfigError(
                f"store {url!r} needs the Azure extras ({exc.name} is missing); "
                "install them with: pip install 'aksrun[azure]'."
            ) from None
        return BlobStore.from_url(url, config)
    raise ConfigError(f"store {url!r} is not a store URL; use file:///dir or az://container.")


def open_compute(config: Config,
                 image_for: Callable[[Any], str] | None = None) -> Compute:
    """The compute a configuration names. `image_for` (options -> image reference) finds or
    builds each function's image; the api layer passes aksrun.images' resolver."""
    if config.backend == "local":
        from ..adapters.local_compute import LocalCompute

        return LocalCompute(config.home_path / "local", max_parallel=config.max_parallel)
    try:
        from ..adapters.kubernetes_compute import KubernetesCompute
    except ImportError as exc:
        raise ConfigError(
            f"backend {config.backend!r} needs the Azure extras ({exc.name} is missing); "
            "install them with: pip install 'aksrun[azure]'."
        ) from None
    return KubernetesCompute.from_config(config, image_for=image_for)
