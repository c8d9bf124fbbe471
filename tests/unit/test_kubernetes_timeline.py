"""A Job's pods become its tasks' attempts on a time axis: the pods of an index, oldest first,
are its attempts, timed by the API server and the kubelet."""

from __future__ import annotations

import json

from aksrun.adapters import kubernetes_events as kev
from aksrun.adapters.kubernetes_timeline import job_spans


def at(second: int) -> str:
    return f"2026-12-01T10:00:{second:02d}Z"


def pod(index, created, phase, started=None, finished=None, code=None, message=None,
        deleted=None, waiting=None, conditions=()):
    state = {}
    if finished is not None:
        state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                "startedAt": at(started), "finishedAt": at(finished),
                                **({"message": message} if message else {})}}
    elif started is not None:
        state = {"running": {"startedAt": at(started)}}
    elif waiting:
        state = {"waiting": {"reason": waiting, "message": f"{waiting} for the image"}}
    meta = {"name": f"job-{index}-{created}", "creationTimestamp": at(created),
            "labels": {kev.INDEX_LABEL: str(index)}}
    if deleted is not None:
        meta["deletionTimestamp"] = at(deleted)
    return {"metadata": meta, "status": {"phase": phase, "conditions": list(conditions),
                                         "containerStatuses": [{"name": "runner",
                                                                "state": state}]}}


def job(conditions=(), failed_indexes=None, deleting=False):
    status = {"conditions": list(conditions)}
    if failed_indexes:
        status["failedIndexes"] = failed_indexes
    meta = {"name": "job"}
    if deleting:
        meta["deletionTimestamp"] = at(50)
    return {"metadata": meta, "spec": {"completions": 3}, "status": status}


def done(calls=2, errors=0, retried=0):
    return json.dumps({"digest": "ab" * 32, "calls": calls, "errors": errors,
                       "retried": retried})


def test_each_pod_of_an_index_is_an_attempt_in_order_with_its_times_and_counts():
    pods = [
        pod(1, 5, "Succeeded", 6, 9, 0, done(2, 1, 3)),  # listed before the pod it retried
        pod(1, 0, "Failed", 1, 4, 137),
        pod(0, 0, "Succeeded", 2, 3, 0, done()),
        pod(2, 0, "Running", 1),
    ]
    spans = job_spans(job(), pods)
    assert [(s.index, s.attempt, s.outcome) for s in spans] == [
        (0, 0, "succeeded"), (1, 0, "retried"), (1, 1, "succeeded"), (2, 0, "running")]
    first, retry = spans[1], spans[2]
    assert (first.created, first.started, first.finished) == (
        kev.epoch(at(0)), kev.epoch(at(1)), kev.epoch(at(4)))
    assert first.reason == "Error" and "exited with code 137" in first.message
    assert (retry.calls, retry.raised, retry.retried) == (2, 1, 3)
    assert spans[3].finished is None


def test_the_last_failed_pod_of_a_failed_index_failed_and_an_eviction_is_retried():
    evicted = [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                "lastTransitionTime": at(3)}]
    pods = [pod(0, 0, "Failed", 1, 2, 1), pod(0, 3, "Failed", 4, 5, 1),
            pod(1, 0, "Failed", 1, 3, 143, deleted=3, conditions=evicted),
            pod(1, 4, "Succeeded", 5, 6, 0, done())]
    failed = {"type": "Failed", "status": "True", "reason": "FailedIndexes",
              "lastTransitionTime": at(7)}
    spans = job_spans(job([failed], failed_indexes="0"), pods)
    assert [(s.index, s.outcome, s.reason) for s in spans] == [
        (0, "retried", "Error"), (0, "failed", "Error"), (1, "retried", "Evicted"),
        (1, "succeeded", None)]


def test_a_failed_pod_of_a_running_job_is_a_retry_on_its_way():
    spans = job_spans(job(), [pod(0, 0, "Failed", 1, 2, 1)])
    assert [s.outcome for s in spans] == ["retried"]


def test_pods_the_ending_job_stopped_are_stopped_with_its_reason():
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
              "message": "Job was active longer than specified deadline",
              "lastTransitionTime": at(20)}
    pods = [pod(0, 0, "Running", 1, deleted=20), pod(1, 0, "Pending", deleted=20),
            pod(2, 0, "Failed", 1, 21, 143, deleted=20)]
    spans = job_spans(job([failed]), pods)
    assert [(s.index, s.outcome, s.reason) for s in spans] == [
        (0, "stopped", "DeadlineExceeded"), (1, "stopped", "DeadlineExceeded"),
        (2, "stopped", "DeadlineExceeded")]
    assert spans[0].finished == kev.epoch(at(20)) and spans[1].started is None


def test_a_pod_someone_deleted_is_a_retry_that_says_so():
    spans = job_spans(job(), [pod(0, 0, "Failed", 1, 2, 137, deleted=2),
                              pod(0, 3, "Running", 4)])
    assert [(s.outcome, s.reason) for s in spans] == [("retried", "Deleted"), ("running", None)]
    assert "was deleted" in spans[0].message


def test_a_waiting_pod_is_pending_with_what_it_waits_for():
    unschedulable = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/1 nodes are available: 1 Insufficient cpu."}]
    spans = job_spans(job(), [pod(0, 0, "Pending", waiting="ImagePullBackOff"),
                              pod(1, 0, "Pending", conditions=unschedulable)])
    assert [(s.outcome, s.reason, s.started) for s in spans] == [
        ("pending", "ImagePullBackOff", None), ("pending", "Unschedulable", None)]
    assert "Insufficient cpu" in spans[1].message


def test_a_container_that_never_ran_has_no_start():
    """The kubelet reports startedAt 1970-01-01 for a container that failed to start."""
    never = pod(0, 0, "Failed", 0, 2, 128)
    never["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"] = (
        "1970-01-01T00:00:00Z")
    (span,) = job_spans(job(), [never])
    assert span.started is None and span.finished == kev.epoch(at(2))
