"""aksrun: run plain Python functions on Azure Kubernetes Service (or locally, same lifecycle).

    @aksrun.function(cpu="2", memory="4Gi")
    def train(params): ...

    train(params)                 # remote call, value back (or the remote exception)
    train.submit(params)          # aksrun.Future
    train.map(grid)               # one job, results in order

The public names are imported lazily so `import aksrun` stays cheap.
"""

from __future__ import annotations

from .errors import (
    AksrunError,
    CallCrashedError,
    CallOutOfMemoryError,
    CallTimeoutError,
    ConfigError,
    ImageBuildError,
    IntegrityError,
    JobCancelledError,
    JobFailedError,
    RemoteError,
    SerializationError,
    UnknownJobError,
)
from .integrations import joblib_registration as _joblib_registration

__version__ = "0.1.0"

# joblib.parallel_config(backend="aksrun") works from here on, without importing joblib now.
_joblib_registration.install()

_LAZY = {
    "function": "aksrun.api.decorator",
    "RemoteFunction": "aksrun.api.decorator",
    "Future": "aksrun.api.future",
    "Executor": "aksrun.api.executor",
    "get": "aksrun.api.attach",
    "output_dir": "aksrun.api.artifacts",
    "Config": "aksrun.core.config",
}

__all__ = [
    "AksrunError",
    "CallCrashedError",
    "CallOutOfMemoryError",
    "CallTimeoutError",
    "ConfigError",
    "Executor",
    "Future",
    "ImageBuildError",
    "IntegrityError",
    "JobCancelledError",
    "JobFailedError",
    "RemoteError",
    "RemoteFunction",
    "SerializationError",
    "UnknownJobError",
    "function",
    "get",
    "output_dir",
]

TYPE_CHECKING = False  # not `from typing import ...`: typing alone costs ~10 ms to import
if TYPE_CHECKING:
    from typing import Any

    from .api.attach import get
    from .api.decorator import RemoteFunction, function
    from .api.executor import Executor
    from .api.future import Future


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aksrun' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
