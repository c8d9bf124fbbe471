"""core/v1 Events as the kubelet, scheduler, autoscaler and job controller write them.

Identical events (same object, reason and message) are aggregated by bumping `count`, as
client-go's event correlator does.
"""

from __future__ import annotations

import threading

from .objects import new_uid, now_ts, rand_suffix


class EventRecorder:
    def __init__(self, store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: dict[tuple, tuple[str, str]] = {}

    def record(self, obj: dict, reason: str, message: str, type_: str = "Normal",
               component: str = "kubelet", host: str | None = None,
               field_path: str | None = None) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid"), reason, message, component)
        ts = now_ts()
        with self._lock:
            if key in self._seen:
                ns, name = self._seen[key]

                def bump(ev: dict) -> None:
                    ev["count"] = ev.get("count", 1) + 1
                    ev["lastTimestamp"] = ts

                if self.store.update("events", ns, name, bump) is not None:
                    return
            involved = {"kind": obj.get("kind"), "name": meta["name"], "uid": meta.get("uid"),
                        "apiVersion": obj.get("apiVersion"),
                        "resourceVersion": meta.get("resourceVersion")}
            if meta.get("namespace"):
                involved["namespace"] = meta["namespace"]
            if field_path:
                involved["fieldPath"] = field_path
            source = {"component": component}
            if host:
                source["host"] = host
            name = f"{meta['name']}.{rand_suffix(8)}{new_uid()[:8]}"
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace, "uid": new_uid(),
                             "creationTimestamp": ts},
                "involvedObject": involved, "reason": reason, "message": message,
                "source": source, "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
                "type": type_, "eventTime": None, "reportingComponent": component,
                "reportingInstance": host or "",
            }
            self._seen[key] = (namespace, name)
            self.store.create("events", event)
