"""What checks share: the configuration, one credential, clients with short timeouts, and
the facts a check found for the checks that build on it.

A check writes its facts before it returns and its dependents start only after that, so
facts need no more than a lock around the dictionary.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from ..core.config import Config

T = TypeVar("T")
# Client-side bounds for every request doctor makes: a refused or silent endpoint must fail
# its check within the check's own deadline, not after the SDKs' minutes of retries.
CONNECT_TIMEOUT = 4.0
RETRIES = 1


class Context:
    def __init__(self, config: Config, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self._facts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._credential: Any = None

    # --- facts -----------------------------------------------------------------------------

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._facts[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._facts.get(key, default)

    # --- shared clients --------------------------------------------------------------------

    def credential(self) -> Any:
        """The one DefaultAzureCredential every check uses (it caches tokens per scope)."""
        with self._lock:
            if self._credential is None:
                from ..adapters.azure.credentials import default_credential

                self._credential = default_credential()
            return self._credential

    def sdk_options(self) -> dict[str, Any]:
        """azure-core options that keep one request within the check's deadline."""
        return {"connection_timeout": min(CONNECT_TIMEOUT, self.timeout),
                "read_timeout": self.timeout, "retry_total": RETRIES}

    def arm(self, client_class: type[T]) -> T:
        """An ARM client where the settings point (sovereign clouds, the fake ARM)."""
        from ..adapters.azure.arm import management_client

        return management_client(client_class, self.config, self.credential(),
                                 **self.sdk_options())

    def k8s_timeout(self) -> tuple[float, float]:
        """(connect, read) seconds for the kubernetes client's `_request_timeout`."""
        return (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
