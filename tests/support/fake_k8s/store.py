"""The object store: etcd-like keyed objects, one global resourceVersion and a bounded
change history that watches replay from (older versions answer 410 Gone).

Stored objects are treated as immutable snapshots: every update deep-copies, so readers can
serialise what they got without holding the lock.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .objects import RESOURCES, ApiError


@dataclass(frozen=True)
class Change:
    rv: int
    resource: str
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict
    old: dict | None


class Expired(Exception):
    """The requested resourceVersion has been compacted out of the history."""

    def __init__(self, requested: int, oldest: int):
        super().__init__(f"too old resource version: {requested} ({oldest})")


class Store:
    def __init__(self, history: int = 1000):
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._objs: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self.rv = 100
        self._history: deque[Change] = deque(maxlen=max(1, history))
        self._compacted = self.rv
        self.listeners: list[Callable[[Change], None]] = []
        self.closed = False

    def _commit(self, resource: str, kind: str, obj: dict, old: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        change = Change(self.rv, resource, kind, obj, old)
        self._history.append(change)
        for listener in self.listeners:
            listener(change)
        self._cond.notify_all()
        return obj

    def create(self, resource: str, obj: dict) -> dict:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self.lock:
            if key in self._objs[resource]:
                res = RESOURCES[resource]
                raise ApiError(409, "AlreadyExists",
                               f'{res.qualified} "{key[1]}" already exists',
                               {"name": key[1], "group": res.group, "kind": res.name})
            self._objs[resource][key] = obj
            return self._commit(resource, "ADDED", obj, None)

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            return self._objs[resource].get((namespace, name))

    def list(self, resource: str, namespace: str | None = None) -> tuple[list[dict], int]:
        """Items sorted by (namespace, name) like etcd keys, plus the current revision."""
        with self.lock:
            items = [o for (ns, _), o in sorted(self._objs[resource].items())
                     if namespace is None or ns == namespace]
            return items, self.rv

    def update(self, resource: str, namespace: str, name: str,
               mutate: Callable[[dict], bool | None]) -> dict | None:
        """Apply mutate() to a copy; commit unless it returns False. None if absent."""
        with self.lock:
            cur = self._objs[resource].get((namespace, name))
            if cur is None:
                return None
            new = copy.deepcopy(cur)
            if mutate(new) is False or new == cur:
                return cur
            self._objs[resource][(namespace, name)] = new
            return self._commit(resource, "MODIFIED", new, cur)

    def delete(self, resource: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            cur = self._objs[resource].pop((namespace, name), None)
            if cur is None:
                return None
            return self._commit(resource, "DELETED", copy.deepcopy(cur), cur)

    def changes_since(self, rv: int) -> tuple[list[Change], int]:
        """Changes newer than rv and the revision they bring the reader up to."""
        with self.lock:
            if rv < self._compacted:
                raise Expired(rv, self._compacted)
            out = []
            for change in reversed(self._history):
                if change.rv <= rv:
                    break
                out.append(change)
            out.reverse()
            return out, self.rv

    def wait(self, rv: int, timeout: float) -> None:
        """Block until something newer than rv is committed, the store closes or timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self.rv > rv or self.closed, timeout)

    def compact(self) -> None:
        """Drop all history: every watch from an older resourceVersion now gets 410."""
        with self.lock:
            self._history.clear()
            self._compacted = self.rv

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
