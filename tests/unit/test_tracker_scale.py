"""The watch tracker's work per event doesn't grow with the job (issue 11, item 9): finished
pods are dropped, and only pods in trouble are looked at again on every tick."""

from __future__ import annotations

import threading
import time

from aksrun.adapters import kubernetes_events as kev
from aksrun.adapters.kubernetes_compute import KubernetesCompute, _Tracker
from aksrun.ports.compute import JobHandle


def _pod(name: str, index: int, phase: str, waiting: dict | None = None) -> dict:
    status = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [{"name": "runner", "state": {"waiting": waiting}}]
    if phase == "Succeeded":
        status["containerStatuses"] = [{"name": "runner", "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "message": "{}"}}}]
    return {"metadata": {"name": name, "labels": {kev.INDEX_LABEL: str(index)},
                         "annotations": {}},
            "spec": {"containers": [{"name": "runner", "image": "r.io/x@sha256:" + "1" * 64}]},
            "status": status}


def _tracker() -> _Tracker:
    from kubernetes import client

    compute = KubernetesCompute(client.ApiClient(), "ns", image="r.io/x:1")
    return _Tracker(compute, JobHandle("job", "kubernetes"), watch=None,  # type: ignore[arg-type]
                    stop=threading.Event())


def test_finished_pods_leave_the_tracker():
    tracker = _tracker()
    for i in range(2000):
        list(tracker._on_pod("MODIFIED", _pod(f"job-{i}-x", i, "Running")))
        list(tracker._on_pod("MODIFIED", _pod(f"job-{i}-x", i, "Succeeded")))
    assert tracker.pods == {} and tracker.running == set()
    assert len(tracker.finished) == 2000
    started = time.perf_counter()
    assert tracker._fail_fast() is None
    assert time.perf_counter() - started < 0.01


def test_only_pods_in_trouble_are_watched_each_tick():
    tracker = _tracker()
    for i in range(500):
        list(tracker._on_pod("MODIFIED", _pod(f"job-{i}-x", i, "Running")))
    throttled = {"reason": "ErrImagePull", "message": "429 Too Many Requests"}
    list(tracker._on_pod("MODIFIED", _pod("job-500-x", 500, "Pending", throttled)))
    assert list(tracker.pull_failed) == ["job-500-x"]
    assert tracker._fail_fast() is None  # transient: waits
    list(tracker._on_pod("MODIFIED", _pod("job-500-x", 500, "Running")))
    assert tracker.pull_failed == {} and tracker.pulling == {}
