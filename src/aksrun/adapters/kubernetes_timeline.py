"""A Job's pods as task attempts on a time axis (pure: the compute lists, this reads).

Every attempt of an index is a pod of its own (restartPolicy Never), so the pods of an index,
oldest first, are its attempts; the API server and the kubelet already record each one's
times: `creationTimestamp` (the Job controller asked for it), the runner container's
`startedAt` and `finishedAt`. What is gone is gone: pods that pod GC or the Job's TTL removed
leave their task without attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..ports.compute import TaskSpan
from . import kubernetes_events as kev


def job_spans(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[TaskSpan]:
    """The attempts of every index that still has pods, sorted by index and attempt."""
    ended = kev.job_terminal(job)
    deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
    stopped_by = None
    if deleting:
        stopped_by = ("Deleted", "the Job was deleted (cancelled)")
    elif ended is not None and ended.kind == "job_failed":
        stopped_by = (ended.reason, ended.message)
    failed_indexes = kev.parse_indexes((job.get("status") or {}).get("failedIndexes"))
    by_index: dict[int, list[Mapping[str, Any]]] = {}
    for pod in pods:
        index = kev.pod_index(pod)
        if index is not None:
            by_index.setdefault(index, []).append(pod)
    spans = []
    for index, attempts in by_index.items():
        attempts.sort(key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "",
                                     (p.get("metadata") or {}).get("name") or ""))
        for attempt, pod in enumerate(attempts):
            last = attempt == len(attempts) - 1
            spans.append(_span(pod, index, attempt, last=last, job_over=ended is not None
                               or deleting, stopped_by=stopped_by,
                               index_failed=index in failed_indexes))
    return sorted(spans, key=lambda s: (s.index, s.attempt))


def _span(pod: Mapping[str, Any], index: int, attempt: int, *, last: bool, job_over: bool,
          stopped_by: tuple[str | None, str | None] | None, index_failed: bool) -> TaskSpan:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    state = kev.runner_status(pod).get("state") or {}
    terminated = state.get("terminated") or {}
    created = kev.epoch(meta.get("creationTimestamp"))
    started = _real(kev.epoch(terminated.get("startedAt")
                              or (state.get("running") or {}).get("startedAt")))
    finished = _real(kev.epoch(terminated.get("finishedAt")))
    phase = status.get("phase")
    if phase not in ("Succeeded", "Failed"):
        if job_over:  # the controller stops what is left when the Job ends
            reason, message = stopped_by or (None, None)
            return TaskSpan(index, attempt, created, started,
                            finished or kev.epoch(meta.get("deletionTimestamp")), "stopped",
                            reason=reason, message=message)
        if started is not None:
            return TaskSpan(index, attempt, created, started, None, "running")
        waiting = (state.get("waiting") or {}).get("reason")
        reason = "Unschedulable" if kev.unschedulable_message(pod) else waiting
        return TaskSpan(index, attempt, created, None, None, "pending", reason=reason,
                        message=kev.unschedulable_message(pod) or (
                            (state.get("waiting") or {}).get("message")))
    finished = finished or _last_transition(status) or created
    event = kev.finished_pod_event(pod, index, attempt)
    if event.kind == "succeeded":
        counts = kev.termination_message(pod)
        return TaskSpan(index, attempt, created, started, finished, "succeeded",
                        calls=_count(counts.get("calls")), raised=_count(counts.get("errors")),
                        retried=_count(counts.get("retried")))
    if meta.get("deletionTimestamp") and not kev.is_disrupted(pod) and stopped_by is not None:
        # stopped by the Job's own end (its failure elsewhere, a cancel), not a fault of its own
        return TaskSpan(index, attempt, created, started, finished, "stopped",
                        reason=stopped_by[0], message=stopped_by[1])
    reason, message = event.reason, event.message
    if meta.get("deletionTimestamp") and not kev.is_disrupted(pod):
        reason, message = "Deleted", (f"pod {meta.get('name')} was deleted before it finished "
                                      "(`kubectl delete pod`, or its node was removed)")
    outcome = "failed" if event.kind == "failed" or (last and (index_failed or job_over)) \
        else "retried"
    return TaskSpan(index, attempt, created, started, finished, outcome,  # type: ignore[arg-type]
                    reason=reason, message=message)


def _real(when: float | None) -> float | None:
    """The kubelet writes the epoch itself as startedAt of a container that never ran."""
    return when if when and when > 0 else None


def _last_transition(status: Mapping[str, Any]) -> float | None:
    times = [kev.epoch(c.get("lastTransitionTime")) for c in status.get("conditions") or []]
    return max((t for t in times if t), default=None)


def _count(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
