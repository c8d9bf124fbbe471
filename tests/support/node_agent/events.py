"""core/v1 Events as the kubelet's event recorder posts them, sent from one background thread
so a slow or refused event (e.g. a terminating namespace) never delays a pod."""

from __future__ import annotations

import logging
import queue
import threading
import time

from .kube import ApiError, Kube

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class EventRecorder:
    def __init__(self, kube: Kube, name: str = "node-agent events") -> None:
        self.kube = kube
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def pod_event(self, pod: dict, node: str, reason: str, message: str,
                  type_: str = "Normal", container: str | None = None) -> None:
        """An event about a pod (about one of its containers when `container` is given)."""
        meta = pod["metadata"]
        involved = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                    "uid": meta["uid"], "apiVersion": "v1",
                    "resourceVersion": meta.get("resourceVersion", "")}
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        self._post(meta["namespace"], meta["name"], involved, node, reason, message, type_)

    def node_event(self, node: str, reason: str, message: str, type_: str = "Normal",
                   component: str = "kubelet") -> None:
        """An event about a Node (the kubelet's node reference: uid = the node name)."""
        involved = {"kind": "Node", "name": node, "uid": node, "apiVersion": "v1"}
        self._post("default", node, involved, node, reason, message, type_, component)

    def _post(self, namespace: str, name: str, involved: dict, node: str, reason: str,
              message: str, type_: str, component: str = "kubelet") -> None:
        ts = now_rfc3339()
        self._queue.put({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "source": {"component": component, "host": node},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": component, "reportingInstance": node,
        })

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.kube.post(f"/api/v1/namespaces/{event['metadata']['namespace']}/events",
                               event)
            except ApiError as exc:
                log.info("event %s/%s not recorded: %s", event["involvedObject"]["name"],
                         event["reason"], exc)
            except Exception:
                log.exception("event %s not recorded", event["reason"])

    def stop(self) -> None:
        """Send what is queued (bounded by the join timeout), then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout=5)
