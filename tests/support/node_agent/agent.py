"""NodeAgent: the one stand-in of the cluster tier, playing the kubelet of a few AKS-like
nodes against a real API server.

It registers the Nodes, watches the pods the real kube-scheduler binds to them (list, then
watch from that resourceVersion; a 410 Gone means list again), and hands each pod to its
PodRuntime (pods.py), which runs the containers as local processes and reports status,
events and logs the way the kubelet does. It talks to 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.images.distribution import RegistryClient

from .cgroups import MemoryCgroups, RssWatcher
from .events import EventRecorder
from .image_store import ImageStore
from .image_store import usable as image_store_usable
from .kube import MERGE_PATCH, ApiError, Kube
from .logs import ContainerLog
from .logs_server import LogServer
from .nodes import NOT_READY_TAINT, NodePool, default_pools, node_object, node_status
from .pods import LogUnavailable, PodRuntime
from .sandbox import Sandbox
from .status import rfc3339
from .tls import make_serving_cert

log = logging.getLogger("tests.support.node_agent")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _default_missing(image: str) -> bool:
    return "does-not-exist" in image


class NodeAgent:
    """The kubelet of every node in `pools` (default: nodepool1, 2 x Standard_D4s_v5).

    kubeconfig         admin kubeconfig of the API server (loopback only)
    root               work dir: pods/<uid> (volumes, container layers, logs), agent.log, tls/
    registries         the registries its nodes pull from (RegistryClient of the test
                       registry): each container then runs in its image's root file
                       system (pulled, unpacked, stacked as overlay lower layers) with the
                       image's config applied; an image the registry lacks is ErrImagePull.
                       Without registries: host mode, the machine's `/` is every image
    image_cache        where pulled layers are unpacked (default root/images; share it
                       between agents and sessions: layers are kept by digest)
    executables        host mode: command[0] -> host executable (python -> this interpreter)
    missing_images     host mode: images the "registry" lacks: ErrImagePull /
                       ImagePullBackOff (default: names containing "does-not-exist")
    passthrough_env    host variables copied into every container (so an Azure SDK in a pod
                       never wanders off to the managed-identity endpoint)
    max_grace_seconds  cap on termination grace periods (tests stay fast)
    backoff_base       first crash-loop / image-pull back-off in seconds (the kubelet's is
                       10 s; shorter here so tests stay fast; doubling up to 300 s as there)
    isolation          False: never use namespaces (what happens anyway where not permitted)
    memory_cgroups     False: enforce memory limits by RSS sampling (likewise)
    shared_paths       host directories visible read-write at the same path in every
                       container (the test harness's side channel; real pods have none)
    trusted_ca         a PEM bundle every container trusts (mounted at TRUSTED_CA_PATH,
                       named by SSL_CERT_FILE and REQUESTS_CA_BUNDLE unless the pod sets
                       them): the stand-ins' certificates are self-made, where Azure's
                       endpoints carry certificates the image's public CAs already trust
    """

    def __init__(self, kubeconfig: Path, root: Path, pools: list[NodePool] | None = None,
                 registries: Sequence[RegistryClient] = (), image_cache: Path | None = None,
                 executables: dict[str, str] | None = None,
                 missing_images: Callable[[str], bool] | None = None,
                 passthrough_env: tuple[str, ...] = ("AZURE_TOKEN_CREDENTIALS",),
                 max_grace_seconds: float = 5.0, backoff_base: float = 1.0,
                 isolation: bool = True, memory_cgroups: bool = True,
                 shared_paths: tuple[str, ...] = (),
                 trusted_ca: Path | None = None) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.trusted_ca = Path(trusted_ca) if trusted_ca else None
        # Host directories bound read-write at the same path into every container, above its
        # volumes: a side channel of the test harness (a test's counter file, a marker), not
        # something a real node gives pods; no product code may rely on it.
        self.shared_paths = tuple(str(p) for p in shared_paths)
        self.root = Path(root)
        self.pools = list(pools) if pools is not None else default_pools()
        self.executables = {"python": sys.executable, "python3": sys.executable,
                            **(executables or {})}
        self.missing_images = missing_images or _default_missing
        self.registries = list(registries)
        self.image_cache = Path(image_cache) if image_cache else self.root / "images"
        self.image_store: ImageStore | None = None
        self.passthrough_env = tuple(passthrough_env)
        self.max_grace_seconds = float(max_grace_seconds)
        self.backoff_base = float(backoff_base)
        self.isolation = isolation
        self.memory_cgroups = memory_cgroups
        self.host_ip = "127.0.0.1"
        self.image_path = os.environ.get("PATH") or DEFAULT_PATH
        self.stopping = False
        self._started = False
        self._stopped = False
        self._lock = threading.RLock()
        self._nodes: dict[str, dict] = {}  # name -> {"pool": NodePool, "allocatable": {...}}
        self._pool_counts: dict[str, int] = {}
        self._pods: dict[str, PodRuntime] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        self._present: set[tuple[str, str]] = set()
        self.throttled: dict[str, int] = {}
        self._noted: set[str] = set()
        self._synced = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._handler: logging.Handler | None = None
        # every thread of this agent is named "<tag> ...": its agent.log gets only its records
        self.tag = f"node-agent-{uuid.uuid4().hex[:6]}"
        self._extra = {"agent": self.tag}
        self.kube: Kube
        self.events: EventRecorder
        self.sandbox: Sandbox
        self.cgroups: MemoryCgroups
        self.rss: RssWatcher
        self.server: LogServer
        self.kubelet_version = "v1.36.3"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> NodeAgent:
        """Register the nodes, serve logs, watch pods; returns once the first list is done.
        If that fails, what was started is stopped again and the error raised."""
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.root / "agent.log")
        self._handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
        tag = self.tag
        self._handler.addFilter(lambda r: r.threadName.startswith(tag)
                                or getattr(r, "agent", None) == tag)
        log.addHandler(self._handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        self.kube = Kube(self.kubeconfig, user_agent="aksrun-node-agent (kubelet stand-in)")
        try:
            self.kubelet_version = self.kube.get("/version").get("gitVersion",
                                                                 self.kubelet_version)
        except ApiError as exc:
            log.warning("GET /version: %s", exc, extra=self._extra)
        self.events = EventRecorder(self.kube, f"{self.tag} events")
        self.sandbox = Sandbox(self.root / "sandbox")
        if not self.isolation:
            self.sandbox.reason = "isolation=False"
        if not self.isolation or not self.sandbox.probe():
            self.note_once("sandbox", "no private mount namespace here "
                           f"({self.sandbox.reason.strip()}): containers run on the host file "
                           "system with container paths mapped to host directories")
        if self.registries:
            self._open_image_store()
        self.cgroups = MemoryCgroups(enabled=self.memory_cgroups)
        if not self.cgroups.available:
            self.note_once("cgroups", f"no writable memory cgroup ({self.cgroups.reason}): "
                           "memory limits are enforced by sampling RSS")
        self.rss = RssWatcher(name=f"{self.tag} rss")
        cert, key = make_serving_cert(self.root / "tls", [p.node_name(0) for p in self.pools])
        self.server = LogServer(cert, key, self._find_log).start(f"{self.tag} logs")
        for pool in self.pools:
            self._register_pool(pool)
        self._watch_thread = threading.Thread(target=self._watch_loop, daemon=True,
                                              name=f"{self.tag} watch")
        self._watch_thread.start()
        if not self._synced.wait(60):
            log.warning("first pod list not done after 60 s", extra=self._extra)
        log.info("node agent up: nodes %s, log port %s, isolation %s, cgroups v%s, registries %s",
                 self.node_names, self.server.port, self.sandbox.isolate, self.cgroups.version,
                 list(self.image_store.registries) if self.image_store else "none (host mode)",
                 extra=self._extra)

    def _open_image_store(self) -> None:
        ok, why = image_store_usable(self.image_cache)
        if not ok or not self.sandbox.isolate:
            why = why or "no private mount namespace"
            self.note_once("images", f"images cannot be used here ({why}): containers run on "
                           "the host file system, which stands in for every image")
            return
        self.image_store = ImageStore(self.image_cache, self.registries)

    def _unmount_all(self) -> None:
        """Whatever is still mounted under the agent's root (a tmpfs emptyDir of a pod whose
        teardown never ran) is unmounted, so no mount outlives the agent on this machine."""
        from .volumes import unmount

        root = str(self.root.resolve()) + "/"
        targets = [line.split()[1].replace("\\040", " ")
                   for line in Path("/proc/self/mounts").read_text().splitlines()]
        for target in sorted((t for t in targets if t.startswith(root)), reverse=True):
            unmount(Path(target))

    def stop(self, delete_nodes: bool = False) -> None:
        """Kill every container and stop the threads and the log server (idempotent).

        Nodes stay registered unless `delete_nodes`."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        self.stopping = True
        kube = getattr(self, "kube", None)
        if kube is not None:
            kube.close_streams()
        with self._lock:
            pods = list(self._pods.values())
        for rt in pods:
            try:
                rt.shutdown()
            except Exception:
                log.exception("shutdown of %s/%s", rt.namespace, rt.name, extra=self._extra)
        steps: list[tuple[str, Callable[[], None]]] = [("leftover mounts", self._unmount_all)]
        for what, attr, method in (("rss watcher", "rss", "stop"),
                                   ("log server", "server", "stop")):
            if hasattr(self, attr):
                steps.append((what, getattr(getattr(self, attr), method)))
        if delete_nodes and kube is not None:
            steps += [(f"node {name}", lambda n=name: self._delete_node(n))
                      for name in self.node_names]
        for what, attr, method in (("events", "events", "stop"), ("cgroups", "cgroups", "close")):
            if hasattr(self, attr):
                steps.append((what, getattr(getattr(self, attr), method)))
        thread = self._watch_thread
        if thread is not None:
            steps.append(("watch", lambda: thread.join(timeout=5)))
        if kube is not None:
            steps.append(("client", kube.close))
        for what, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping %s", what, extra=self._extra)
        log.info("node agent stopped", extra=self._extra)
        if self._handler is not None:
            log.removeHandler(self._handler)
            self._handler.close()

    def _delete_node(self, name: str) -> None:
        try:
            self.kube.delete(f"/api/v1/nodes/{name}")
        except ApiError as exc:
            log.info("node %s not deleted: %s", name, exc, extra=self._extra)

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ nodes
    @property
    def node_names(self) -> list[str]:
        with self._lock:
            return list(self._nodes)

    def add_pool(self, pool: NodePool) -> list[str]:
        """Register `pool`'s nodes now (a second pool with the same name adds nodes to it)."""
        if pool not in self.pools:
            self.pools.append(pool)
        return self._register_pool(pool)

    def allocatable(self, node: str) -> dict[str, str]:
        with self._lock:
            return dict((self._nodes.get(node) or {}).get("allocatable") or {})

    def _register_pool(self, pool: NodePool) -> list[str]:
        names = []
        with self._lock:
            first = self._pool_counts.get(pool.name, 0)
            self._pool_counts[pool.name] = first + pool.count
        for index in range(first, first + pool.count):
            names.append(self._register_node(pool, index))
        return names

    def _register_node(self, pool: NodePool, index: int) -> str:
        """Create (or, after a restart, update) the Node, post its status like the kubelet,
        and lift the not-ready taint as the node-lifecycle controller would."""
        with self._lock:
            cidr = f"10.244.{len(self._nodes)}.0/24"
        body = node_object(pool, index, cidr)
        name = body["metadata"]["name"]
        path = f"/api/v1/nodes/{name}"
        try:
            node = self.kube.post("/api/v1/nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            node = self._update_existing(path, body)
        status = node_status(pool, name, self.server.port, self.kubelet_version, rfc3339(),
                             node.get("status"))
        self.kube.patch(f"{path}/status", {"status": status}, MERGE_PATCH)
        self._lift_not_ready(path)
        with self._lock:
            self._nodes[name] = {"pool": pool, "allocatable": dict(status["allocatable"])}
        for reason, message in (
            ("Starting", "Starting kubelet."),
            ("NodeHasSufficientMemory", f"Node {name} status is now: NodeHasSufficientMemory"),
            ("NodeHasNoDiskPressure", f"Node {name} status is now: NodeHasNoDiskPressure"),
            ("NodeHasSufficientPID", f"Node {name} status is now: NodeHasSufficientPID"),
            ("NodeAllocatableEnforced", "Updated Node Allocatable limit across pods"),
            ("NodeReady", f"Node {name} status is now: NodeReady"),
        ):
            self.events.node_event(name, reason, message)
        log.info("node %s registered (%s)", name, pool.instance_type, extra=self._extra)
        return name

    def _update_existing(self, path: str, body: dict) -> dict:
        for _ in range(10):
            node = self.kube.get(path)
            meta = node["metadata"]
            meta["labels"] = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
            meta["annotations"] = {**(meta.get("annotations") or {}),
                                   **body["metadata"]["annotations"]}
            spec = node.setdefault("spec", {})
            keep = [t for t in spec.get("taints") or [] if t.get("key") == NOT_READY_TAINT]
            spec["taints"] = keep + [dict(t) for t in body["spec"].get("taints") or []]
            spec.pop("unschedulable", None)
            try:
                return self.kube.put(path, node)
            except ApiError as exc:
                if exc.status != 409:
                    raise
        raise RuntimeError(f"could not update {path}: conflicts")

    def _lift_not_ready(self, path: str) -> None:
        for _ in range(10):
            node = self.kube.get(path)
            taints = node.get("spec", {}).get("taints") or []
            kept = [t for t in taints if t.get("key") != NOT_READY_TAINT]
            if kept == taints:
                return
            node["spec"]["taints"] = kept
            try:
                self.kube.put(path, node)
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise

    # ------------------------------------------------------------------ pods
    def _watch_loop(self) -> None:
        """List + watch all bound pods, keep the ones on our nodes (a kubelet watches
        spec.nodeName=<itself>; one watch serves every node of this agent)."""
        rv: str | None = None
        selector = "spec.nodeName!="
        while not self.stopping:
            try:
                if rv is None:
                    listing = self.kube.get("/api/v1/pods", fieldSelector=selector)
                    rv = listing["metadata"]["resourceVersion"]
                    self._relist(listing.get("items") or [])
                    self._synced.set()
                for event in self.kube.watch("/api/v1/pods", fieldSelector=selector,
                                             resourceVersion=rv, allowWatchBookmarks="true"):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            rv = None
                            break
                        raise ApiError(obj.get("code") or 500, obj.get("message", ""))
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._dispatch(event["type"], obj)
            except ApiError as exc:
                if exc.status == 410:
                    rv = None
                    continue
                if not self.stopping:
                    log.warning("pod watch: %s", exc)
                    time.sleep(1.0)
            except Exception as exc:
                if not self.stopping:
                    log.warning("pod watch interrupted: %r", exc)
                    time.sleep(1.0)

    def _relist(self, pods: list[dict]) -> None:
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self._dispatch("ADDED", pod)
        with self._lock:
            vanished = [rt for uid, rt in self._pods.items() if uid not in seen]
        for rt in vanished:
            rt.update(None)

    def _dispatch(self, kind: str, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self._nodes:
            return
        meta = pod["metadata"]
        with self._lock:
            rt = self._pods.get(meta["uid"])
            if rt is None:
                if kind == "DELETED":
                    return
                try:
                    rt = PodRuntime(self, pod)
                except Exception:
                    log.exception("pod %s/%s not taken", meta.get("namespace"), meta.get("name"))
                    return
                self._pods[rt.uid] = rt
                self._by_name[(rt.namespace, rt.name)] = rt.uid
        rt.update(None if kind == "DELETED" else pod)

    def forget(self, rt: PodRuntime) -> None:
        with self._lock:
            self._pods.pop(rt.uid, None)
            if self._by_name.get((rt.namespace, rt.name)) == rt.uid:
                del self._by_name[(rt.namespace, rt.name)]

    def _runtime(self, namespace: str, name: str) -> PodRuntime | None:
        with self._lock:
            uid = self._by_name.get((namespace, name))
            return self._pods.get(uid) if uid else None

    def _find_log(self, namespace: str, pod: str, container: str,
                  previous: bool) -> tuple[ContainerLog, Callable[[], bool]]:
        rt = self._runtime(namespace, pod)
        if rt is None:
            raise LogUnavailable(404, f'pod "{pod}" does not exist')
        log_file, record = rt.log_for(container, previous)
        if previous:
            return log_file, lambda: False
        return log_file, lambda: record.running and record.logs[-1][1] is log_file

    # ------------------------------------------------------------------ fault injection
    def kill(self, namespace: str, pod_name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the running container's whole process group (a crash, the OOM killer...)."""
        rt = self._runtime(namespace, pod_name)
        if rt is None:
            raise KeyError(f"no pod {namespace}/{pod_name} on this agent's nodes")
        proc = rt.running_process()
        if proc is None or not proc.signal(sig, group=True):
            raise RuntimeError(f"pod {namespace}/{pod_name} has no running container")

    def pid(self, namespace: str, pod_name: str) -> int | None:
        """The running container's main process (PID 1 inside it) as this machine numbers
        it, or None. kill() signals its whole process group (shim included)."""
        rt = self._runtime(namespace, pod_name)
        proc = rt.running_process() if rt is not None else None
        return proc.init_pid if proc is not None else None

    # ------------------------------------------------------------------ services for pods
    def get_object(self, path: str) -> dict:
        try:
            return self.kube.get(path)
        except ApiError as exc:
            if exc.status == 404:
                raise LookupError(path) from None
            raise

    def request_token(self, namespace: str, service_account: str, audience: str,
                      expiration: int, pod: dict) -> str:
        """A bound service-account token through the TokenRequest API (projected volumes)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience] if audience else None,
                         "expirationSeconds": int(expiration),
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                            "name": pod["metadata"]["name"],
                                            "uid": pod["metadata"]["uid"]}}}
        answer = self.kube.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/"
                                f"{service_account}/token", body)
        return answer["status"]["token"]

    def image_present(self, node: str, image: str) -> bool:
        with self._lock:
            return (node, image) in self._present

    def mark_present(self, node: str, image: str) -> None:
        with self._lock:
            self._present.add((node, image))

    def forget_image(self, image: str) -> None:
        """Every node drops `image` (as the kubelet's image GC does): the next pod pulls."""
        with self._lock:
            self._present = {(n, i) for n, i in self._present if i != image}

    def throttle_pulls(self, image: str, times: int) -> None:
        """The registry answers the next `times` pulls of `image` with 429 Too Many Requests
        (Docker Hub's and ACR's throttling), then serves it: a transient pull failure."""
        with self._lock:
            self.throttled[image] = times

    def take_throttle(self, image: str) -> bool:
        with self._lock:
            left = self.throttled.get(image, 0)
            if left > 0:
                self.throttled[image] = left - 1
            return left > 0

    def oom_event(self, node: str, pid: int, used: int) -> None:
        """What AKS's node-problem-detector reports on the Node after a cgroup OOM kill."""
        detail = f", anon-rss:{used // 1024}kB" if used else ""
        self.events.node_event(node, "OOMKilling", f"Memory cgroup out of memory: Killed "
                               f"process {pid}{detail}", "Warning", component="kernel-monitor")

    def note_once(self, key: str, message: str) -> None:
        """A fact about this machine worth one line on stderr (and the log)."""
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        log.warning(message, extra=self._extra)
        print(f"node agent: {message}", file=sys.stderr)
