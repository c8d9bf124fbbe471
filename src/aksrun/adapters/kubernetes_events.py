"""Turn Kubernetes objects (as plain dicts) into task events with words a user can act on.

Pure functions: the compute adapter feeds them pods, Jobs and Events from its watches.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
from collections.abc import Mapping
from typing import Any

from ..ports.compute import EXIT_REASONS, FATAL_EXIT_CODES, TaskEvent

INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_FATAL_REASONS = {EXIT_REASONS[code] for code in FATAL_EXIT_CODES}


def pod_index(pod: Mapping[str, Any]) -> int | None:
    meta = pod.get("metadata") or {}
    value = (meta.get("labels") or {}).get(INDEX_LABEL) or (meta.get("annotations") or {}).get(
        INDEX_LABEL
    )
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def runner_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == "runner"), statuses[0] if statuses
                else {})


def termination(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = runner_status(pod).get("state") or {}
    return state.get("terminated")


def termination_message(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The runner's JSON termination message; {} when it wrote none (or logs stand in)."""
    terminated = termination(pod) or {}
    try:
        data = json.loads(terminated.get("message") or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def is_disrupted(pod: Mapping[str, Any]) -> bool:
    """Evicted, preempted, or drained: Kubernetes retries it (podFailurePolicy Ignore)."""
    status = pod.get("status") or {}
    if status.get("reason") in ("Evicted", "Preempting", "Terminated", "NodeShutdown"):
        return True
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            return condition.get("message") or "no node fits the pod"
    return None


def pull_failure(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    waiting = (runner_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in PULL_FAILURES:
        return waiting["reason"], waiting.get("message") or ""
    return None


# containerd's words for an image that will never come: the reference or the registry is
# wrong, or the cluster may not pull it. Anything else (429 throttling, timeouts, 5xx) the
# kubelet retries with back-off, and so does aksrun.
_PERMANENT_PULL = re.compile(
    r"not ?found|manifest unknown|name unknown|unauthorized|authentication required|denied|"
    r"forbidden|\b40[13]\b|no such host|invalid reference format", re.I)


def permanent_pull_failure(reason: str, message: str) -> bool:
    """Whether a pull failure can't heal by retrying (a transient one waits; see compute)."""
    if reason in ("InvalidImageName", "ErrImageNeverPull"):
        return True
    return bool(_PERMANENT_PULL.search(message or ""))


def requested(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    requests = (containers[0].get("resources") or {}).get("requests") or {}
    limits = (containers[0].get("resources") or {}).get("limits") or {}
    parts = [f"cpu={requests.get('cpu', '?')}", f"memory={requests.get('memory', '?')}"]
    if "nvidia.com/gpu" in limits:
        parts.append(f"gpu={limits['nvidia.com/gpu']}")
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if "node.kubernetes.io/instance-type" in selector:
        parts.append(f"node_type={selector['node.kubernetes.io/instance-type']}")
    return ", ".join(parts)


def finished_pod_event(pod: Mapping[str, Any], index: int, attempt: int) -> TaskEvent:
    """What a pod that reached Succeeded or Failed means for its task."""
    phase = (pod.get("status") or {}).get("phase")
    terminated = termination(pod) or {}
    message = termination_message(pod)
    name = (pod.get("metadata") or {}).get("name")
    if phase == "Succeeded" and message.get("digest"):
        return TaskEvent("succeeded", index, attempt, digest=message["digest"],
                         reason=str(message.get("errors", 0)))
    if is_disrupted(pod):
        why = (pod.get("status") or {}).get("message")
        return TaskEvent("retrying", index, attempt, reason="Evicted",
                         message=f"pod {name} was evicted or preempted"
                         + (f" ({why})" if why else "") + "; Kubernetes retries it")
    if terminated.get("reason") == "OOMKilled":
        limits = _limits(pod)
        running = message.get("running_call")  # the runner's progress, read by the kubelet
        during = f" while running call {running}" if isinstance(running, int) else ""
        return TaskEvent("failed", index, attempt, reason="OOMKilled",
                         message=f"pod {name} was OOMKilled at its memory limit "
                         f"({limits.get('memory', '?')}){during}; raise memory=")
    if message.get("error") in _FATAL_REASONS or message.get("error") == "DeadlineExceeded":
        return TaskEvent("failed", index, attempt, reason=message["error"],
                         message=message.get("message"))
    code = terminated.get("exitCode")
    running = message.get("running_call")  # the runner's progress: it ended mid-task
    if message.get("message"):
        detail = message["message"]
    elif isinstance(running, int):
        detail = f"the runner ended while running call {running}"
    else:
        detail = (terminated.get("message") or "")[-1500:]
    killed = ""
    if isinstance(code, int) and 128 < code < 128 + 65:
        with contextlib.suppress(ValueError):
            killed = f" (killed by {signal.Signals(code - 128).name})"
    return TaskEvent("retrying", index, attempt, reason=message.get("error") or "Error",
                     message=f"pod {name} exited with code {code}{killed}"
                     + (f": {detail}" if detail else ""))


def job_terminal(job: Mapping[str, Any]) -> TaskEvent | None:
    """The Job's own end: Complete, or Failed with the reason the controller gave."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        kind = condition.get("type")
        if kind == "Complete":
            return TaskEvent("job_succeeded")
        if kind == "Failed":
            reason = condition.get("reason") or "Failed"
            text = condition.get("message") or reason
            if reason == "PodFailurePolicy":  # the runner's own verdict, by its exit code
                match = re.search(r"exit code (\d+)", text)
                code = int(match.group(1)) if match else None
                reason = EXIT_REASONS.get(code, reason)
            if reason == "DeadlineExceeded":
                text = f"the job exceeded its deadline (activeDeadlineSeconds): {text}"
            return TaskEvent("job_failed", reason=reason, message=text)
    return None


def epoch(value: Any) -> float | None:
    """An API timestamp (RFC 3339 text, or the client's datetime) in epoch seconds."""
    if not value:
        return None
    from datetime import datetime

    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def job_ended(job: Mapping[str, Any]) -> float | None:
    """When the Job completed or failed (None while it runs)."""
    status = job.get("status") or {}
    if status.get("completionTime"):
        return epoch(status["completionTime"])
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return epoch(condition.get("lastTransitionTime"))
    return None


def _limits(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return (containers[0].get("resources") or {}).get("limits") or {}


def parse_indexes(text: str | None) -> set[int]:
    """`"0-2,5"` (completedIndexes / failedIndexes) -> {0, 1, 2, 5}."""
    result: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        result.update(range(int(low), int(high or low) + 1))
    return result


def failed_create_hint(message: str, namespace: str, service_account: str) -> str:
    """The Job controller's FailedCreate message, and what to do about it."""
    text = f"Kubernetes cannot create the job's pods: {message or 'no reason given'}."
    lowered = message.lower()
    if "serviceaccount" in lowered or "service account" in lowered:
        return (f"{text} The pods run as service account {service_account!r}, which does not "
                f"exist in namespace {namespace!r}: ask your cluster admin to run `aksrun admin "
                "add-user` for you, or set AKSRUN_SERVICE_ACCOUNT to one that exists.")
    if "exceeded quota" in lowered:
        return (f"{text} The namespace's ResourceQuota is used up: wait for other jobs to "
                "finish, ask for more quota, or lower cpu=/memory=/max_parallel=.")
    if "admission webhook" in lowered or "denied the request" in lowered:
        return (f"{text} A policy of the cluster refused the pod: ask your cluster admin "
                "which policy, and what it requires.")
    return f"{text} Ask your cluster admin, quoting this message."


def misfit(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why `pod` could never run on `node`, even empty (None: it fits). Only what aksrun's
    pods use: the node selector, NoSchedule/NoExecute taints, and cpu/memory/GPU requests
    against the node's allocatable."""
    from ..core.quantities import cpu_cores, memory_bytes

    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"node selector {key}={value}"
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return f"taint {taint.get('key')}={taint.get('value', '')}:{taint.get('effect')}"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    containers = spec.get("containers") or [{}]
    requests = (containers[0].get("resources") or {}).get("requests") or {}
    for name, amount in requests.items():
        have = allocatable.get(name)
        measure = cpu_cores if name == "cpu" else memory_bytes if name == "memory" else float
        if have is None or measure(str(amount)) > measure(str(have)):
            return f"Insufficient {name} ({name}={amount} asked, {have or 0} allocatable)"
    return None


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return (toleration.get("key") == taint.get("key")
            and toleration.get("value", "") == taint.get("value", ""))
