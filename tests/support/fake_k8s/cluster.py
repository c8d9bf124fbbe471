"""FakeCluster: the public face of the fake — lifecycle, kubeconfig, knobs, admission,
deletion/garbage collection, fault injection and test helpers.
"""

from __future__ import annotations

import atexit
import collections
import copy
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from signal import SIGKILL

import yaml

from .events import EventRecorder
from .jobs import JobController
from .kubelet import Kubelet, qos_class
from .objects import RESOURCES, ApiError, new_uid, now_ts, rand_suffix
from .scheduler import NodePool, node_object
from .server import FakeHTTPServer, version_info
from .store import Store
from .validation import check_unknown, default_job, default_pod_spec, validate_job, validate_pod

Predicate = Callable[[dict], bool]


class FakeCluster:
    """A strict, in-process Kubernetes API server + job controller + scheduler + kubelet.

    Knobs (constructor keywords, also plain attributes afterwards):
      node_pools         NodePools to start with (default: 3 nodes Standard_D4s_v5, 4 cpu, 16Gi)
      token              bearer token the kubeconfig carries and the server requires
      watch_history      change events kept for watches; older resourceVersions get 410
      startup_delay      seconds between scheduling and container start (ContainerCreating)
      failing_images     set of image names, or predicate, whose pulls fail (ErrImagePull)
      image_commands     image → ENTRYPOINT argv, for containers without `command`
      executables        command[0] → host executable (default python/python3 → sys.executable)
      base_env           the "image" environment every container starts from (default: PATH,
                         LANG, HOME and TMPDIR under the pod's rootfs — never this process's
                         environment, so pods see only what their spec gives them)
      passthrough_env    names of host variables copied into every container when base_env
                         is None (default: AZURE_TOKEN_CREDENTIALS, so an Azure SDK in a pod
                         cannot wander off to the managed-identity endpoint)
      pod_mutator        called with every new pod dict before it is stored (an admission
                         webhook, e.g. workload identity env injection)
      autoscaler         emit cluster-autoscaler events and grow pools that have max_count
      scale_up_delay     seconds before a triggered scale-up's node joins
      pod_backoff        job controller's base delay before re-creating a failed pod (real: 10 s)
      restart_backoff    kubelet's base CrashLoopBackOff delay (real: 10 s)
      image_backoff      delay between ErrImagePull and ImagePullBackOff
      max_grace_seconds  cap on termination grace periods (real pods default to 30 s)
      bookmark_interval  seconds between watch BOOKMARK events (when allowed)
      memory_interval    RSS sampling period for memory-limit (OOM) enforcement
    """

    def __init__(self, *, node_pools: list[NodePool] | None = None, token: str = "fake-token",
                 watch_history: int = 1000, startup_delay: float = 0.0,
                 failing_images: set[str] | Callable[[str], bool] | None = None,
                 image_commands: dict[str, list[str]] | None = None,
                 executables: dict[str, str] | None = None,
                 base_env: Mapping[str, str] | None = None,
                 passthrough_env: tuple[str, ...] = ("AZURE_TOKEN_CREDENTIALS",),
                 pod_mutator: Callable[[dict], None] | None = None, autoscaler: bool = True,
                 scale_up_delay: float = 1.0, pod_backoff: float = 0.0,
                 restart_backoff: float = 0.1, image_backoff: float = 0.2,
                 max_grace_seconds: float = 5.0, bookmark_interval: float = 5.0,
                 memory_interval: float = 0.05, tick: float = 0.05,
                 version: str = "v1.31.3") -> None:
        self.token = token
        self.startup_delay = startup_delay
        self.failing_images: set[str] | Callable[[str], bool] = failing_images or set()
        self.image_commands = dict(image_commands or {})
        self.executables = {"python": sys.executable, "python3": sys.executable,
                            **(executables or {})}
        self.base_env = base_env
        self.passthrough_env = passthrough_env
        self.pod_mutator = pod_mutator
        self.autoscaler = autoscaler
        self.scale_up_delay = scale_up_delay
        self.pod_backoff = pod_backoff
        self.restart_backoff = restart_backoff
        self.image_backoff = image_backoff
        self.max_grace_seconds = max_grace_seconds
        self.bookmark_interval = bookmark_interval
        self.memory_interval = memory_interval
        self.tick = tick
        self.version = version
        self.requests: Counter = Counter()
        self._requests_lock = threading.Lock()
        self.request_log: collections.deque[str] = collections.deque(maxlen=2000)
        self.stopping = False
        self.store = Store(watch_history)
        self.events = EventRecorder(self.store)
        self.pools: list[NodePool] = []
        self.pending_growth: Counter = Counter()
        self._growth: list[tuple[float, NodePool]] = []
        self._node_count = 0
        self.root = Path(tempfile.gettempdir())
        self.kubelet = Kubelet(self)
        self.controller = JobController(self)
        self.store.listeners.append(self._wake_kubelet)
        self._server: FakeHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        for name in ("default", "kube-system"):
            self.create("namespaces", None, {"metadata": {"name": name}})
        for pool in node_pools if node_pools is not None else [NodePool()]:
            self.add_node_pool(pool)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> FakeCluster:
        """Bind 127.0.0.1 on a free port and start the server, controller and kubelet."""
        self.root = Path(tempfile.mkdtemp(prefix="fake-k8s-"))
        self._server = FakeHTTPServer(self)
        for target, name in ((self._server.serve_forever, "apiserver"),
                             (self.controller.run, "job-controller"),
                             (self.kubelet.run, "kubelet")):
            thread = threading.Thread(target=target, name=f"fake-k8s-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop serving, kill every pod's process group and remove the pods' temp dirs."""
        if self.stopping:
            return
        self.stopping = True
        atexit.unregister(self.stop)
        self.store.close()
        self.kubelet.wake.set()
        self.controller.wake.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.kubelet.shutdown()
        if self.root.name.startswith("fake-k8s-"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeCluster.start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: str | Path, namespace: str = "default",
                         context: str = "fake-aks") -> Path:
        """An ordinary kubeconfig: plain-http server URL and a bearer-token user."""
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {
                "cluster": context, "user": f"{context}-user", "namespace": namespace}}],
            "current-context": context,
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ---------------------------------------------------------------- nodes
    def add_node_pool(self, pool: NodePool) -> list[str]:
        """Add a pool (e.g. scheduler.gpu_pool() / spot_pool()) and create its nodes."""
        self.pools.append(pool)
        count, pool.count = pool.count, 0
        return [self._add_node(pool) for _ in range(count)]

    def _add_node(self, pool: NodePool) -> str:
        self._node_count += 1
        node = node_object(pool, pool.count, f"10.224.0.{self._node_count + 3}", new_uid())
        pool.count += 1
        self.store.create("nodes", node)
        self.kubelet.wake.set()
        return node["metadata"]["name"]

    def request_growth(self, pool: NodePool) -> None:
        self.pending_growth[pool.name] += 1
        self._growth.append((time.monotonic() + self.scale_up_delay, pool))

    def grow_pools(self, now: float) -> None:
        due = [(t, p) for t, p in self._growth if t <= now]
        for item in due:
            self._growth.remove(item)
            self.pending_growth[item[1].name] -= 1
            self._add_node(item[1])

    def count_request(self, verb: str, resource: str) -> None:
        with self._requests_lock:
            self.requests[(verb, resource)] += 1

    def image_fails(self, image: str) -> bool:
        fails = self.failing_images
        return fails(image) if callable(fails) else image in fails

    # ---------------------------------------------------------------- admission
    def create(self, resource: str, namespace: str | None, body: dict,
               dry_run: bool = False) -> dict:
        """What POST does: strict decoding, validation, defaulting, then store."""
        res = RESOURCES[resource]
        kind = res.kind
        if body.get("apiVersion", res.api_version) != res.api_version or \
                body.get("kind", kind) != kind:
            raise ApiError(400, "BadRequest", f"the API version in the data "
                           f"({body.get('apiVersion')}) does not match the expected API "
                           f"version ({res.api_version})" if body.get("kind", kind) == kind else
                           f"the kind in the data ({body.get('kind')}) does not match {kind}")
        check_unknown(body, kind)
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if res.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does "
                               "not match the namespace sent on the request")
            meta["namespace"] = namespace
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError",
                           "resourceVersion should not be set on objects to be created")
        body["apiVersion"], body["kind"] = res.api_version, kind
        if resource == "jobs":
            validate_job(body)
        elif resource == "pods":
            validate_pod(body)
        elif not meta.get("name") and not meta.get("generateName"):
            raise ApiError(422, "Invalid", f'{kind} "" is invalid: metadata.name: Required '
                           "value: name or generateName is required")
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + rand_suffix()
        for key in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"], meta["creationTimestamp"] = new_uid(), now_ts()
        if resource == "jobs":
            meta["generation"] = 1
            default_job(body, meta["uid"])
            body["status"] = {}
        elif resource == "pods":
            self._default_pod(body)
        elif resource == "namespaces":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            body["spec"], body["status"] = {"finalizers": ["kubernetes"]}, {"phase": "Active"}
        if dry_run:
            return body
        return self.store.create(resource, body)

    def _default_pod(self, pod: dict) -> None:
        spec = pod["spec"]
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec["serviceAccount"] = spec["serviceAccountName"]
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        if self.pod_mutator is not None:
            self.pod_mutator(pod)
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}

    def create_pod(self, pod: dict) -> dict:
        """Controller path for pods (no strict decoding of what the controller built)."""
        return self.create("pods", pod["metadata"]["namespace"], pod)

    # ---------------------------------------------------------------- deletion / GC
    def delete_pod(self, namespace: str, name: str, grace: int | None = None) -> dict:
        """Graceful deletion: running pods get deletionTimestamp and SIGTERM, then vanish."""
        pod = self.store.get("pods", namespace, name)
        if pod is None:
            raise RESOURCES["pods"].not_found(name)
        running = pod["spec"].get("nodeName") and \
            pod["status"].get("phase") not in ("Succeeded", "Failed")
        if grace == 0 or not running:
            deleted = self.store.delete("pods", namespace, name) or pod
            self.kubelet.wake.set()
            return deleted
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        seconds = grace if grace is not None else pod["spec"].get("terminationGracePeriodSeconds",
                                                                  30)

        def mark(obj: dict) -> None:
            when = time.time() + seconds
            obj["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime(when))
            obj["metadata"]["deletionGracePeriodSeconds"] = seconds

        return self.store.update("pods", namespace, name, mark) or pod

    def delete_job(self, namespace: str, name: str, policy: str | None) -> dict:
        """batch/v1 Jobs default to orphaning their pods, as the real API does."""
        job = self.store.get("jobs", namespace, name)
        if job is None:
            raise RESOURCES["jobs"].not_found(name)
        uid = job["metadata"]["uid"]
        policy = policy or "Orphan"
        owned = [p for p in self.store.list("pods", namespace)[0]
                 if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]
        if policy == "Foreground":
            def mark(obj: dict) -> None:
                obj["metadata"].setdefault("deletionTimestamp", now_ts())
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                fin = obj["metadata"].setdefault("finalizers", [])
                if "foregroundDeletion" not in fin:
                    fin.append("foregroundDeletion")

            updated = self.store.update("jobs", namespace, name, mark) or job
            self.controller.wake.set()
            return updated
        def unown(obj: dict) -> None:
            refs = [r for r in obj["metadata"].get("ownerReferences", []) if r.get("uid") != uid]
            obj["metadata"]["ownerReferences"] = refs
            if not refs:
                del obj["metadata"]["ownerReferences"]

        if policy == "Orphan":  # un-own first, or the garbage collector would take them
            for pod in owned:
                self.store.update("pods", pod["metadata"]["namespace"], pod["metadata"]["name"],
                                  unown)
        self.store.delete("jobs", namespace, name)
        if policy == "Background":
            for pod in owned:
                try:
                    self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
                except ApiError:
                    pass
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": uid}}

    def _wake_kubelet(self, change: object) -> None:
        if getattr(change, "resource", None) in ("pods", "nodes"):
            self.kubelet.wake.set()

    # ---------------------------------------------------------------- fault injection
    def evict(self, pod_name: str, namespace: str | None = None,
              reason: str = "TerminationByKubelet",
              message: str = "The node was low on resource: memory. Threshold quantity: "
                             "100Mi, available: 51200Ki.", delete: bool = False) -> None:
        """Condition DisruptionTarget=True (reason e.g. TerminationByKubelet,
        PreemptionByScheduler, EvictionByEvictionAPI), then either kubelet-style (SIGKILL,
        phase Failed, status.reason Evicted, the pod stays) or, with delete=True, preemption /
        API-eviction style (graceful deletion: SIGTERM, phase Failed, then the pod is gone)."""
        if delete:
            rt = self.kubelet.mark_disrupted(pod_name, namespace, reason, message)
            self.delete_pod(rt.ns, rt.name)
        else:
            self.kubelet.evict(pod_name, namespace, reason, message)

    def api_evict(self, namespace: str, name: str) -> None:
        """Eviction API / preemption: DisruptionTarget condition, then graceful deletion."""
        if self.store.get("pods", namespace, name) is None:
            raise RESOURCES["pods"].not_found(name)
        try:
            self.kubelet.mark_disrupted(name, namespace, "EvictionByEvictionAPI",
                                        "Eviction API: evicting")
        except KeyError:  # not yet seen by the kubelet: nothing runs, plain deletion
            pass
        self.delete_pod(namespace, name)

    def kill(self, pod_name: str, signal: int = SIGKILL, namespace: str | None = None) -> None:
        """Signal the container's process group (SIGKILL → exitCode 137, reason Error)."""
        self.kubelet.kill(pod_name, signal, namespace)

    def compact(self) -> None:
        """Forget all watch history: watching from any older resourceVersion now gets 410."""
        self.store.compact()

    # ---------------------------------------------------------------- test helpers
    def objects(self, resource: str, namespace: str | None = None,
                predicate: Predicate | None = None) -> list[dict]:
        items, _ = self.store.list(resource, namespace)
        return [copy.deepcopy(i) for i in items if predicate is None or predicate(i)]

    def pods(self, namespace: str | None = None, predicate: Predicate | None = None) -> list[dict]:
        return self.objects("pods", namespace, predicate)

    def events_for(self, name: str, namespace: str | None = None) -> list[dict]:
        return self.objects("events", namespace,
                            lambda e: e["involvedObject"]["name"] == name)

    def wait_for(self, fn: Callable[[], object], timeout: float = 10.0,
                 what: str = "condition") -> object:
        """Poll fn() until truthy; returns its value or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            self.store.wait(self.store.rv, 0.05)

    def wait_for_pod(self, predicate: Predicate, timeout: float = 10.0,
                     namespace: str | None = None) -> dict:
        """The first pod matching predicate (a dict snapshot)."""
        def find() -> dict | None:
            return next(iter(self.pods(namespace, predicate)), None)

        try:
            return self.wait_for(find, timeout, "pod")  # type: ignore[return-value]
        except TimeoutError:
            summary = [(p["metadata"]["name"], p["status"].get("phase")) for p in self.pods()]
            raise TimeoutError(f"no matching pod within {timeout}s; pods: {summary}")

    def wait_for_job(self, name: str, predicate: Predicate, timeout: float = 10.0,
                     namespace: str = "default") -> dict:
        def find() -> dict | None:
            job = self.store.get("jobs", namespace, name)
            return copy.deepcopy(job) if job is not None and predicate(job) else None

        return self.wait_for(find, timeout, f"job {name}")  # type: ignore[return-value]

    def pod_log(self, pod_name: str, namespace: str | None = None) -> str:
        rt = self.kubelet.find(pod_name, namespace)
        return b"".join(line for _, line in rt.inst.lines).decode("utf-8", "replace")

    def pid(self, pod_name: str, namespace: str | None = None) -> int | None:
        """The host pid (= process group id) of the pod's running container, if any."""
        return self.kubelet.pid(pod_name, namespace)

    # ---------------------------------------------------------------- discovery
    def discovery(self, path: str) -> dict | str | None:
        path = path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return "ok"
        if path == "/version":
            return version_info(self.version)
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url.removeprefix("http://")}]}
        batch = {"groupVersion": "batch/v1", "version": "v1"}
        group = {"name": "batch", "versions": [batch], "preferredVersion": batch}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
        if path == "/apis/batch":
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
        if path in ("/api/v1", "/apis/batch/v1"):
            gv = "v1" if path == "/api/v1" else "batch/v1"
            resources = []
            for res in RESOURCES.values():
                if res.api_version != gv:
                    continue
                resources.append({"name": res.name, "singularName": res.kind.lower(),
                                  "namespaced": res.namespaced, "kind": res.kind,
                                  "verbs": list(res.verbs)})
                for (rname, sub), (kind, verb) in _SUBS.items():
                    if rname == res.name:
                        resources.append({"name": f"{rname}/{sub}", "singularName": "",
                                          "namespaced": True, "kind": kind, "verbs": [verb]})
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                    "resources": resources}
        return None


_SUBS = {("pods", "log"): ("Pod", "get"), ("pods", "status"): ("Pod", "get"),
         ("pods", "eviction"): ("Eviction", "create"), ("jobs", "status"): ("Job", "get")}
