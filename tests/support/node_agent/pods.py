"""One pod on one node, from admission to deletion: the kubelet's pod worker in miniature.

The worker is a short-lived thread per pod that runs `sync()` whenever something happens
(a watch event, a container exit, a timer) and ends when nothing is pending; the pod's state
lives on in its PodRuntime. sync() follows the kubelet's order: admit (startTime, first status),
mount volumes, create the sandbox (pod IP, /etc/hosts), then per container: pull the image, build
its config, create and start it, restart it per restartPolicy with back-off; on deletion or
activeDeadlineSeconds: SIGTERM, grace, SIGKILL, terminal status, then (deletion) the final
delete with grace 0 and a uid precondition.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import images
from .containers import ContainerProcess, StartError
from .envvars import ConfigError
from .image_store import Image, PullError
from .kube import ApiError
from .launch import ContainerConfig, container_config, pod_key, wrapper_spec
from .logs import ContainerLog, last_log_text, parse_rfc3339
from .quantity import quantity_bytes
from .status import (
    ConditionClock,
    conditions,
    container_status,
    pod_phase,
    rfc3339,
    status_patch,
    termination_message,
)
from .volumes import VolumeError, VolumeSetup

if TYPE_CHECKING:
    from .agent import NodeAgent

log = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed")
MIN_GRACE = 2.0  # the kubelet's minimumGracePeriodInSeconds
MAX_BACKOFF = 300.0
STATUS_UNKNOWN = {"exitCode": 137, "reason": "ContainerStatusUnknown",
                  "message": "The container could not be located when the pod was terminated"}


class LogUnavailable(Exception):
    """No log to serve: `status` and `message` are what the kubelet answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ContainerRecord:
    """The kubelet's view of one container of the pod (across restarts)."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.image: str = spec.get("image", "")
        self.state: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.restart_count = 0
        self.instances = 0
        self.container_id: str | None = None
        self.image_id = ""
        self.pulled: Image | None = None  # the image as pulled (registry mode)
        self.ready = self.started = False
        self.proc: ContainerProcess | None = None
        self.tmsg: Path | None = None
        self.logs: list[tuple[str, ContainerLog]] = []  # (containerID, log) per instance
        self.next_try = 0.0
        self.pull_backoff = 0.0
        self.show_backoff_at: float | None = None
        self.pull_error = ""
        self.failures = 0
        self.exit_handled = True
        self.rss_oom = False
        self.run_started = 0.0

    @property
    def running(self) -> bool:
        return self.proc is not None and not self.proc.exited.is_set()


class PodRuntime:
    """Everything the agent knows about one pod (by uid)."""

    def __init__(self, agent: NodeAgent, pod: dict) -> None:
        meta = pod["metadata"]
        self.agent = agent
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.node: str = pod["spec"]["nodeName"]
        self.pod = pod
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.worker: threading.Thread | None = None
        self.gone = False
        self.dir = agent.root / "pods" / self.uid
        self.containers = [ContainerRecord(c) for c in pod["spec"].get("containers") or []]
        self.clock = ConditionClock()
        self.admitted = False
        self.start_time: str | None = None
        self.started_mono = 0.0
        self.volumes_ready = False
        self.volume_setup: VolumeSetup | None = None
        self.sandbox_ready = False
        self.pod_ip = ""
        self.terminal = False
        self.delete_sent = False
        self.kill_deadline: float | None = None
        self.sigkilled = False
        self.stop_reason: str | None = None  # "deletion" | "deadline"
        self.pod_reason: str | None = None
        self.pod_message: str | None = None
        self.last_patch: dict | None = None
        self.write_failed = False
        self.owned_keys: set[str] = set()
        self.unsupported = ""
        if pod["spec"].get("initContainers"):
            self.unsupported = ("init containers are not supported by this node agent "
                                "(pods with them stay Pending)")
        status = pod.get("status") or {}
        if status.get("phase") in TERMINAL:  # finished before this agent (re)started
            self.terminal = True
            self.admitted = True
        elif status.get("startTime"):
            self._adopt(pod)

    def _adopt(self, pod: dict) -> None:
        """The pod was admitted by this node's kubelet before (the agent restarted): its
        processes are gone, as after a node reboot. A container that was running is reported
        the kubelet's way (ContainerStatusUnknown, 137) and restarted per restartPolicy."""
        status = pod["status"]
        self.admitted = True
        self.start_time = status["startTime"]
        try:
            age = time.time() - parse_rfc3339(self.start_time) / 1e9
        except ValueError:
            age = 0.0
        self.started_mono = time.monotonic() - max(0.0, age)
        by_name = {cs.get("name"): cs for cs in status.get("containerStatuses") or []}
        policy = pod["spec"].get("restartPolicy", "Always")
        for c in self.containers:
            cs = by_name.get(c.name) or {}
            state = cs.get("state") or {}
            c.restart_count = int(cs.get("restartCount") or 0)
            c.image_id = cs.get("imageID", "")
            c.container_id = cs.get("containerID")
            c.last_state = cs.get("lastState") or {}
            if "running" not in state and "terminated" not in state:
                continue
            c.instances = c.restart_count + 1
            term = state.get("terminated") or {
                "exitCode": 137, "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was deleted.  "
                           "The container used to be Running",
                "startedAt": state["running"].get("startedAt"), "finishedAt": rfc3339(),
                "containerID": c.container_id}
            c.state = {"terminated": term}
            if policy == "Always" or (policy == "OnFailure" and term.get("exitCode") != 0):
                c.next_try = 0.0

    # ------------------------------------------------------------------ worker plumbing
    def update(self, pod: dict | None) -> None:
        """A watch event: the latest object, or None when it was deleted."""
        with self.lock:
            if pod is None:
                self.gone = True
            elif pod["metadata"]["uid"] == self.uid:
                self.pod = pod
        self.poke()

    def poke(self) -> None:
        """Run sync() soon (starts a worker thread if none is running)."""
        with self.lock:
            self.wake.set()
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(target=self._work, daemon=True,
                                               name=f"{self.agent.tag} pod "
                                                    f"{self.namespace}/{self.name}")
                self.worker.start()

    def _work(self) -> None:
        next_at: float | None = 0.0
        while not self.agent.stopping:
            timeout = None if next_at is None else max(0.0, next_at - time.monotonic())
            if timeout is None:
                with self.lock:  # idle: end the thread unless something arrived meanwhile
                    if not self.wake.is_set():
                        self.worker = None
                        return
            self.wake.wait(timeout)
            self.wake.clear()
            try:
                next_at = self.sync()
            except Exception:
                log.exception("sync of pod %s/%s failed", self.namespace, self.name)
                next_at = time.monotonic() + 1.0
            if self.gone and next_at is None and not any(c.running for c in self.containers):
                with self.lock:
                    if not self.wake.is_set():
                        self.worker = None
                        return

    # ------------------------------------------------------------------ the sync loop
    def sync(self) -> float | None:
        """One pass of the pod worker; returns when to run again (None: on events only)."""
        with self.lock:
            pod, gone = self.pod, self.gone
        if gone:
            self._teardown()
            return None
        now = time.monotonic()
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        for c in self.containers:
            if c.proc is not None and c.proc.exited.is_set() and not c.exit_handled:
                self._on_exit(c, pod, stopping=deleting or self.stop_reason is not None)
        if self.terminal:
            if self.write_failed and not self._write_status(pod):
                return now + 1.0
            if deleting and not self.delete_sent and not self._delete(pod):
                return now + 1.0
            return None
        if deleting and self.stop_reason is None:
            self.stop_reason = "deletion"
        if self.stop_reason is None and self._deadline_passed(pod, now):
            self.stop_reason = "deadline"
            self.pod_reason = "DeadlineExceeded"
            self.pod_message = "Pod was active on the node longer than the specified deadline"
            self.agent.events.pod_event(pod, self.node, "DeadlineExceeded", self.pod_message,
                                        "Warning")
        if self.stop_reason is not None:
            return self._terminate(pod, now)
        if not self.admitted:
            self._admit(pod)
        if self.unsupported:
            self.agent.note_once("unsupported:" + self.unsupported, self.unsupported)
            for c in self.containers:
                c.state = {"waiting": {"reason": "CreateContainerConfigError",
                                       "message": self.unsupported}}
            self._write_status(pod)
            return None
        timers: list[float] = []
        if not self.volumes_ready and not self._setup_volumes(pod):
            self._write_status(pod)
            return now + max(2.0, self.agent.backoff_base * 2)
        if not self.sandbox_ready:
            self._create_sandbox(pod)
        for c in self.containers:
            if c.running or not self._wants_start(c, pod):
                continue
            if c.show_backoff_at is not None and now >= c.show_backoff_at:
                self._show_pull_backoff(c, pod)
            if now < c.next_try:
                timers.append(c.next_try)
                if c.show_backoff_at is not None:
                    timers.append(c.show_backoff_at)
                continue
            self._start(c, pod, now)
            if not c.running and c.next_try > now:
                timers.append(c.next_try)
                if c.show_backoff_at is not None:
                    timers.append(c.show_backoff_at)
        phase = self._phase(pod, False)
        if phase in TERMINAL:
            self.terminal = True
            self.sandbox_ready = False
        ok = self._write_status(pod)
        if self.terminal:
            self._release_volumes()
            return None if ok else now + 1.0
        if not ok:
            timers.append(now + 1.0)
        ads = pod["spec"].get("activeDeadlineSeconds")
        if ads is not None:
            timers.append(self.started_mono + float(ads))
        return min(timers) if timers else None

    def _deadline_passed(self, pod: dict, now: float) -> bool:
        ads = pod["spec"].get("activeDeadlineSeconds")
        return ads is not None and self.admitted and now >= self.started_mono + float(ads)

    def _wants_start(self, c: ContainerRecord, pod: dict) -> bool:
        if c.instances == 0:
            return True
        term = c.state.get("terminated") or c.last_state.get("terminated")
        if "waiting" in c.state and c.state["waiting"].get("reason") in (
                "CrashLoopBackOff", "CreateContainerConfigError", "ErrImagePull",
                "ImagePullBackOff", "ErrImageNeverPull"):
            return True
        policy = pod["spec"].get("restartPolicy", "Always")
        if term is None:
            return False
        return policy == "Always" or (policy == "OnFailure" and term.get("exitCode") != 0)

    # ------------------------------------------------------------------ stages
    def _admit(self, pod: dict) -> None:
        self.admitted = True
        self.start_time = rfc3339()
        self.started_mono = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_status(pod)

    def _setup_volumes(self, pod: dict) -> bool:
        if self.volume_setup is None:
            self.volume_setup = VolumeSetup(
                pod, self.dir, self.agent.get_object, self.agent.request_token,
                self.agent.host_ip, self.agent.host_ip, self.agent.allocatable(self.node))
        try:
            self.volume_setup.setup_all()
        except VolumeError as exc:
            self.agent.events.pod_event(pod, self.node, "FailedMount", str(exc), "Warning")
            return False
        self.volumes_ready = True
        return True

    def _release_volumes(self) -> None:
        if self.volume_setup is not None:
            self.volume_setup.teardown()

    def _create_sandbox(self, pod: dict) -> None:
        """The pod's "sandbox": its IP (the node's: containers share the host network) and
        the kubelet-managed /etc/hosts and /etc/hostname."""
        self.pod_ip = self.agent.host_ip
        spec = pod["spec"]
        hostname = (spec.get("hostname") or self.name)[:63]
        fqdn = hostname
        if spec.get("subdomain"):
            fqdn = f"{hostname}.{spec['subdomain']}.{self.namespace}.svc.cluster.local"
        names = f"{fqdn}\t{hostname}" if fqdn != hostname else hostname
        (self.dir / "etc-hosts").write_text(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
            f"{self.pod_ip}\t{names}\n")
        (self.dir / "etc-hostname").write_text(hostname + "\n")
        os.chmod(self.dir / "etc-hosts", 0o644)
        os.chmod(self.dir / "etc-hostname", 0o644)
        self.sandbox_ready = True

    def _pull(self, c: ContainerRecord, pod: dict, now: float) -> bool:
        """EnsureImageExists: True when the image is there; else the waiting state + timers."""
        if self.agent.image_store is not None:
            return self._pull_from_registry(c, pod, now)
        image = c.image
        policy = c.spec.get("imagePullPolicy", "IfNotPresent")
        missing = self.agent.missing_images(image)
        ev = self.agent.events
        if policy == "Never":
            if missing:
                msg = f'Container image "{image}" is not present with pull policy of Never'
                ev.pod_event(pod, self.node, "ErrImageNeverPull", msg, "Warning", c.name)
                c.state = {"waiting": {"reason": "ErrImageNeverPull", "message": msg}}
                c.next_try = now + max(2.0, self.agent.backoff_base * 2)
                return False
            ev.pod_event(pod, self.node, "Pulled", f'Container image "{image}" already present '
                         "on machine and can be accessed by the pod", container=c.name)
            return True
        if not missing and policy != "Always" and self.agent.image_present(self.node, image):
            ev.pod_event(pod, self.node, "Pulled", f'Container image "{image}" already present '
                         "on machine and can be accessed by the pod", container=c.name)
            return True
        ev.pod_event(pod, self.node, "Pulling", f'Pulling image "{image}"', container=c.name)
        if missing:
            self._pull_failed(c, pod, now, images.pull_error(image))
            return False
        ev.pod_event(pod, self.node, "Pulled", f'Successfully pulled image "{image}" in 41ms '
                     f"(41ms including waiting). Image size: {images.image_size(image)} bytes.",
                     container=c.name)
        self.agent.mark_present(self.node, image)
        c.pull_backoff = 0.0
        return True

    def _pull_from_registry(self, c: ContainerRecord, pod: dict, now: float) -> bool:
        """The kubelet's image manager over a real pull: once per node and reference (unless
        imagePullPolicy Always), from the registry, with the kubelet's events."""
        store = self.agent.image_store
        assert store is not None
        image = c.image
        policy = c.spec.get("imagePullPolicy", "IfNotPresent")
        ev = self.agent.events
        present = store.known(image) if self.agent.image_present(self.node, image) else None
        if present is not None and policy != "Always":
            ev.pod_event(pod, self.node, "Pulled", f'Container image "{image}" already present '
                         "on machine and can be accessed by the pod", container=c.name)
            c.pulled = present
            return True
        if policy == "Never":
            msg = f'Container image "{image}" is not present with pull policy of Never'
            ev.pod_event(pod, self.node, "ErrImageNeverPull", msg, "Warning", c.name)
            c.state = {"waiting": {"reason": "ErrImageNeverPull", "message": msg}}
            c.next_try = now + max(2.0, self.agent.backoff_base * 2)
            return False
        ev.pod_event(pod, self.node, "Pulling", f'Pulling image "{image}"', container=c.name)
        if self.agent.take_throttle(image):
            self._pull_failed(c, pod, now, images.throttled_error(image))
            return False
        started = time.monotonic()
        try:
            pulled = store.pull(image)
        except PullError as exc:
            self._pull_failed(c, pod, now, str(exc))
            return False
        took = images.go_duration(time.monotonic() - started)
        ev.pod_event(pod, self.node, "Pulled", f'Successfully pulled image "{image}" in {took} '
                     f"({took} including waiting). Image size: {pulled.size} bytes.",
                     container=c.name)
        self.agent.mark_present(self.node, image)
        c.pulled = pulled
        c.pull_backoff = 0.0
        return True

    def _pull_failed(self, c: ContainerRecord, pod: dict, now: float, err: str) -> None:
        """ErrImagePull now, ImagePullBackOff half-way to the next try (doubling)."""
        ev = self.agent.events
        ev.pod_event(pod, self.node, "Failed", f'Failed to pull image "{c.image}": {err}',
                     "Warning", c.name)
        ev.pod_event(pod, self.node, "Failed", "Error: ErrImagePull", "Warning", c.name)
        c.pull_error = err
        c.state = {"waiting": {"reason": "ErrImagePull", "message": err}}
        c.pull_backoff = min(MAX_BACKOFF, c.pull_backoff * 2) if c.pull_backoff else \
            self.agent.backoff_base
        c.next_try = now + c.pull_backoff
        c.show_backoff_at = now + c.pull_backoff / 2

    def _show_pull_backoff(self, c: ContainerRecord, pod: dict) -> None:
        c.show_backoff_at = None
        msg = f'Back-off pulling image "{c.image}"'
        self.agent.events.pod_event(pod, self.node, "BackOff", msg, container=c.name)
        self.agent.events.pod_event(pod, self.node, "Failed", "Error: ImagePullBackOff",
                                    "Warning", c.name)
        c.state = {"waiting": {"reason": "ImagePullBackOff",
                               "message": f"{msg}: ErrImagePull: {c.pull_error}"}}

    def _start(self, c: ContainerRecord, pod: dict, now: float) -> None:
        if not self._pull(c, pod, now):
            return
        c.show_backoff_at = None
        c.image_id = c.pulled.image_id if c.pulled else images.image_id(c.image)
        try:
            cfg = container_config(self.agent, pod, c.spec, self.node, self.pod_ip,
                                   self.volume_setup.volumes if self.volume_setup else {},
                                   c.pulled)
        except ConfigError as exc:
            self.agent.events.pod_event(pod, self.node, "Failed", f"Error: {exc}", "Warning",
                                        c.name)
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.next_try = now + max(2.0, self.agent.backoff_base * 2)
            return
        self._spawn(c, pod, cfg)

    # ------------------------------------------------------------------ create + start
    def _spawn(self, c: ContainerRecord, pod: dict, cfg: ContainerConfig) -> None:
        agent = self.agent
        index = c.instances
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        cdir = self.dir / "containers" / c.name / str(index)
        shutil.rmtree(cdir, ignore_errors=True)
        for sub in ("upper", "work", "rootfs"):
            (cdir / sub).mkdir(parents=True)
        tmsg = cdir / "termination-log"
        tmsg.touch()
        os.chmod(tmsg, 0o666)  # the kubelet's mode: writable whoever the container runs as
        c.tmsg = tmsg
        spec = wrapper_spec(agent, pod, c.spec, cfg, self.dir, cdir, tmsg)
        limit = ((c.spec.get("resources") or {}).get("limits") or {}).get("memory")
        limit_bytes = quantity_bytes(limit) if limit else None
        cgroup = agent.cgroups.create(f"pod{self.uid}-{cid[:12]}", limit_bytes)
        spec["cgroup_procs"] = [cgroup.procs_file] if cgroup else []
        read_fd, write_fd = os.pipe()
        spec["error_fd"] = write_fd
        spec_path = cdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        log_file = ContainerLog(self.dir / "logs" / c.name / f"{index}.log")
        if "terminated" in c.state:  # the instance before this one
            c.last_state = {"terminated": c.state["terminated"]}
        c.instances += 1
        c.restart_count = index  # the kubelet counts the instances before this one
        c.container_id = f"containerd://{cid}"
        c.logs.append((c.container_id, log_file))
        c.rss_oom = False
        proc = ContainerProcess(agent.sandbox.wrapper_argv(spec_path), spec_path, log_file,
                                cgroup, self.poke)
        c.proc = proc
        c.exit_handled = False
        agent.events.pod_event(pod, self.node, "Created", "Container created", container=c.name)
        try:
            proc.start(write_fd, read_fd)
        except (StartError, OSError) as exc:
            message = str(exc)
            agent.events.pod_event(pod, self.node, "Failed", f"Error: {message}", "Warning",
                                   c.name)
            c.exit_handled = True
            self._record_exit(c, pod, {
                "exitCode": 128, "reason": "StartError", "message": message,
                "startedAt": "1970-01-01T00:00:00Z",
                "finishedAt": rfc3339(proc.finished_ns or None),
                "containerID": c.container_id}, stopping=False)
            return
        c.run_started = time.monotonic()
        if cgroup is None and limit_bytes and proc.pid:
            agent.rss.watch(proc.pid, limit_bytes, lambda used, c=c: self._rss_killed(c, used))
        agent.events.pod_event(pod, self.node, "Started", "Container started", container=c.name)
        c.state = {"running": {"startedAt": rfc3339(proc.started_ns)}}
        c.ready = c.started = True
        log.info("pod %s/%s container %s started: pid %s", self.namespace, self.name, c.name,
                 proc.pid)

    def _rss_killed(self, c: ContainerRecord, used: int) -> None:
        c.rss_oom = True
        self.agent.oom_event(self.node, c.proc.pid if c.proc and c.proc.proc else 0, used)

    # ------------------------------------------------------------------ exits
    def _on_exit(self, c: ContainerRecord, pod: dict, stopping: bool) -> None:
        proc = c.proc
        assert proc is not None
        c.exit_handled = True
        if proc.proc is not None:
            self.agent.rss.unwatch(proc.proc.pid)
        code = proc.exit_code if proc.exit_code is not None else 137
        oom = proc.oom_killed or c.rss_oom
        if proc.oom_killed and proc.proc is not None:
            self.agent.oom_event(self.node, proc.proc.pid, 0)
        reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        log_file = c.logs[-1][1] if c.logs else None
        message = termination_message(
            str(c.tmsg) if c.tmsg else None,
            c.spec.get("terminationMessagePolicy", "File"), code,
            lambda: last_log_text(log_file) if log_file else "")
        term: dict[str, Any] = {"exitCode": code, "reason": reason,
                                "startedAt": rfc3339(proc.started_ns),
                                "finishedAt": rfc3339(proc.finished_ns),
                                "containerID": c.container_id}
        if message:
            term["message"] = message
        log.info("pod %s/%s container %s exited %s (%s)", self.namespace, self.name, c.name,
                 code, reason)
        if time.monotonic() - c.run_started > 2 * MAX_BACKOFF:
            c.failures = 0
        self._record_exit(c, pod, term, stopping)

    def _record_exit(self, c: ContainerRecord, pod: dict, term: dict, stopping: bool) -> None:
        """The container's terminated state, and the restart decision (with back-off)."""
        c.ready = c.started = False
        c.state = {"terminated": term}
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and term["exitCode"] != 0)
        if not restart or stopping:
            return
        c.failures += 1
        if c.failures == 1:  # the first restart is immediate; then 1x, 2x, 4x ... base
            c.next_try = time.monotonic()  # lastState becomes this when the next one starts
            return
        c.last_state = {"terminated": term}
        delay = min(MAX_BACKOFF, self.agent.backoff_base * 2 ** (c.failures - 2))
        c.next_try = time.monotonic() + delay
        c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off {delay:g}s restarting failed container={c.name} pod={pod_key(pod)}")}}
        self.agent.events.pod_event(pod, self.node, "BackOff", "Back-off restarting failed "
                                    f"container {c.name} in pod {pod_key(pod)}", "Warning",
                                    c.name)

    # ------------------------------------------------------------------ termination
    def _grace(self, pod: dict) -> float:
        meta, spec = pod["metadata"], pod["spec"]
        if self.stop_reason == "deletion" and meta.get("deletionGracePeriodSeconds") is not None:
            grace = float(meta["deletionGracePeriodSeconds"])
        else:
            grace = float(spec.get("terminationGracePeriodSeconds", 30))
        return min(max(grace, MIN_GRACE), self.agent.max_grace_seconds)

    def _terminate(self, pod: dict, now: float) -> float | None:
        running = [c for c in self.containers if c.running]
        if running:
            if self.kill_deadline is None:
                self.kill_deadline = now + self._grace(pod)
                for c in running:
                    self.agent.events.pod_event(pod, self.node, "Killing",
                                                f"Stopping container {c.name}", container=c.name)
                    assert c.proc is not None
                    c.proc.signal(signal.SIGTERM)
                self._write_status(pod)
                return self.kill_deadline
            if now >= self.kill_deadline:
                if not self.sigkilled:
                    self.sigkilled = True
                    for c in running:
                        assert c.proc is not None
                        c.proc.signal(signal.SIGKILL, group=True)
                return now + 5.0
            return self.kill_deadline
        for c in self.containers:  # the status manager's TerminatePod
            c.ready = c.started = False
            if "terminated" not in c.state and "terminated" in c.last_state:
                # waiting to restart: no restart now, the last instance's end is the state
                c.state, c.last_state = {"terminated": c.last_state["terminated"]}, {}
            if "terminated" not in c.state:
                term = dict(STATUS_UNKNOWN)
                if c.container_id and c.instances:
                    term["containerID"] = c.container_id
                c.state = {"terminated": term}
        self.terminal = True
        self.sandbox_ready = False
        ok = self._write_status(pod)
        self._release_volumes()
        if not ok:
            return now + 1.0
        if pod["metadata"].get("deletionTimestamp") and not self._delete(pod):
            return now + 1.0
        return None

    def _delete(self, pod: dict) -> bool:
        """The kubelet's final word: delete with grace 0, only this uid (False: retry)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        try:
            self.agent.kube.delete(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                                   body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("final delete of %s/%s failed: %s", self.namespace, self.name, exc)
                return False
        self.delete_sent = True
        return True

    def _teardown(self) -> None:
        """The pod object is gone: nothing of it may keep running (force deletion)."""
        for c in self.containers:
            if c.proc is not None:
                c.proc.force_kill()
        self._release_volumes()
        self.agent.forget(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ status
    def _phase(self, pod: dict, terminal: bool) -> str:
        policy = pod["spec"].get("restartPolicy", "Always")
        return pod_phase(policy, [(c.state, c.last_state) for c in self.containers], terminal)

    def _render(self, pod: dict) -> dict:
        phase = self._phase(pod, self.terminal and self.stop_reason is not None)
        if self.terminal and self.pod_reason == "DeadlineExceeded":
            phase = "Failed"  # the kubelet fails the pod whatever its containers exited with
        status: dict[str, Any] = {"phase": phase, "hostIP": self.agent.host_ip,
                                  "hostIPs": [{"ip": self.agent.host_ip}],
                                  "startTime": self.start_time}
        if self.pod_ip and (self.sandbox_ready or self.terminal):
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.pod_reason:
            status["reason"] = self.pod_reason
            status["message"] = self.pod_message
        generation = pod["metadata"].get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        status["containerStatuses"] = [container_status(
            c.spec, images.normalize(c.image), c.image_id, c.container_id, c.state,
            c.last_state, c.ready, c.started, c.restart_count, c.instances > 0)
            for c in self.containers]
        return status

    def _write_status(self, pod: dict) -> bool:
        """PATCH pods/status if the kubelet's view changed; False if it must be retried."""
        status = self._render(pod)
        conds = self.clock.stamp(
            conditions(status["phase"], [c.name for c in self.containers],
                       {c.name: c.ready for c in self.containers}, self.sandbox_ready),
            pod["metadata"].get("generation"))
        server_conds = (pod.get("status") or {}).get("conditions") or []
        body = status_patch(self.uid, status, conds, server_conds, self.owned_keys)
        if body == self.last_patch:
            return True
        self.write_failed = True
        try:
            updated = self.agent.kube.patch(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", body)
        except ApiError as exc:
            if exc.status == 404 or (exc.status in (409, 422) and "uid" in exc.message.lower()):
                log.info("status of %s/%s not written (pod gone): %s", self.namespace,
                         self.name, exc)
                self.write_failed = False
                return True
            if exc.status == 422:  # retrying the same status cannot help
                log.warning("status of %s/%s refused: %s", self.namespace, self.name, exc)
                self.write_failed = False
                return True
            log.warning("status of %s/%s not written: %s", self.namespace, self.name, exc)
            return False
        except Exception as exc:
            log.warning("status of %s/%s not written: %s", self.namespace, self.name, exc)
            return False
        self.last_patch = body
        self.write_failed = False
        self.owned_keys = {k for k in status if k in ("reason", "message", "podIP", "podIPs")}
        with self.lock:
            if updated.get("metadata", {}).get("uid") == self.uid and int(
                    updated["metadata"].get("resourceVersion", "0")) > int(
                    self.pod["metadata"].get("resourceVersion", "0")):
                self.pod = updated
        return True

    # ------------------------------------------------------------------ logs
    def log_for(self, container: str, previous: bool) -> tuple[ContainerLog, ContainerRecord]:
        """The kubelet's validateContainerLogStatus: which instance's log to serve, or
        LogUnavailable with the kubelet's message (the API server relays it as 400)."""
        c = next((c for c in self.containers if c.name == container), None)
        if c is None:
            raise LogUnavailable(404, f'container "{container}" in pod "{self.name}" is not '
                                 "available")
        last = c.last_state.get("terminated") or {}
        state = c.state
        if previous:
            cid = last.get("containerID")
            if not cid:
                raise LogUnavailable(400, f'previous terminated container "{container}" in pod '
                                     f'"{self.name}" not found')
        elif "running" in state:
            cid = c.container_id
        elif "terminated" in state:
            cid = state["terminated"].get("containerID") or last.get("containerID")
            if not cid:
                raise LogUnavailable(400, f'container "{container}" in pod "{self.name}" is '
                                     "terminated")
        elif last:
            cid = last.get("containerID")
            if not cid:
                raise LogUnavailable(400, f'container "{container}" in pod "{self.name}" is '
                                     "terminated")
        else:
            reason = (state.get("waiting") or {}).get("reason", "")
            detail = {"ErrImagePull": "image can't be pulled",
                      "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
            raise LogUnavailable(400, f'container "{container}" in pod "{self.name}" is waiting '
                                 f"to start: {detail}")
        for instance_id, log_file in reversed(c.logs):
            if instance_id == cid:
                return log_file, c
        raise LogUnavailable(400, f'container "{container}" in pod "{self.name}" is '
                             "terminated")

    # ------------------------------------------------------------------ fault injection
    def running_process(self) -> ContainerProcess | None:
        for c in self.containers:
            if c.running:
                return c.proc
        return None

    def shutdown(self) -> None:
        """The agent stops: kill every container, unmount tmpfs volumes."""
        for c in self.containers:
            if c.proc is not None:
                c.proc.force_kill()
        self._release_volumes()
