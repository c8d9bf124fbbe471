"""batch/v1 Job controller (k8s 1.31+ semantics): Indexed and NonIndexed completion,
parallelism, backoffLimit, backoffLimitPerIndex/maxFailedIndexes, podFailurePolicy,
activeDeadlineSeconds, suspend, ttlSecondsAfterFinished and foreground deletion.

Terminal pods are accounted from store change notifications (not by polling), so a pod that
is deleted right after it failed is still counted exactly once.
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .objects import ApiError, compress_indexes, condition, now_ts
from .store import Change

if TYPE_CHECKING:
    from .cluster import FakeCluster

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
FAILURES_KEY = "batch.kubernetes.io/job-index-failure-count"
IGNORED_KEY = "batch.kubernetes.io/job-index-ignored-failure-count"
TERMINAL = ("Succeeded", "Failed")


@dataclass
class JobState:
    """What the controller knows about one Job beyond its pods (its 'tracking finalizers')."""

    accounted: set[str] = field(default_factory=set)
    expected: set[str] = field(default_factory=set)  # pods the controller itself deleted
    completed: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    index_failures: Counter = field(default_factory=Counter)
    index_ignored: Counter = field(default_factory=Counter)
    succeeded: int = 0
    failed: int = 0
    failure: tuple[str, str] | None = None
    conditions: list[dict] = field(default_factory=list)
    backoff_until: dict[int | None, float] = field(default_factory=dict)
    start: str | None = None
    start_mono: float = 0.0
    completion_time: str | None = None
    finished_mono: float | None = None


def pod_index(pod: dict) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(value) if value is not None else None


def owner_uid(pod: dict) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return ref["uid"]
    return None


def match_failure_policy(rules: list[dict], pod: dict) -> tuple[str | None, str]:
    """First podFailurePolicy rule matching a failed pod: (action, message) or (None, "")."""
    meta, status = pod["metadata"], pod.get("status") or {}
    who = f"{meta['namespace']}/{meta['name']}"
    for i, rule in enumerate(rules):
        codes = rule.get("onExitCodes")
        if codes is not None:
            for cs in status.get("containerStatuses") or []:
                if codes.get("containerName") and cs["name"] != codes["containerName"]:
                    continue
                term = (cs.get("state") or {}).get("terminated")
                if not term or term["exitCode"] == 0:
                    continue
                hit = term["exitCode"] in codes["values"]
                if hit == (codes["operator"] == "In"):
                    return rule["action"], (
                        f"Container {cs['name']} for pod {who} failed with exit code "
                        f"{term['exitCode']} matching {rule['action']} rule at index {i}")
        for pat in rule.get("onPodConditions") or []:
            for cond in status.get("conditions") or []:
                if cond["type"] == pat["type"] and cond["status"] == pat.get("status", "True"):
                    return rule["action"], (f"Pod {who} has condition {cond['type']} matching "
                                            f"{rule['action']} rule at index {i}")
    return None, ""


class JobController:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster
        self.store = cluster.store
        self.wake = threading.Event()
        self._changes: deque[Change] = deque()
        self.jobs: dict[str, JobState] = {}
        self.store.listeners.append(self._listen)

    def _listen(self, change: Change) -> None:
        if change.resource == "pods":
            self._changes.append(change)
            self.wake.set()
        elif change.resource == "jobs":
            self.wake.set()

    def run(self) -> None:
        while not self.c.stopping:
            self.wake.wait(self.c.tick)
            self.wake.clear()
            try:
                self.tick()
            except Exception:
                traceback.print_exc()

    def tick(self) -> None:
        jobs, _ = self.store.list("jobs")
        for job in jobs:
            self.jobs.setdefault(job["metadata"]["uid"], JobState())
        while self._changes:
            self._account(self._changes.popleft())
        for job in jobs:
            self._reconcile(job)
        alive = {j["metadata"]["uid"] for j in self.store.list("jobs")[0]}
        for uid in [u for u in self.jobs if u not in alive]:
            del self.jobs[uid]
        for pod in self.store.list("pods")[0]:  # garbage collector: dependents of gone jobs
            meta, owner = pod["metadata"], owner_uid(pod)
            if owner and owner not in alive and not meta.get("deletionTimestamp"):
                try:
                    self.c.delete_pod(meta["namespace"], meta["name"])
                except ApiError:
                    pass

    # ---------------------------------------------------------------- accounting
    def _account(self, change: Change) -> None:
        pod = change.obj
        uid, job_uid = pod["metadata"]["uid"], owner_uid(pod)
        st = self.jobs.get(job_uid or "")
        if st is None or uid in st.accounted:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase not in TERMINAL and change.type != "DELETED":
            return
        st.accounted.add(uid)
        if uid in st.expected or st.failure or st.completion_time:
            return
        job = next((j for j in self.store.list("jobs", pod["metadata"]["namespace"])[0]
                    if j["metadata"]["uid"] == job_uid), None)
        if job is None:
            return
        spec, idx = job["spec"], pod_index(pod)
        if phase == "Succeeded":
            if idx is None:
                st.succeeded += 1
            elif idx not in st.failed_indexes:
                st.completed.add(idx)
            return
        rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
        action, message = match_failure_policy(rules, pod)
        if action == "Ignore":
            st.index_ignored[idx] += 1
            return
        st.failed += 1
        if action == "FailJob":
            st.failure = ("PodFailurePolicy", message)
            return
        per_index = spec.get("backoffLimitPerIndex")
        if per_index is not None and idx is not None:
            st.index_failures[idx] += 1
            if action == "FailIndex" or st.index_failures[idx] > per_index:
                st.failed_indexes.add(idx)
        key = idx if per_index is not None else None
        n = st.index_failures[idx] if per_index is not None else st.failed
        st.backoff_until[key] = time.monotonic() + self.c.pod_backoff * 2 ** max(n - 1, 0)

    # ---------------------------------------------------------------- reconcile
    def _reconcile(self, job: dict) -> None:
        meta, spec = job["metadata"], job["spec"]
        st = self.jobs[meta["uid"]]
        pods = [p for p in self.store.list("pods", meta["namespace"])[0]
                if owner_uid(p) == meta["uid"]]
        now = time.monotonic()
        if meta.get("deletionTimestamp"):  # foreground deletion: dependents first
            for pod in pods:
                if not pod["metadata"].get("deletionTimestamp"):
                    self._delete_pod(st, job, pod, event=False)
            if not pods:
                self.store.delete("jobs", meta["namespace"], meta["name"])
            return
        if st.finished_mono is not None:
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and now >= st.finished_mono + ttl:
                self.c.delete_job(meta["namespace"], meta["name"], "Foreground")
            return
        active = [p for p in pods if p["status"].get("phase") not in TERMINAL
                  and not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in pods if p["status"].get("phase") not in TERMINAL
                       and p["metadata"].get("deletionTimestamp")]
        if spec.get("suspend"):
            for pod in active:
                self._delete_pod(st, job, pod)
            self._condition(st, "Suspended", "JobSuspended", "Job suspended")
            self._write(job, st, [], terminating)
            return
        st.conditions = [c for c in st.conditions if c["type"] != "Suspended"]
        if st.start is None:
            st.start, st.start_mono = now_ts(), now
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        if st.failure is None:
            st.failure = self._failure(spec, st, active, now, indexed)
        if st.failure is not None:
            reason, message = st.failure
            if self._condition(st, "FailureTarget", reason, message):
                self.c.events.record(job, reason, message, "Warning", "job-controller")
            for pod in active:
                self._delete_pod(st, job, pod)
            if not active and not terminating:
                self._condition(st, "Failed", reason, message)
                st.finished_mono = now
            self._write(job, st, [], terminating)
            return
        if indexed:
            done = len(st.completed) >= (completions or 0)
        elif completions is None:
            done = st.succeeded > 0 and not active
        else:
            done = st.succeeded >= completions
        if done:
            self._condition(st, "SuccessCriteriaMet", "CompletionsReached",
                            "Reached expected number of succeeded pods")
            for pod in active:
                self._delete_pod(st, job, pod)
            if not active and not terminating:
                self._condition(st, "Complete", "CompletionsReached",
                                "Reached expected number of succeeded pods")
                st.completion_time, st.finished_mono = now_ts(), now
                self.c.events.record(job, "Completed", "Job completed", "Normal",
                                     "job-controller")
            self._write(job, st, [], terminating)
            return
        active += self._create_pods(job, st, active, terminating, now)
        self._write(job, st, active, terminating)

    def _failure(self, spec: dict, st: JobState, active: list[dict], now: float,
                 indexed: bool) -> tuple[str, str] | None:
        deadline = spec.get("activeDeadlineSeconds")
        restarts = sum(cs.get("restartCount", 0) for p in active
                       for cs in p["status"].get("containerStatuses") or [])
        if deadline is not None and now - st.start_mono >= deadline:
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        if spec.get("backoffLimitPerIndex") is None and \
                st.failed + restarts > spec.get("backoffLimit", 6):
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        max_failed = spec.get("maxFailedIndexes")
        if max_failed is not None and len(st.failed_indexes) > max_failed:
            return ("MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes")
        if indexed and st.failed_indexes and \
                len(st.completed | st.failed_indexes) >= spec["completions"]:
            return "FailedIndexes", "Job has failed indexes"
        return None

    def _create_pods(self, job: dict, st: JobState, active: list[dict],
                     terminating: list[dict], now: float) -> list[dict]:
        spec = job["spec"]
        room = spec.get("parallelism", 1) - len(active)
        if room <= 0:
            return []
        if spec.get("completionMode") == "Indexed":
            busy = {pod_index(p) for p in active}
            if spec.get("podReplacementPolicy") == "Failed":
                busy |= {pod_index(p) for p in terminating}
            key = (lambda i: i) if spec.get("backoffLimitPerIndex") is not None else \
                (lambda i: None)
            todo = [i for i in range(spec["completions"])
                    if i not in st.completed and i not in st.failed_indexes and i not in busy
                    and st.backoff_until.get(key(i), 0) <= now]
            return [self._create_pod(job, st, i) for i in todo[:room]]
        if st.backoff_until.get(None, 0) > now:
            return []
        completions = spec.get("completions")
        left = completions - st.succeeded - len(active) if completions is not None else \
            (room if st.succeeded == 0 else 0)
        return [self._create_pod(job, st, None) for _ in range(max(0, min(room, left)))]

    def _create_pod(self, job: dict, st: JobState, idx: int | None) -> dict:
        meta, spec = job["metadata"], job["spec"]
        tmpl = copy.deepcopy(spec["template"])
        tmeta = tmpl.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        pod_spec = tmpl["spec"]
        if idx is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(idx)
            pod_spec.setdefault("hostname", f"{meta['name']}-{idx}")
            for c in pod_spec.get("containers", []):
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                        "apiVersion": "v1",
                        "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}})
            if spec.get("backoffLimitPerIndex") is not None:
                annotations[FAILURES_KEY] = str(st.index_failures[idx])
                if st.index_ignored[idx]:
                    annotations[IGNORED_KEY] = str(st.index_ignored[idx])
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-{idx}-" if idx is not None else
                f"{meta['name']}-",
                "namespace": meta["namespace"], "labels": labels, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                     "name": meta["name"], "uid": meta["uid"],
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": pod_spec,
        }
        created = self.c.create_pod(pod)
        self.c.events.record(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                             "Normal", "job-controller")
        return created

    def _delete_pod(self, st: JobState, job: dict, pod: dict, event: bool = True) -> None:
        st.expected.add(pod["metadata"]["uid"])
        self.c.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
        if event:
            self.c.events.record(job, "SuccessfulDelete",
                                 f"Deleted pod: {pod['metadata']['name']}", "Normal",
                                 "job-controller")

    @staticmethod
    def _condition(st: JobState, ctype: str, reason: str, message: str) -> bool:
        """Add a True condition once; True when it is new."""
        if any(c["type"] == ctype for c in st.conditions):
            return False
        st.conditions.append(condition(ctype, "True", reason, message, now_ts()))
        return True

    def _write(self, job: dict, st: JobState, active: list[dict], terminating: list[dict]) -> None:
        spec = job["spec"]
        status: dict = {}
        if st.conditions:
            status["conditions"] = copy.deepcopy(st.conditions)
        if st.start:
            status["startTime"] = st.start
        if st.completion_time:
            status["completionTime"] = st.completion_time
        if active:
            status["active"] = len(active)
        indexed = spec.get("completionMode") == "Indexed"
        succeeded = len(st.completed) if indexed else st.succeeded
        if succeeded:
            status["succeeded"] = succeeded
        if st.failed:
            status["failed"] = st.failed
        if indexed and st.completed:
            status["completedIndexes"] = compress_indexes(st.completed)
        if spec.get("backoffLimitPerIndex") is not None:
            status["failedIndexes"] = compress_indexes(st.failed_indexes)
        status["terminating"] = len(terminating)
        status["ready"] = sum(
            1 for p in active for c in p["status"].get("conditions") or []
            if c["type"] == "Ready" and c["status"] == "True")
        status["uncountedTerminatedPods"] = {}

        def put(obj: dict) -> None:
            obj["status"] = status

        self.store.update("jobs", job["metadata"]["namespace"], job["metadata"]["name"], put)
