"""Scheduler + kubelet loop: binds pending pods to fake nodes and runs each pod's container
command as a local subprocess in its own process group, with the pod's env, emulated
volumes, a termination-message file, log capture, memory-limit (OOM) enforcement,
restarts, graceful deletion and eviction.

All pod status is rendered here from a per-pod PodRuntime, so it stays self-consistent.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from .objects import condition, now_nano, now_ts, parse_quantity
from .scheduler import autoscale, pick_node, pod_requests

if TYPE_CHECKING:
    from .cluster import FakeCluster

TERMINAL = ("Succeeded", "Failed")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError)."""


class Instance:
    """One run of the container: its captured log lines and whether it has ended."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, bytes]] = []
        self.done = False
        self.cond = threading.Condition()

    def append(self, line: bytes) -> None:
        with self.cond:
            self.lines.append((now_nano(), line))
            self.cond.notify_all()

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()


class PodRuntime:
    """Scheduler/kubelet-side state of one pod."""

    def __init__(self, pod: dict) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        self.uid, self.ns, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.container: dict = spec["containers"][0]
        self.requests = pod_requests(pod)
        limit = (self.container.get("resources") or {}).get("limits", {}).get("memory")
        self.mem_limit = parse_quantity(limit) if limit else None
        self.node: str | None = spec.get("nodeName")
        self.stage = "bind" if self.node else "unscheduled"
        self.unsched_msg: str | None = None
        self.host_ip = self.pod_ip = self.start_time = None
        self.phase = "Pending"
        self.cstate: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.restarts = 0
        self.ready = self.started = False
        self.container_id: str | None = None
        self.image_id = ""
        self.disruption: dict | None = None
        self.reason = self.message = None
        self.next_at = 0.0
        self.proc: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.inst = Instance()
        self.prev: Instance | None = None
        self.kill_reason: str | None = None
        self.deleting = self.evicted = False
        self.term_deadline: float | None = None
        self.dir: Path | None = None
        self.mounts: list[tuple[str, str]] = []
        self.tmsg: Path | None = None
        self.conds: dict[str, tuple[str, str]] = {}
        self.started_at: str | None = None


class Kubelet:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster
        self.store = cluster.store
        self.rts: dict[str, PodRuntime] = {}
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self._ips = 10
        self._last_mem = 0.0

    # ---------------------------------------------------------------- loop
    def run(self) -> None:
        while not self.c.stopping:
            self.wake.wait(self.c.tick)
            self.wake.clear()
            try:
                self.tick()
            except Exception:  # keep the node alive; a broken tick shows in stderr
                traceback.print_exc()

    def tick(self) -> None:
        now = time.monotonic()
        self.c.grow_pools(now)
        pods, _ = self.store.list("pods")
        with self.lock:
            live = {p["metadata"]["uid"]: p for p in pods}
            for uid, pod in live.items():
                if uid not in self.rts:
                    self.rts[uid] = PodRuntime(pod)
            for uid in [u for u in self.rts if u not in live]:
                self._forget(self.rts.pop(uid))
            self._schedule(live)
            if now - self._last_mem >= self.c.memory_interval:
                self._last_mem = now
                self._check_memory()
            for uid, rt in list(self.rts.items()):
                self._step(rt, live[uid], now)

    # ---------------------------------------------------------------- scheduling
    def _schedule(self, live: dict[str, dict]) -> None:
        waiting = [rt for rt in self.rts.values() if rt.stage == "unscheduled" and not rt.deleting]
        if not waiting:
            return
        nodes, _ = self.store.list("nodes")
        used: dict[str, Counter] = {}
        for rt in self.rts.values():
            if rt.node and rt.phase not in TERMINAL:
                used.setdefault(rt.node, Counter()).update(rt.requests)
        for rt in sorted(waiting, key=lambda r: (live[r.uid]["metadata"]["creationTimestamp"],
                                                 r.name)):
            pod = live[rt.uid]
            node, msg = pick_node(pod, nodes, used)
            if node:
                used.setdefault(node, Counter()).update(rt.requests)
                rt.node, rt.stage, rt.unsched_msg = node, "bind", None
                self.c.events.record(pod, "Scheduled",
                                     f"Successfully assigned {rt.ns}/{rt.name} to {node}",
                                     component="default-scheduler")
                continue
            if msg == rt.unsched_msg:
                continue
            rt.unsched_msg = msg
            self._sync(rt)
            self.c.events.record(pod, "FailedScheduling", msg, "Warning", "default-scheduler")
            if self.c.autoscaler:
                pool, text = autoscale(pod, self.c.pools, self.c.pending_growth)
                if pool is not None:
                    self.c.request_growth(pool)
                    self.c.events.record(pod, "TriggeredScaleUp", text,
                                         component="cluster-autoscaler")
                else:
                    self.c.events.record(pod, "NotTriggerScaleUp", text,
                                         component="cluster-autoscaler")

    # ---------------------------------------------------------------- state machine
    def _step(self, rt: PodRuntime, pod: dict, now: float) -> None:
        if pod["metadata"].get("deletionTimestamp") and not rt.deleting:
            self._begin_delete(rt, pod, now)
            if rt.uid not in self.rts:
                return
        if rt.stage == "bind":
            self._ips += 1
            rt.host_ip = self._node_ip(rt.node)
            rt.pod_ip = f"10.244.{self._ips // 250}.{self._ips % 250 + 2}"
            rt.start_time = now_ts()
            rt.stage, rt.next_at = "creating", now + self.c.startup_delay
            self._sync(rt)
        elif rt.stage in ("creating", "pullbackoff") and now >= rt.next_at:
            self._pull_or_start(rt, pod, now)
        elif rt.stage == "restartwait" and now >= rt.next_at:
            rt.restarts += 1
            self._start(rt, pod, now)
        elif rt.stage == "running" and rt.proc is not None:
            if rt.proc.poll() is not None:
                self._finish(rt, pod)
            elif rt.term_deadline is not None and now >= rt.term_deadline:
                self._signal(rt, signal.SIGKILL)
                rt.term_deadline = None
        if rt.stage == "done" and rt.deleting:
            self._remove(rt)

    def _pull_or_start(self, rt: PodRuntime, pod: dict, now: float) -> None:
        image = rt.container["image"]
        field = f"spec.containers{{{rt.container['name']}}}"
        ev = self.c.events
        if self.c.image_fails(image):
            waiting = rt.cstate.get("waiting", {})
            if rt.stage == "creating":
                err = (f'failed to pull and unpack image "{image}": failed to resolve reference '
                       f'"{image}": {image}: not found')
                ev.record(pod, "Pulling", f'Pulling image "{image}"', host=rt.node,
                          field_path=field)
                ev.record(pod, "Failed", f'Failed to pull image "{image}": {err}', "Warning",
                          host=rt.node, field_path=field)
                ev.record(pod, "Failed", "Error: ErrImagePull", "Warning", host=rt.node,
                          field_path=field)
                rt.cstate = {"waiting": {"reason": "ErrImagePull", "message": err}}
            elif waiting.get("reason") == "ErrImagePull":
                msg = f'Back-off pulling image "{image}"'
                ev.record(pod, "BackOff", msg, host=rt.node, field_path=field)
                ev.record(pod, "Failed", "Error: ImagePullBackOff", "Warning", host=rt.node,
                          field_path=field)
                rt.cstate = {"waiting": {"reason": "ImagePullBackOff", "message": msg}}
            rt.stage, rt.next_at = "pullbackoff", now + self.c.image_backoff
            self._sync(rt)
            return
        if rt.stage == "creating" or rt.cstate.get("waiting", {}).get("reason") != \
                "CreateContainerConfigError":
            ev.record(pod, "Pulling", f'Pulling image "{image}"', host=rt.node, field_path=field)
            ev.record(pod, "Pulled", f'Successfully pulled image "{image}" in 12ms (12ms '
                      "including waiting). Image size: 0 bytes.", host=rt.node, field_path=field)
        rt.image_id = image_id(image)
        self._start(rt, pod, now)

    def _start(self, rt: PodRuntime, pod: dict, now: float) -> None:
        field = f"spec.containers{{{rt.container['name']}}}"
        try:
            argv, env, cwd = self._prepare(rt, pod)
        except ConfigError as exc:
            rt.cstate = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            rt.stage, rt.next_at = "pullbackoff", now + self.c.image_backoff
            self.c.events.record(pod, "Failed", f"Error: {exc}", "Warning", host=rt.node,
                                 field_path=field)
            self._sync(rt)
            return
        if rt.restarts:
            rt.prev, rt.inst = rt.inst, Instance()
        rt.container_id = "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex
        rt.started_at = now_ts()
        self.c.events.record(pod, "Created", f"Created container: {rt.container['name']}",
                             host=rt.node, field_path=field)
        try:
            rt.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        except OSError as exc:
            msg = ("failed to create containerd task: failed to create shim task: OCI runtime "
                   "create failed: runc create failed: unable to start container process: "
                   f'exec: "{argv[0] if argv else ""}": {exc.strerror or exc}: unknown')
            self.c.events.record(pod, "Failed", f"Error: {msg}", "Warning", host=rt.node,
                                 field_path=field)
            self._terminated(rt, pod, 128, "StartError", msg)
            return
        rt.reader = threading.Thread(target=self._read, args=(rt.proc, rt.inst), daemon=True,
                                     name=f"log-{rt.name}")
        rt.reader.start()
        rt.cstate = {"running": {"startedAt": rt.started_at}}
        rt.ready = rt.started = True
        rt.phase, rt.stage = "Running", "running"
        self.c.events.record(pod, "Started", f"Started container {rt.container['name']}",
                             host=rt.node, field_path=field)
        self._sync(rt)

    @staticmethod
    def _read(proc: subprocess.Popen, inst: Instance) -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            inst.append(line)
        proc.stdout.close()

    def _finish(self, rt: PodRuntime, pod: dict) -> None:
        assert rt.proc is not None
        code = rt.proc.returncode
        self._signal(rt, signal.SIGKILL)  # the container's other processes die with PID 1
        if rt.reader is not None:
            rt.reader.join(timeout=2)
        exit_code = code if code >= 0 else 128 - code
        reason = rt.kill_reason or ("Completed" if exit_code == 0 else "Error")
        message = self._termination_message(rt, exit_code)
        self._terminated(rt, pod, exit_code, reason, message)

    def _terminated(self, rt: PodRuntime, pod: dict, exit_code: int, reason: str,
                    message: str | None) -> None:
        term = {"exitCode": exit_code, "reason": reason, "startedAt": rt.started_at,
                "finishedAt": now_ts()}
        if rt.container_id:
            term["containerID"] = rt.container_id
        if message:
            term["message"] = message
        rt.proc, rt.kill_reason, rt.ready, rt.started = None, None, False, False
        rt.inst.finish()
        policy = pod["spec"].get("restartPolicy", "Always")
        again = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        if again and not rt.deleting and not rt.evicted:
            delay = min(self.c.restart_backoff * 2 ** rt.restarts, 300.0)
            rt.last_state = {"terminated": term}
            rt.cstate = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                f"back-off {delay:g}s restarting failed container={rt.container['name']} "
                f"pod={rt.name}_{rt.ns}({rt.uid})")}}
            rt.stage, rt.next_at = "restartwait", time.monotonic() + delay
            self.c.events.record(pod, "BackOff", "Back-off restarting failed container "
                                 f"{rt.container['name']} in pod {rt.name}_{rt.ns}({rt.uid})",
                                 "Warning", host=rt.node)
        else:
            rt.cstate = {"terminated": term}
            rt.stage = "done"
            rt.phase = "Succeeded" if exit_code == 0 and not rt.evicted else "Failed"
        self._sync(rt)

    def _termination_message(self, rt: PodRuntime, exit_code: int) -> str | None:
        text = ""
        if rt.tmsg is not None and rt.tmsg.exists():
            text = rt.tmsg.read_bytes()[:4096].decode("utf-8", "replace")
        if not text and exit_code != 0 and \
                rt.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            tail = b"".join(line for _, line in rt.inst.lines[-80:])[-2048:]
            text = tail.decode("utf-8", "replace")
        return text or None

    # ---------------------------------------------------------------- container config
    def _prepare(self, rt: PodRuntime, pod: dict) -> tuple[list[str], dict[str, str], str]:
        c, spec = rt.container, pod["spec"]
        if rt.dir is None:
            pod_dir = self.c.root / rt.ns / f"{rt.name}-{rt.uid[:8]}"
            pod_dir.mkdir(parents=True, exist_ok=True)
            rt.dir = pod_dir
            vols: dict[str, str] = {}
            for vol in spec.get("volumes") or []:
                if vol.get("hostPath"):
                    vols[vol["name"]] = vol["hostPath"]["path"]
                else:
                    path = rt.dir / "volumes" / vol["name"]
                    path.mkdir(parents=True, exist_ok=True)
                    vols[vol["name"]] = str(path)
            for m in c.get("volumeMounts") or []:
                host = os.path.join(vols[m["name"]], m.get("subPath", ""))
                os.makedirs(host, exist_ok=True)
                rt.mounts.append((m["mountPath"].rstrip("/") or "/", host.rstrip("/")))
            rt.mounts.sort(key=lambda mh: -len(mh[0]))
            rt.tmsg = rt.dir / "termination-log"
            rt.tmsg.touch()
        defined: dict[str, str] = {}

        def expand(text: str) -> str:
            return _VAR.sub(lambda m: "$" if m.group(0) == "$$"
                            else defined.get(m.group(1), m.group(0)), text)

        for e in c.get("env") or []:
            if "valueFrom" in e:
                value = self._env_source(rt, pod, e["valueFrom"])
                if value is None:
                    continue
            else:
                value = expand(e.get("value", ""))
            defined[e["name"]] = value
        for src in c.get("envFrom") or []:
            ref = src.get("secretRef") or src.get("configMapRef") or {}
            if not ref.get("optional"):
                what = "secret" if "secretRef" in src else "configmap"
                raise ConfigError(f'{what} "{ref.get("name")}" not found')
        if self.c.base_env is not None:
            env = dict(self.c.base_env)
        else:  # an image's environment, not the test process's
            env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                   "LANG": "C.UTF-8", "HOME": self._rootfs(rt, "/root"),
                   "TMPDIR": self._rootfs(rt, "/tmp")}
            env.update({k: os.environ[k] for k in self.c.passthrough_env if k in os.environ})
        env["HOSTNAME"] = spec.get("hostname") or rt.name
        env.update({k: self._map(rt, v) for k, v in defined.items()})
        argv = list(c.get("command") or self.c.image_commands.get(c["image"], []))
        argv += c.get("args") or []
        if not argv:
            raise ConfigError(f'no command specified and the fake kubelet knows no entrypoint '
                              f'for image "{c["image"]}" (FakeCluster(image_commands=...))')
        argv = [self._map(rt, expand(a)) for a in argv]
        exe = self.c.executables.get(argv[0], argv[0])
        argv[0] = exe if "/" in exe else (shutil.which(exe, path=env.get("PATH")) or exe)
        cwd = self._rootfs(rt, c.get("workingDir") or "/")
        return argv, env, cwd

    def _rootfs(self, rt: PodRuntime, path: str) -> str:
        """A container path as a host dir: its mount if mounted, else under the pod's rootfs."""
        mapped = self._map(rt, path)
        if mapped == path:
            assert rt.dir is not None
            mapped = str(rt.dir / "rootfs" / path.lstrip("/"))
        os.makedirs(mapped, exist_ok=True)
        return mapped

    def _map(self, rt: PodRuntime, value: str) -> str:
        """Container path → host path for emptyDir/hostPath mounts and the termination log."""
        if rt.tmsg is not None and value == rt.container.get("terminationMessagePath"):
            return str(rt.tmsg)
        for mount, host in rt.mounts:
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return host + value[len(mount.rstrip("/")):]
        return value

    def _env_source(self, rt: PodRuntime, pod: dict, src: dict) -> str | None:
        meta = pod["metadata"]
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            for prefix, data in (("metadata.labels['", meta.get("labels") or {}),
                                 ("metadata.annotations['", meta.get("annotations") or {})):
                if path.startswith(prefix):
                    return str(data.get(path[len(prefix):-2], ""))
            return str({
                "metadata.name": rt.name, "metadata.namespace": rt.ns, "metadata.uid": rt.uid,
                "spec.nodeName": rt.node, "status.podIP": rt.pod_ip, "status.podIPs": rt.pod_ip,
                "status.hostIP": rt.host_ip, "status.hostIPs": rt.host_ip,
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            }.get(path) or "")
        if "resourceFieldRef" in src:
            ref = src["resourceFieldRef"]
            kind, name = ref["resource"].split(".", 1)
            res = rt.container.get("resources") or {}
            value = (res.get(kind) or {}).get(name)
            if value is None and kind == "limits":
                node = self.store.get("nodes", "", rt.node or "")
                value = node["status"]["allocatable"].get(name, "0") if node else "0"
            divisor = parse_quantity(ref.get("divisor", "1")) or 1
            return str(math.ceil(parse_quantity(value or "0") / divisor))
        for key, what in (("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")):
            if key in src:
                if src[key].get("optional"):
                    return None
                raise ConfigError(f'{what} "{src[key].get("name")}" not found')
        raise ConfigError(f"unsupported env source {sorted(src)}")

    # ---------------------------------------------------------------- memory, signals, deletion
    def _check_memory(self) -> None:
        limited = {rt.proc.pid: rt for rt in self.rts.values()
                   if rt.proc is not None and rt.mem_limit and rt.kill_reason is None}
        if not limited:
            return
        rss: Counter = Counter()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                pgrp = int(stat.rsplit(")", 1)[1].split()[2])
                if pgrp not in limited:
                    continue
                for line in Path(entry.path, "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss[pgrp] += int(line.split()[1]) * 1024
            except (OSError, ValueError, IndexError):
                continue
        for pgid, used in rss.items():
            rt = limited[pgid]
            if used > (rt.mem_limit or 0) and rt.proc is not None:
                rt.kill_reason = "OOMKilled"
                program = Path(str(rt.proc.args[0])).name
                self._signal(rt, signal.SIGKILL)
                node = self.store.get("nodes", "", rt.node or "")
                if node is not None:
                    self.c.events.record(
                        node, "OOMKilling", f"Memory cgroup out of memory: Killed process "
                        f"{pgid} ({program}) "
                        f"anon-rss:{used // 1024}kB", "Warning", "kernel-monitor", rt.node)

    @staticmethod
    def _signal(rt: PodRuntime, sig: int) -> None:
        if rt.proc is None:
            return
        try:
            os.killpg(rt.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _begin_delete(self, rt: PodRuntime, pod: dict, now: float) -> None:
        rt.deleting = True
        if rt.stage == "running":
            grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
            grace = min(float(grace), self.c.max_grace_seconds)
            cname = rt.container["name"]
            self.c.events.record(pod, "Killing", f"Stopping container {cname}", host=rt.node,
                                 field_path=f"spec.containers{{{cname}}}")
            self._signal(rt, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            rt.term_deadline = now + grace
        elif rt.stage != "done":
            rt.stage = "done"
            self._remove(rt)

    def _remove(self, rt: PodRuntime) -> None:
        self.store.delete("pods", rt.ns, rt.name)
        self._forget(self.rts.pop(rt.uid, rt))

    def _forget(self, rt: PodRuntime) -> None:
        """The pod object is gone: kill whatever still runs (force deletion)."""
        self._signal(rt, signal.SIGKILL)
        if rt.proc is not None:
            try:
                rt.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        rt.inst.finish()
        rt.proc = None

    # ---------------------------------------------------------------- fault injection
    def find(self, name: str, namespace: str | None) -> PodRuntime:
        with self.lock:
            for rt in self.rts.values():
                if rt.name == name and namespace in (None, rt.ns):
                    return rt
        raise KeyError(f"no pod {name!r} known to the fake kubelet")

    def kill(self, name: str, sig: int, namespace: str | None) -> None:
        with self.lock:
            rt = self.find(name, namespace)
            if rt.proc is None:
                raise RuntimeError(f"pod {name} has no running container")
            self._signal(rt, sig)
        self.wake.set()

    def mark_disrupted(self, name: str, namespace: str | None, reason: str,
                       message: str) -> PodRuntime:
        """Add the DisruptionTarget condition; the pod will not be restarted."""
        with self.lock:
            rt = self.find(name, namespace)
            rt.evicted = True
            rt.disruption = condition("DisruptionTarget", "True", reason, message)
            self._sync(rt)
            return rt

    def evict(self, name: str, namespace: str | None, reason: str, message: str) -> None:
        """Kubelet-initiated eviction: kill now, phase Failed, status.reason Evicted."""
        with self.lock:
            rt = self.mark_disrupted(name, namespace, reason, message)
            rt.reason, rt.message = "Evicted", message
            pod = self.store.get("pods", rt.ns, rt.name)
            if pod is None:
                return
            self.c.events.record(pod, "Evicted", message, "Warning", host=rt.node)
            if rt.proc is not None:
                self.c.events.record(pod, "Killing", f"Stopping container "
                                     f"{rt.container['name']}", host=rt.node)
                self._signal(rt, signal.SIGKILL)
            elif rt.stage != "done":
                rt.stage, rt.phase = "done", "Failed"
                if rt.node:
                    rt.cstate = {"terminated": {
                        "exitCode": 137, "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was "
                        "terminated", "startedAt": None, "finishedAt": now_ts()}}
            self._sync(rt)
        self.wake.set()

    def instance(self, uid: str, previous: bool) -> Instance | None:
        with self.lock:
            rt = self.rts.get(uid)
            if rt is None:
                return None
            return rt.prev if previous else rt.inst

    def pid(self, name: str, namespace: str | None) -> int | None:
        rt = self.find(name, namespace)
        return rt.proc.pid if rt.proc is not None else None

    def shutdown(self) -> None:
        with self.lock:
            for rt in self.rts.values():
                self._forget(rt)

    # ---------------------------------------------------------------- rendering
    def _node_ip(self, node: str | None) -> str:
        obj = self.store.get("nodes", "", node or "")
        return obj["status"]["addresses"][0]["address"] if obj else "10.224.0.4"

    def _cond(self, rt: PodRuntime, ctype: str, status: str, reason: str | None = None,
              message: str | None = None) -> dict:
        old = rt.conds.get(ctype)
        when = old[1] if old and old[0] == status else now_ts()
        rt.conds[ctype] = (status, when)
        return condition(ctype, status, reason, message, when)

    def _sync(self, rt: PodRuntime) -> None:
        self.store.update("pods", rt.ns, rt.name, lambda pod: self._render(rt, pod))

    def _render(self, rt: PodRuntime, pod: dict) -> None:
        status: dict = {"phase": rt.phase}
        conds = []
        cname = rt.container["name"]
        if rt.node and rt.stage != "bind":
            pod["spec"]["nodeName"] = rt.node
            done = rt.phase in TERMINAL
            conds.append(self._cond(rt, "PodReadyToStartContainers", "False" if done else "True"))
            conds.append(self._cond(rt, "Initialized", "True"))
            for ctype in ("Ready", "ContainersReady"):
                if done:
                    conds.append(self._cond(rt, ctype, "False", "PodCompleted"))
                elif rt.ready:
                    conds.append(self._cond(rt, ctype, "True"))
                else:
                    conds.append(self._cond(rt, ctype, "False", "ContainersNotReady",
                                            f"containers with unready status: [{cname}]"))
        if rt.node:
            conds.append(self._cond(rt, "PodScheduled", "True"))
        else:
            conds.append(self._cond(rt, "PodScheduled", "False", "Unschedulable", rt.unsched_msg))
        if rt.disruption:
            conds.append(rt.disruption)
        status["conditions"] = conds
        if rt.reason:
            status["reason"], status["message"] = rt.reason, rt.message
        if rt.node and rt.stage != "bind":
            status.update(hostIP=rt.host_ip, hostIPs=[{"ip": rt.host_ip}], podIP=rt.pod_ip,
                          podIPs=[{"ip": rt.pod_ip}], startTime=rt.start_time)
            cs = {"name": cname, "image": rt.container["image"], "imageID": rt.image_id,
                  "ready": rt.ready, "restartCount": rt.restarts, "started": rt.started,
                  "state": rt.cstate, "lastState": rt.last_state}
            if rt.container_id:
                cs["containerID"] = rt.container_id
            status["containerStatuses"] = [cs]
        status["qosClass"] = qos_class(pod)
        pod["status"] = status


def image_id(image: str) -> str:
    """containerd's imageID: fully qualified repository @ digest."""
    repo = image.split("@")[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    first = repo.split("/")[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in first and ":" not in first and first != "localhost":
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def qos_class(pod: dict) -> str:
    containers = pod["spec"].get("containers", [])
    res = [c.get("resources") or {} for c in containers]
    if not any((r.get(k) or {}).get(n) for r in res for k in ("requests", "limits")
               for n in ("cpu", "memory")):
        return "BestEffort"
    for r in res:
        lim, req = r.get("limits") or {}, r.get("requests") or {}
        for n in ("cpu", "memory"):
            if n not in lim or parse_quantity(req.get(n, lim[n])) != parse_quantity(lim[n]):
                return "Burstable"
    return "Guaranteed"
