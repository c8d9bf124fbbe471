"""Pod status as the kubelet renders it (generateAPIPodStatus + the status manager), as pure
functions of the kubelet's own view, plus the strategic-merge patch it sends.

The kubelet owns phase, the IPs, startTime, containerStatuses and the conditions
PodReadyToStartContainers, Initialized, Ready and ContainersReady. Everything else (PodScheduled
from the scheduler, DisruptionTarget from the API server's eviction, other writers' conditions)
it leaves alone: the patch merges conditions by type, so it cannot clobber them.
"""

from __future__ import annotations

import time
from typing import Any

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
MAX_TERMINATION_MESSAGE = 4096


def rfc3339(ns: int | float | None = None) -> str:
    """metav1.Time: RFC3339 with seconds."""
    secs = time.time() if ns is None else ns / 1e9
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def termination_message(path: str | None, policy: str, exit_code: int,
                        logs_tail: Any) -> str:
    """The kubelet's rule: the LAST 4096 bytes of the file; with FallbackToLogsOnError, an
    empty (or missing) file and a non-zero exit, the tail of the log (`logs_tail()`)."""
    data = b""
    if path:
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - MAX_TERMINATION_MESSAGE))
                data = f.read()
        except OSError:
            data = b""
    if not data and policy == "FallbackToLogsOnError" and exit_code != 0:
        return logs_tail()
    return data.decode("utf-8", "replace")


def pod_phase(restart_policy: str, states: list[tuple[dict, dict]],
              pod_is_terminal: bool) -> str:
    """The kubelet's getPhase for regular containers (`states`: (state, lastState) each).

    A container waiting to restart (lastState terminated) counts as stopped, not waiting:
    a crash-looping pod stays Running."""
    waiting = running = stopped = succeeded = 0
    for st, last in states:
        if "running" in st:
            running += 1
        elif "terminated" in st:
            stopped += 1
            if st["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "terminated" in (last or {}):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def conditions(phase: str, container_names: list[str], ready: dict[str, bool],
               sandbox_ready: bool) -> list[dict]:
    """The kubelet-owned conditions, in the kubelet's order, without timestamps."""
    out = [{"type": "PodReadyToStartContainers",
            "status": "True" if sandbox_ready else "False"}]
    init: dict[str, Any] = {"type": "Initialized", "status": "True"}
    if phase == "Succeeded":
        init["reason"] = "PodCompleted"
    out.append(init)
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        cready: dict[str, Any] = {"type": "ContainersReady", "status": "False", "reason": reason}
    else:
        unready = [n for n in container_names if not ready.get(n)]
        if unready:
            cready = {"type": "ContainersReady", "status": "False",
                      "reason": "ContainersNotReady",
                      "message": f"containers with unready status: [{' '.join(unready)}]"}
        else:
            cready = {"type": "ContainersReady", "status": "True"}
    out.append({**cready, "type": "Ready"})
    out.append(cready)
    return out


def container_status(spec: dict, image: str, image_id: str, container_id: str | None,
                     state: dict, last_state: dict, ready: bool, started: bool,
                     restart_count: int, created: bool) -> dict:
    """One containerStatuses entry. Once an instance exists the kubelet also reports its
    resources (the allocation: the spec's requests/limits) and its volume mounts."""
    cs: dict[str, Any] = {"name": spec["name"], "image": image, "imageID": image_id,
                          "ready": ready, "restartCount": restart_count, "started": started,
                          "state": state, "lastState": last_state}
    if container_id:
        cs["containerID"] = container_id
    if created:
        res = spec.get("resources") or {}
        alloc = {k: dict(res[k]) for k in ("requests", "limits") if res.get(k)}
        if alloc:
            cs["resources"] = alloc
        mounts = []
        for vm in spec.get("volumeMounts") or []:
            m: dict[str, Any] = {"name": vm["name"], "mountPath": vm["mountPath"]}
            if vm.get("readOnly"):
                m["readOnly"] = True
                m["recursiveReadOnly"] = "Disabled"
            mounts.append(m)
        if mounts:
            cs["volumeMounts"] = mounts
    return cs


class ConditionClock:
    """lastTransitionTime per condition type: changes only when the status does."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}

    def stamp(self, conds: list[dict], generation: int | None) -> list[dict]:
        now = rfc3339()
        out = []
        for c in conds:
            old = self._seen.get(c["type"])
            when = old[1] if old and old[0] == c["status"] else now
            self._seen[c["type"]] = (c["status"], when)
            full = {"type": c["type"], "status": c["status"], "reason": c.get("reason"),
                    "message": c.get("message"), "lastProbeTime": None,
                    "lastTransitionTime": when}
            if generation is not None:
                full["observedGeneration"] = generation
            out.append(full)
        return out


def status_patch(uid: str, status: dict, conds: list[dict], server_conditions: list[dict],
                 old_owned_keys: set[str]) -> dict:
    """The strategic merge patch: kubelet conditions merged by type (their absent fields
    nulled), keys the kubelet wrote before and no longer has (pod reason/message) removed,
    and the uid as a precondition (a re-created pod with the same name is not touched)."""
    body: dict[str, Any] = dict(status)
    for key in old_owned_keys - set(status):
        body[key] = None
    # the kubelet's order: others' conditions, its own, then PodScheduled (which it also
    # counts as its own, but the scheduler's entry is left as the scheduler wrote it)
    others = [c["type"] for c in server_conditions
              if c.get("type") not in KUBELET_CONDITIONS and c.get("type") != "PodScheduled"]
    tail = ["PodScheduled"] if any(c.get("type") == "PodScheduled"
                                   for c in server_conditions) else []
    body["$setElementOrder/conditions"] = [{"type": t} for t in
                                           others + [c["type"] for c in conds] + tail]
    body["conditions"] = conds
    return {"metadata": {"uid": uid}, "status": body}
