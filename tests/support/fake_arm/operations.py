"""Long-running operations as ARM's resource providers run them, without background threads.

A provider that answers a write asynchronously starts an `Operation` that finishes
`delay` seconds later; its completion (the resource's provisioningState moving on, say) is a
callback applied lazily, the first time anything looks after that moment (`settle()` runs
before every request the fake ARM answers). So the state a client sees depends only on time,
exactly as with the real service, and nothing keeps running after a test ends.

The status documents follow ARM's async contract (azure-resource-manager-rpc,
async-api-reference.md): the `Azure-AsyncOperation` resource is
`{"id", "name", "status", "startTime"[, "endTime", "error"]}` with status InProgress, then
Succeeded | Failed | Canceled; a `Location` monitor answers 202 until done, then the result.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"Succeeded", "Failed", "Canceled"})


@dataclass
class Operation:
    id: str
    kind: str  # e.g. "update managed cluster", for conflict messages
    target: str  # the resource id it works on
    done_at: float  # time.monotonic() when it finishes
    on_done: Callable[[], None] | None = None
    error: dict[str, Any] | None = None  # set: the operation ends Failed with it
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    ended: dt.datetime | None = None
    status: str = "InProgress"
    result: Any = None  # what a Location monitor answers at the end (JSON), if anything

    def document(self) -> dict[str, Any]:
        """The Azure-AsyncOperation status resource."""
        body: dict[str, Any] = {
            "id": self.id, "name": self.id, "status": self.status,
            "startTime": _iso(self.started),
        }
        if self.ended is not None:
            body["endTime"] = _iso(self.ended)
        if self.status == "Failed" and self.error:
            body["error"] = self.error
        return body


class Operations:
    """Every operation the fake has started; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._operations: dict[str, Operation] = {}

    def start(
        self, kind: str, target: str, delay: float,
        on_done: Callable[[], None] | None = None, error: dict[str, Any] | None = None,
    ) -> Operation:
        operation = Operation(
            str(uuid.uuid4()), kind, target, time.monotonic() + max(0.0, delay), on_done, error
        )
        with self._lock:
            self._operations[operation.id.lower()] = operation
        if delay <= 0:
            self.settle()
        return operation

    def get(self, operation_id: str) -> Operation | None:
        self.settle()
        with self._lock:
            return self._operations.get(operation_id.lower())

    def running(self, target: str) -> Operation | None:
        """The unfinished operation on this resource, if any."""
        self.settle()
        with self._lock:
            for operation in self._operations.values():
                if operation.status == "InProgress" and operation.target.lower() == target.lower():
                    return operation
        return None

    def settle(self) -> None:
        """Finish every operation whose time has come (in start order)."""
        now = time.monotonic()
        with self._lock:
            due = [o for o in self._operations.values()
                   if o.status == "InProgress" and o.done_at <= now]
            due.sort(key=lambda o: o.done_at)
            for operation in due:
                operation.status = "Failed" if operation.error else "Succeeded"
                operation.ended = dt.datetime.now(dt.UTC)
                if operation.on_done is not None and not operation.error:
                    operation.on_done()


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
