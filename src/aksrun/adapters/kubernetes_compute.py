"""KubernetesCompute: one Indexed Job per submission, watched (never polled), failing fast.

The AKS backend is this compute with a BlobStore and a kubeconfig from ARM
(`azure.kubeconfig`). Payloads never travel through the API: only pointers in env vars.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import urllib3

from ..core.config import Config
from ..errors import AksrunError, ConfigError, UnknownJobError
from ..ports.compute import JobHandle, JobStatus, LaunchRequest, TaskEvent, TaskSpan
from . import kubernetes_digests as digests
from . import kubernetes_events as kev
from . import kubernetes_manifest as manifest
from .kubernetes_watch import MergedWatch

log = logging.getLogger("aksrun.kubernetes")
SCALE_UP_GRACE = 20.0  # seconds an unschedulable pod may wait for the autoscaler to decide
NODES_TTL = 30.0  # seconds a listing of the nodes is reused
NO_IMAGE = ("no runner image configured: set AKSRUN_IMAGE to an image with aksrun installed, "
            "or AZURE_CONTAINER_REGISTRY to the Azure Container Registry aksrun builds its "
            "images in (e.g. AZURE_CONTAINER_REGISTRY=myacr).")
FAILED_CREATE_LIMIT = 2
# How often a watching client copies new output digests onto the Job (and at its end).
RECORD_INTERVAL = 30.0
EXISTENCE_GRACE = 2.0  # how long a watch waits for its Job's first listing before asking
EXISTENCE_INTERVAL = 5.0  # then how often it asks whether the Job still exists
PULL_PATIENCE = 300.0
PAGE_SIZE = 500  # the Job controller's failures to create a pod before aksrun gives up


class KubernetesCompute:
    name = "kubernetes"

    def __init__(self, api_client: Any, namespace: str, *, image: str | None = None,
                 image_for: Callable[[Any], str] | None = None,
                 service_account: str = "aksrun", storage_env: Mapping[str, str] | None = None,
                 max_parallel: int = 100, pending_timeout: float = 1800.0) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace, self.image, self.service_account = namespace, image, service_account
        # options -> image reference (by digest); finds or builds the function's image. None:
        # every job runs `image` (or the function's own image=), and requirements= is refused.
        self.image_for = image_for
        self._images: dict[tuple[Any, ...], str] = {}
        self.storage_env = dict(storage_env or {})
        self.max_parallel = max_parallel
        self.pending_timeout = pending_timeout
        # How long transient image-pull failures (429, timeouts) may last before a job fails.
        self.pull_patience = PULL_PATIENCE
        self.page_size = PAGE_SIZE  # objects per list request (the API server pages them)
        self._nodes: tuple[float, list[dict[str, Any]] | None] = (0.0, None)
        self._verdicts: dict[str, list[str]] = {}  # pod shape -> misfits on the listed nodes

    def misfits(self, pod: dict[str, Any]) -> list[str] | None:
        """Why `pod` fits none of the cluster's nodes (one reason per node), [] when some
        node could run it, None when the nodes can't be read (no RBAC for them: then only
        the pending timeout decides). Nodes are listed at most every 30 s."""
        from kubernetes.client.rest import ApiException

        listed_at, nodes = self._nodes
        if time.monotonic() - listed_at > NODES_TTL:
            try:
                items = self.core.list_node().items
                nodes = [self.api_client.sanitize_for_serialization(n) for n in items]
            except (ApiException, OSError) as exc:
                log.debug("cannot read nodes (%s); unschedulable pods wait for the timeout", exc)
                nodes = None
            self._nodes = (time.monotonic(), nodes)
            self._verdicts = {}
        if nodes is None:
            return None
        if not nodes:
            return ["the cluster has no nodes"]
        # The pods of a job differ only in their index: one verdict per shape and listing.
        spec = pod.get("spec") or {}
        shape = repr(((spec.get("containers") or [{}])[0].get("resources"),
                      spec.get("nodeSelector"), spec.get("tolerations")))
        if shape not in self._verdicts:
            reasons = [f"{(n.get('metadata') or {}).get('name')}: {why}" for n in nodes
                       if (why := kev.misfit(pod, n))]
            self._verdicts[shape] = reasons if len(reasons) == len(nodes) else []
        return self._verdicts[shape]

    def prepare(self, options: Any) -> None:
        """Find (or build) the function's image before anything is uploaded: a build that
        fails then leaves nothing behind, and the Job is created right after the upload."""
        self.image_of(options)

    def image_of(self, options: Any) -> str:
        """The image a function's jobs run: by digest from `image_for` (once per distinct
        options), else the fixed image."""
        own = getattr(options, "image", None)
        requirements = tuple(getattr(options, "requirements", ()) or ())
        if self.image_for is None:
            if requirements:
                raise ConfigError(
                    f"requirements={list(requirements)} needs an image built for them, and "
                    "no container registry is configured: set AZURE_CONTAINER_REGISTRY, or "
                    "install the packages into your own image and pass image=.")
            image = own or self.image
            if not image:
                raise ConfigError(NO_IMAGE)
            return image
        key = (own, requirements)
        if key not in self._images:
            self._images[key] = self.image_for(options)
        return self._images[key]

    @classmethod
    def from_config(cls, config: Config,
                    image_for: Callable[[Any], str] | None = None) -> KubernetesCompute:
        from .azure.kubeconfig import load_kubernetes_client

        if config.backend == "aks":
            from .azure.kubeconfig import fetch_kubeconfig, write_private_kubeconfig

            data = fetch_kubeconfig(config.subscription_id, config.resource_group,
                                    config.cluster_name, server_fqdn=config.server_fqdn,
                                    config=config)
            api_client = load_kubernetes_client(write_private_kubeconfig(data))
        else:
            path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            if os.path.isfile(path.split(os.pathsep)[0]):
                api_client = load_kubernetes_client(path.split(os.pathsep)[0])
            else:
                api_client = _in_cluster(path)
        return cls(api_client, config.effective_namespace, image=config.image,
                   image_for=image_for, service_account=config.service_account,
                   storage_env=storage_env(config),
                   max_parallel=config.max_parallel or 100,
                   pending_timeout=config.pending_timeout)

    # --- launching -------------------------------------------------------------------------

    def job_manifest(self, request: LaunchRequest) -> dict[str, Any]:
        if request.deadline_seconds is not None:  # pods may wait this long for capacity too
            request = dataclasses.replace(
                request, deadline_seconds=request.deadline_seconds + self.pending_timeout)
        return render_job(request, namespace=self.namespace, image=self.image_of(request.options),
                          service_account=self.service_account, storage_env=self.storage_env)

    def launch(self, request: LaunchRequest) -> JobHandle:
        from kubernetes.client.rest import ApiException

        body = self.job_manifest(request)
        try:
            job = self.batch.create_namespaced_job(self.namespace, body)
        except ApiException as exc:
            raise AksrunError(_api_error(exc, f"creating Job {request.job_id}",
                                         self.namespace)) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise AksrunError(self._unreachable(exc, f"creating Job {request.job_id}")) from None
        return self._handle(request.job_id, job.metadata.uid)

    def _handle(self, job_id: str, uid: str | None, digest: str | None = None) -> JobHandle:
        return JobHandle(job_id, self.name, {"namespace": self.namespace, "uid": uid,
                                             "job_digest": digest})

    def attach(self, job_id: str) -> JobHandle:
        job = self._read_job(job_id)
        metadata = job["metadata"]
        return self._handle(job_id, metadata.get("uid"),
                            (metadata.get("annotations") or {}).get(manifest.ANN_JOB_DIGEST))

    def _read_job(self, job_id: str) -> dict[str, Any]:
        from kubernetes.client.rest import ApiException

        try:
            job = self.batch.read_namespaced_job(job_id, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise UnknownJobError(
                    f"no Job {job_id!r} in namespace {self.namespace!r} (finished Jobs are "
                    "removed after their ttlSecondsAfterFinished)."
                ) from None
            raise AksrunError(_api_error(exc, f"reading Job {job_id}", self.namespace)) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise AksrunError(self._unreachable(exc, f"reading Job {job_id}")) from None
        return self.api_client.sanitize_for_serialization(job)

    def _unreachable(self, exc: BaseException, doing: str) -> str:
        """No answer at all: say where we tried, and the usual cause on AKS."""
        reason = getattr(exc, "reason", None) or exc
        return (f"{doing}: cannot reach the Kubernetes API server at "
                f"{self.api_client.configuration.host} ({reason}). If the cluster is private "
                "(an AKS private cluster, or API server VNet integration), connect from inside "
                "its network: a VPN, a peered VNet or a jump host; a private cluster with a "
                "public FQDN is reachable from outside with AKSRUN_SERVER_FQDN=public. "
                "Otherwise check KUBECONFIG and that the cluster is running.")

    # --- watching --------------------------------------------------------------------------

    def events(self, handle: JobHandle, stop: threading.Event | None = None
               ) -> Iterator[TaskEvent]:
        watch = MergedWatch(self.api_client)
        job_id = handle.job_id
        watch.add("job", self.batch.list_namespaced_job, namespace=self.namespace,
                  field_selector=f"metadata.name={job_id}")
        watch.add("pod", self.core.list_namespaced_pod, namespace=self.namespace,
                  label_selector=f"batch.kubernetes.io/job-name={job_id}")
        watch.add("event", self.core.list_namespaced_event, optional=True,
                  namespace=self.namespace, field_selector="involvedObject.kind=Pod")
        # The Job controller reports pods it cannot create (a missing service account, an
        # admission webhook's or a ResourceQuota's refusal) as events on the Job, and only
        # there: no pod exists to carry them.
        watch.add("job-event", self.core.list_namespaced_event, optional=True,
                  namespace=self.namespace,
                  field_selector=f"involvedObject.kind=Job,involvedObject.name={job_id}")
        try:
            yield from _Tracker(self, handle, watch, stop or threading.Event()).run()
        finally:
            watch.stop()

    def logs(self, handle: JobHandle, index: int = 0, follow: bool = False) -> Iterator[str]:
        pods = self._pods(handle.job_id, index)
        if not pods:
            return iter(())
        name = pods[-1]["metadata"]["name"]
        response = self.core.read_namespaced_pod_log(
            name, self.namespace, container="runner", follow=follow, _preload_content=False
        )
        return (chunk.decode("utf-8", "replace") for chunk in response.stream(4096))

    def _pods(self, job_id: str, index: int | None = None) -> list[dict[str, Any]]:
        selector = f"batch.kubernetes.io/job-name={job_id}"
        if index is not None:
            selector += f",{kev.INDEX_LABEL}={index}"
        pods = _list_all(self.core.list_namespaced_pod, self.namespace, self.page_size,
                         label_selector=selector)
        items = [self.api_client.sanitize_for_serialization(p) for p in pods]
        return sorted(items, key=lambda p: p["metadata"].get("creationTimestamp") or "")

    def status(self, handle: JobHandle) -> JobStatus:
        job = self._read_job(handle.job_id)
        return _job_status(job, _calls_raised(self._pods(handle.job_id)))

    def timeline(self, handle: JobHandle) -> list[TaskSpan]:
        """The Job and its pods, read once (a page of pods per request)."""
        from .kubernetes_timeline import job_spans

        return job_spans(self._read_job(handle.job_id), self._pods(handle.job_id))

    def list(self) -> list[JobStatus]:
        """Two lists whatever the number of jobs (a request per page of 500): the Jobs, and
        their pods (whose termination messages count the calls that raised)."""
        sanitize = self.api_client.sanitize_for_serialization
        jobs = _list_all(self.batch.list_namespaced_job, self.namespace, self.page_size,
                         label_selector=manifest.managed_selector())
        pods = _list_all(self.core.list_namespaced_pod, self.namespace, self.page_size,
                         label_selector=manifest.LABEL_JOB_ID)
        by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            data = sanitize(pod)
            job_id = (data["metadata"].get("labels") or {}).get(manifest.LABEL_JOB_ID)
            by_job.setdefault(job_id, []).append(data)
        statuses = []
        for job in jobs:
            data = sanitize(job)
            statuses.append(_job_status(data, _calls_raised(by_job.get(data["metadata"]["name"],
                                                                        []))))
        return sorted(statuses, key=lambda s: s.started or 0, reverse=True)

    # --- stopping --------------------------------------------------------------------------

    def cancel(self, handle: JobHandle) -> None:
        """Delete the Job and (foreground propagation) its pods."""
        from kubernetes.client.rest import ApiException

        try:
            self.batch.delete_namespaced_job(handle.job_id, self.namespace,
                                             propagation_policy="Foreground")
        except ApiException as exc:
            if exc.status != 404:
                raise AksrunError(_api_error(exc, f"deleting Job {handle.job_id}",
                                             self.namespace)) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise AksrunError(self._unreachable(exc, f"deleting Job {handle.job_id}")) from None

    def delete(self, handle: JobHandle) -> None:
        self.cancel(handle)


# Job conditions after which the controller deletes the Job's remaining pods itself.
TERMINAL_CONDITIONS = ("FailureTarget", "Failed", "SuccessCriteriaMet", "Complete", "Suspended")


class _Tracker:
    """Folds the merged watch into task events, once per task and in a sensible order."""

    def __init__(self, compute: KubernetesCompute, handle: JobHandle, watch: MergedWatch,
                 stop: threading.Event):
        self.compute, self.handle, self.watch, self.stop = compute, handle, watch, stop
        self.started: set[str] = set()  # pod names seen running
        self.finished: set[str] = set()  # pod names already turned into an event
        self.succeeded: set[int] = set()
        self.attempts: dict[int, int] = {}
        self.counted: dict[int, int] = {}  # failures that count against backoffLimitPerIndex
        self.backoff_limit: int | None = None
        self.unschedulable: dict[str, float] = {}  # pod name -> first seen
        self.scale_up: dict[str, str] = {}  # pod name -> autoscaler's verdict
        # Pods not yet finished (finished ones are dropped: a long map's tracker stays small),
        # and the few that need watching on every tick: pulls failing, pods unschedulable.
        self.pods: dict[str, dict[str, Any]] = {}
        self.running: set[str] = set()
        self.pull_failed: dict[str, tuple[dict[str, Any], tuple[str, str]]] = {}
        self.job_seen = False
        self.failed_creates: dict[str, int] = {}  # FailedCreate event name -> its count
        self.pulling: dict[str, float] = {}  # pod name -> first transient pull failure seen
        self.progress = time.monotonic()  # when a pod of the job last started or finished
        # Output digests: from termination messages, and as recorded on the Job.
        self.verified: dict[int, tuple[str, str | None]] = {}
        self.recorded: dict[int, tuple[str, str | None]] = {}
        self.job: dict[str, Any] | None = None
        self.last_record = time.monotonic()
        self.record_refused = False
        # A Job deleted between attach() and the watch's first listing never shows up in it
        # (no ADDED, no DELETED): until it has been seen, check now and then that it exists.
        self.next_existence_check = time.monotonic() + EXISTENCE_GRACE

    def run(self) -> Iterator[TaskEvent]:
        while True:
            try:
                source, kind, obj = self.watch.get(timeout=self._next_check())
            except queue.Empty:
                source, kind, obj = "tick", "", {}
            if kind == "STOPPED" or self.stop.is_set():
                self._record()
                return
            if kind == "BROKEN":
                raise AksrunError(_api_error(obj["error"], f"watching the {source}s of job "
                                             f"{self.handle.job_id}", self.compute.namespace))
            if source == "pod":
                for event in self._on_pod(kind, obj):
                    if event.kind == "succeeded" and self._all_succeeded():
                        self._record()  # before the caller has its last result, and may exit
                    yield event
                    if event.kind == "failed" and event.reason == "OOMKilled":
                        # Kubernetes would retry it with the same limit, and fail again.
                        self.compute.cancel(self.handle)
                        yield TaskEvent("job_failed", reason="OOMKilled", message=event.message)
                        return
            elif source == "event":
                self._on_event(obj)
            elif source == "job-event":
                failure = self._on_job_event(obj)
                if failure is not None:
                    self.compute.cancel(self.handle)
                    yield failure
                    return
            elif source == "job":
                event = self._on_job(kind, obj)
                if event is not None:
                    yield from self._flush_successes()
                    self._record()
                    yield event
                    return
            failure = self._fail_fast()
            if failure is not None:
                self.compute.cancel(self.handle)
                yield failure
                return
            if not self.job_seen and time.monotonic() >= self.next_existence_check:
                self.next_existence_check = time.monotonic() + EXISTENCE_INTERVAL
                if self._job_is_gone():
                    yield TaskEvent("job_cancelled", reason="Deleted",
                                    message=f"Job {self.handle.job_id} was deleted")
                    return
            if time.monotonic() - self.last_record > RECORD_INTERVAL:
                self._record()

    def _job_is_gone(self) -> bool:
        try:
            self.compute._read_job(self.handle.job_id)
        except UnknownJobError:
            return True
        except AksrunError:  # unreachable for now: the watch says so if it lasts
            return False
        return False

    def _next_check(self) -> float:
        """Wake for the scale-up grace of an unschedulable pod, or to notice `stop`."""
        wait = 0.25
        if self.unschedulable:
            grace = min(self.unschedulable.values()) + SCALE_UP_GRACE - time.monotonic()
            wait = min(wait, max(0.05, grace))
        return wait

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> Iterator[TaskEvent]:
        name = pod["metadata"]["name"]
        index = kev.pod_index(pod)
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        phase = (pod.get("status") or {}).get("phase")
        if deleting and phase != "Succeeded" and not kev.is_disrupted(pod):
            # A disrupted pod (the Eviction API, preemption, a drained node) is deleted too,
            # with the DisruptionTarget condition: it is reported below, not counted.
            yield from self._on_deleted(kind, pod, index)
            return
        if index is None or kind == "DELETED" or phase in ("Succeeded", "Failed"):
            self._forget(name)
        else:
            self.pods[name] = pod
            self._note_pull(name, pod)
            (self.running.add if phase == "Running" else self.running.discard)(name)
        if index is None or kind == "DELETED":
            return
        if kev.unschedulable_message(pod):
            self.unschedulable.setdefault(name, time.monotonic())
        else:
            self.unschedulable.pop(name, None)
        if phase == "Running" and name not in self.started:
            self.started.add(name)
            self.progress = time.monotonic()
            yield TaskEvent("started", index, self.attempts.get(index, 0))
        if phase in ("Succeeded", "Failed") and name not in self.finished:
            self.finished.add(name)
            self.progress = time.monotonic()
            attempt = self.attempts.get(index, 0)
            event = kev.finished_pod_event(pod, index, attempt)
            if event.kind == "succeeded":
                if index in self.succeeded:
                    return  # a retried index reports once
                self.succeeded.add(index)
                if event.digest:
                    self.verified[index] = (event.digest, event.reason)
            else:
                self.attempts[index] = attempt + 1
                if event.kind == "retrying" and event.reason != "Evicted":
                    self.counted[index] = self.counted.get(index, 0) + 1
                    if self.backoff_limit is not None and self.counted[index] > self.backoff_limit:
                        event = dataclasses.replace(  # the controller won't start it again
                            event, kind="failed",
                            message=f"{event.message} (no retries left: "
                            f"backoffLimitPerIndex={self.backoff_limit})")
            yield event

    def _on_deleted(self, kind: str, pod: dict[str, Any], index: int | None
                    ) -> Iterator[TaskEvent]:
        """A pod deleted before it finished. When the Job is going (a cancel, its failure, its
        deadline), the controller stopped it: nothing to say. Otherwise someone deleted it
        (`kubectl delete pod`, a removed node): it ends Failed and the controller counts it
        against backoffLimitPerIndex, so it is reported once it ends, and counted here too."""
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if index is None or name in self.finished:
            self._forget(name)
            return
        if phase != "Failed" and kind != "DELETED":  # still stopping
            self.pods[name] = pod
            self.running.discard(name)
            return
        self._forget(name)
        self.finished.add(name)
        if self.stop.is_set() or self._job_ending():
            return
        self.progress = time.monotonic()
        attempt = self.attempts.get(index, 0)
        self.attempts[index] = attempt + 1
        self.counted[index] = self.counted.get(index, 0) + 1
        event = TaskEvent("retrying", index, attempt, reason="Deleted", message=(
            f"pod {name} was deleted before it finished (not by aksrun: `kubectl delete pod`, "
            "or its node was removed)"))
        if self.backoff_limit is not None and self.counted[index] > self.backoff_limit:
            event = dataclasses.replace(event, kind="failed", message=(
                f"{event.message} (no retries left: backoffLimitPerIndex={self.backoff_limit})"))
        yield event

    def _job_ending(self) -> bool:
        """The Job is deleted, being deleted, or has a terminal condition (one read: pods
        deleted by anyone else are rare)."""
        try:
            job = self.compute._read_job(self.handle.job_id)
        except UnknownJobError:
            return True
        if job["metadata"].get("deletionTimestamp"):
            return True
        return any(c.get("type") in TERMINAL_CONDITIONS and c.get("status") == "True"
                   for c in (job.get("status") or {}).get("conditions") or [])

    def _on_event(self, event: dict[str, Any]) -> None:
        involved = (event.get("involvedObject") or {}).get("name") or ""
        if not involved.startswith(f"{self.handle.job_id}-"):
            return
        reason = event.get("reason")
        if reason in ("NotTriggerScaleUp", "TriggeredScaleUp", "Nominated"):
            self.scale_up[involved] = reason
            self.scale_up.setdefault(f"{involved}#message", event.get("message") or "")

    def _on_job_event(self, event: dict[str, Any]) -> TaskEvent | None:
        """Pods that cannot be created: the controller retries with back-off, forever. Once
        it has failed twice (two events, or one event counted twice), it is no passing
        fault: fail the job with the controller's words and what to do about them."""
        if event.get("reason") != "FailedCreate":
            return None
        name = (event.get("metadata") or {}).get("name") or ""
        series = (event.get("series") or {}).get("count")
        self.failed_creates[name] = int(event.get("count") or series or 1)
        if sum(self.failed_creates.values()) < FAILED_CREATE_LIMIT:
            return None
        return TaskEvent("job_failed", reason="FailedCreate", message=kev.failed_create_hint(
            event.get("message") or "", self.compute.namespace, self.compute.service_account))

    def _on_job(self, kind: str, job: dict[str, Any]) -> TaskEvent | None:
        if kind == "DELETED" or job["metadata"].get("deletionTimestamp"):
            return TaskEvent("job_cancelled", reason="Deleted",
                             message=f"Job {self.handle.job_id} was deleted")
        self.job_seen = True
        self.job = job
        self.recorded = digests.decode(job)
        limit = (job.get("spec") or {}).get("backoffLimitPerIndex")
        self.backoff_limit = limit if isinstance(limit, int) else self.backoff_limit
        return kev.job_terminal(job)

    def _flush_successes(self) -> Iterator[TaskEvent]:
        """The Job can report Complete before the last pod's watch event arrives; and the
        pods of completed indexes may be gone (pod GC after a node's removal): their
        digests as recorded on the Job stand in for their termination messages."""
        if not self.watch.stopped.is_set():
            for pod in self.compute._pods(self.handle.job_id):
                yield from self._on_pod("LISTED", pod)
        completed = kev.parse_indexes(((self.job or {}).get("status") or {})
                                      .get("completedIndexes"))
        for index in sorted(completed - self.succeeded):
            if index in self.recorded:
                digest, raised = self.recorded[index]
                self.succeeded.add(index)
                yield TaskEvent("succeeded", index, self.attempts.get(index, 0),
                                digest=digest, reason=raised or "0")

    def _all_succeeded(self) -> bool:
        completions = ((self.job or {}).get("spec") or {}).get("completions")
        return isinstance(completions, int) and len(self.succeeded) >= completions

    def _record(self) -> None:
        """Copy digests not yet on the Job onto it (one PATCH). Best effort: a Role without
        `patch` on jobs (granted before aksrun needed it) is said once, then left alone."""
        self.last_record = time.monotonic()
        merged = {**self.recorded, **self.verified}
        if self.record_refused or merged == self.recorded:
            return
        from kubernetes.client.rest import ApiException

        body = {"metadata": {"annotations": {digests.ANNOTATION: digests.encode(merged)}}}
        try:
            self.compute.batch.patch_namespaced_job(self.handle.job_id, self.compute.namespace,
                                                    body, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 403:
                self.record_refused = True
                log.info("aksrun may not patch Job %s (%s): its output digests live only in "
                         "its pods; `aksrun admin add-user` grants jobs/patch",
                         self.handle.job_id, self.compute.namespace)
            else:
                log.debug("recording digests on Job %s failed", self.handle.job_id,
                          exc_info=True)
            return
        except (OSError, urllib3.exceptions.HTTPError):
            log.debug("recording digests on Job %s failed", self.handle.job_id, exc_info=True)
            return
        self.recorded = merged

    def _forget(self, name: str) -> None:
        for table in (self.pods, self.unschedulable, self.pulling, self.pull_failed):
            table.pop(name, None)
        self.running.discard(name)

    def _note_pull(self, name: str, pod: dict[str, Any]) -> None:
        pulled = kev.pull_failure(pod)
        if pulled:
            self.pull_failed[name] = (pod, pulled)
        else:
            self.pull_failed.pop(name, None)
            self.pulling.pop(name, None)

    def _fail_fast(self) -> TaskEvent | None:
        """Work in proportion to the pods in trouble, not to the job's size."""
        for name, (pod, pulled) in list(self.pull_failed.items()):
            image = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("image")
            if kev.permanent_pull_failure(*pulled):
                return TaskEvent(
                    "job_failed", kev.pod_index(pod), reason=pulled[0],
                    message=f"the image {image} could not be pulled ({pulled[0]}): "
                    f"{pulled[1]}. Check AKSRUN_IMAGE and that the cluster may pull from the "
                    "registry (AcrPull).",
                )
            # Throttling, timeouts, a registry hiccup: the kubelet retries with back-off;
            # fail only when that hasn't worked for a while.
            since = self.pulling.setdefault(name, time.monotonic())
            if time.monotonic() - since > self.compute.pull_patience:
                return TaskEvent(
                    "job_failed", kev.pod_index(pod), reason=pulled[0],
                    message=f"the image {image} could not be pulled for "
                    f"{self.compute.pull_patience:.0f} s of retries ({pulled[0]}): "
                    f"{pulled[1]}. The registry may be throttling or unreachable from the "
                    "nodes; try again later, or check the cluster's network to it.",
                )
        for name in list(self.unschedulable):
            pod = self.pods.get(name)
            if pod is not None:
                failure = self._unschedulable(name, pod)
                if failure is not None:
                    return failure
        return None

    def _unschedulable(self, name: str, pod: dict[str, Any]) -> TaskEvent | None:
        """A pod waiting for capacity is queued, not failed: the job's other pods may be
        holding the nodes, a node may be coming, or the cluster is busy. It fails fast only
        when it fits no node even empty (and no scale-up is under way), and otherwise only
        after `pending_timeout` without any pod of the job making progress."""
        verdict = self.scale_up.get(name)
        if verdict in ("TriggeredScaleUp", "Nominated"):
            return None  # a node is coming for it
        now = time.monotonic()
        waited = now - self.unschedulable[name]
        why = kev.unschedulable_message(pod)
        misfits = self.compute.misfits(pod)
        if misfits and (verdict == "NotTriggerScaleUp" or waited >= SCALE_UP_GRACE):
            autoscaler = self.scale_up.get(f"{name}#message") or "no scale-up triggered"
            return TaskEvent(
                "job_failed", kev.pod_index(pod), reason="Unschedulable",
                message=f"no node can run pod {name} (asked for {kev.requested(pod)}), not even "
                f"an empty one: {'; '.join(misfits)}. The scheduler: {why}; the autoscaler: "
                f"{autoscaler}. Lower cpu=/memory=/gpu=, pick another node_type=, or add a "
                "node pool that fits.")
        timeout = self.compute.pending_timeout
        if waited < timeout or now - self.progress < timeout or self._running():
            return None
        return TaskEvent(
            "job_failed", kev.pod_index(pod), reason="Unschedulable",
            message=f"pod {name} (asked for {kev.requested(pod)}) waited {waited / 60:.0f} min "
            f"for capacity while no pod of the job could run: {why}. Wait longer with "
            "AKSRUN_PENDING_TIMEOUT, lower cpu=/memory=/max_parallel=, or ask for more nodes.")

    def _running(self) -> bool:
        return bool(self.running)


def _list_all(call: Callable[..., Any], namespace: str, page_size: int,
              **kwargs: Any) -> list[Any]:
    """Every object of a list, a page at a time: one huge response would hold the API server
    (and this client) up, and big namespaces hit the server's response limits."""
    items: list[Any] = []
    token = None
    while True:
        page = call(namespace, limit=page_size, _continue=token, **kwargs)
        items.extend(page.items)
        token = page.metadata._continue if page.metadata is not None else None
        if not token:
            return items


def _calls_raised(pods: list[dict[str, Any]]) -> int:
    """Calls whose function raised, from the runners' termination messages (one per index)."""
    per_index: dict[int, int] = {}
    for pod in pods:
        index = kev.pod_index(pod)
        if index is not None and (pod.get("status") or {}).get("phase") == "Succeeded":
            per_index[index] = int(kev.termination_message(pod).get("errors", 0) or 0)
    return sum(per_index.values())


def _job_status(job: Mapping[str, Any], calls_raised: int = 0) -> JobStatus:
    meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    annotations = meta.get("annotations") or {}
    terminal = kev.job_terminal(job)
    state = "pending"
    if terminal is not None:
        state = "succeeded" if terminal.kind == "job_succeeded" else "failed"
    elif status.get("active") or status.get("succeeded") or status.get("failed"):
        state = "running"
    if meta.get("deletionTimestamp"):
        state = "cancelled"
    reason = terminal.reason if terminal and terminal.kind == "job_failed" else None
    message = terminal.message if terminal and terminal.kind == "job_failed" else None
    if state == "succeeded" and calls_raised:
        state, reason = "failed", "CallsRaised"
        message = f"{calls_raised} calls raised an exception"
    return JobStatus(
        job_id=meta["name"],
        function=annotations.get("aksrun.io/function", "?"),
        state=state,  # type: ignore[arg-type]
        tasks=int(spec.get("completions") or 1),
        calls=int(annotations.get("aksrun.io/calls", spec.get("completions") or 1)),
        chunksize=int(annotations.get("aksrun.io/chunksize", 1)),
        done_indexes=frozenset(kev.parse_indexes(status.get("completedIndexes"))),
        failed_indexes=frozenset(kev.parse_indexes(status.get("failedIndexes"))),
        started=kev.epoch(meta.get("creationTimestamp")),
        finished=kev.job_ended(job) if terminal else None,
        calls_raised=calls_raised,
        reason=reason,
        message=message,
    )


def render_job(request: LaunchRequest, *, namespace: str, image: str, service_account: str,
               storage_env: Mapping[str, str]) -> dict[str, Any]:
    """The Job manifest for a request; a function's own `image=` wins over the default."""
    return manifest.build_job(
        request, namespace=namespace, image=getattr(request.options, "image", None) or image,
        service_account=service_account, storage_env=storage_env,
    )


def render_job_for_config(request: LaunchRequest, config: Config,
                          image: str | None = None) -> dict[str, Any]:
    """The manifest `launch` would submit, from configuration alone (no cluster needed)."""
    image = image or config.image
    if not image:
        raise ConfigError(NO_IMAGE)
    return render_job(request, namespace=config.effective_namespace, image=image,
                      service_account=config.service_account, storage_env=storage_env(config))


def storage_env(config: Config) -> dict[str, str]:
    """How a pod reaches the store: pointers only (account, endpoint); pods authenticate with
    workload identity through DefaultAzureCredential. A connection string carries the
    account key, so it goes into a Job only when it points at a loopback emulator (Azurite,
    development); any other is refused rather than written where every Job reader sees it."""
    env = {}
    if config.storage_account:
        env["AZURE_STORAGE_ACCOUNT"] = config.storage_account
    if config.storage_account_url:
        env["AKSRUN_STORAGE_ACCOUNT_URL"] = config.storage_account_url
    if config.storage_connection_string and config.store_url.startswith("az://"):
        if not _is_emulator(config.storage_connection_string):
            raise ConfigError(
                "AKSRUN_STORAGE_CONNECTION_STRING holds the storage account key, which would be "
                "visible in every Job's spec; on Kubernetes the pods sign in with workload "
                "identity instead: unset it and set AZURE_STORAGE_ACCOUNT."
            )
        env["AKSRUN_STORAGE_CONNECTION_STRING"] = config.storage_connection_string
    return env


def _is_emulator(connection_string: str) -> bool:
    from urllib.parse import urlparse

    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return True
    host = urlparse(parts.get("BlobEndpoint", "")).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def redact(text: str) -> str:
    """Hide account keys and SAS signatures in text meant for a terminal."""
    import re

    return re.sub(r"(AccountKey=|SharedAccessSignature=|sig=)[^;&\s\"']+", r"\1<redacted>", text)


def _in_cluster(path: str) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        raise ConfigError(
            f"backend 'kubernetes' found no kubeconfig at {path} and is not running in a "
            "cluster; set KUBECONFIG, or use AKSRUN_BACKEND=aks with AZURE_* settings."
        ) from None
    return client.ApiClient(configuration)


def _api_error(exc: Any, doing: str, namespace: str) -> str:
    status = getattr(exc, "status", None)
    if status is None:  # not an API answer: the connection itself failed
        return f"{doing} failed: {exc}"
    if exc.status == 403:
        from .kubernetes_rbac import forbidden_message

        return forbidden_message(exc.body, doing, namespace)
    if exc.status == 404:
        return f"{doing}: namespace {namespace!r} does not exist (AKSRUN_NAMESPACE)."
    return f"{doing} failed: {exc.status} {exc.reason}: {(exc.body or '')[:500]}"
