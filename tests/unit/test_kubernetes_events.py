"""Pod, Job and autoscaler states become the task events and messages users act on."""

from __future__ import annotations

import json

import aksrun
from aksrun.adapters import kubernetes_events as kev


def pod(phase="Running", index=0, state=None, conditions=(), reason=None, message=None,
        memory="1Gi", waiting=None):
    status = {"phase": phase, "conditions": list(conditions)}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    container = {"name": "runner", "image": "acr.io/runner:1", "imageID": "", "ready": False,
                 "restartCount": 0, "state": state or {}}
    if waiting:
        container["state"] = {"waiting": waiting}
    status["containerStatuses"] = [container]
    return {
        "metadata": {"name": f"job-x-{index}-abcde",
                     "labels": {kev.INDEX_LABEL: str(index)}},
        "spec": {"containers": [{"name": "runner", "image": "acr.io/runner:1",
                                 "resources": {"requests": {"cpu": "2", "memory": memory},
                                               "limits": {"memory": memory}}}]},
        "status": status,
    }


def terminated(code=0, reason="Completed", message=""):
    return {"terminated": {"exitCode": code, "reason": reason, "message": message}}


def test_success_carries_the_output_digest():
    p = pod("Succeeded", 3, terminated(0, message=json.dumps({"digest": "ab" * 32,
                                                              "errors": 1})))
    event = kev.finished_pod_event(p, 3, 0)
    assert (event.kind, event.index, event.digest) == ("succeeded", 3, "ab" * 32)


def test_oom_names_the_limit_and_the_fix():
    event = kev.finished_pod_event(pod("Failed", 1, terminated(137, "OOMKilled"),
                                       memory="512Mi"), 1, 0)
    assert event.kind == "failed" and event.reason == "OOMKilled"
    assert "512Mi" in event.message and "raise memory=" in event.message


def test_a_container_oomkilled_whole_names_the_call_it_was_running():
    """On cgroup v2 the OOM killer takes the whole container, runner included; the kubelet
    still reports the termination-message file, where the runner wrote which call ran."""
    from aksrun.core import job as jobmod
    from aksrun.core.lifecycle import _task_error

    progress = json.dumps({"running_call": 7})
    event = kev.finished_pod_event(pod("Failed", 1, terminated(137, "OOMKilled", progress),
                                       memory="512Mi"), 1, 0)
    assert event.reason == "OOMKilled" and "while running call 7" in event.message
    record = jobmod.JobRecord(
        job_id="f-20261124-101500-abcde", function_name="f", function_sha256="0" * 64,
        kind="map", calls=8, chunksize=4, chunks=(jobmod.Chunk(0, 0, 4, "1" * 64),
                                                  jobmod.Chunk(1, 4, 4, "2" * 64)),
        options={"memory": "512Mi"}, max_parallel=2, user="u", backend="kubernetes")
    error = _task_error(event, record)
    assert isinstance(error, aksrun.CallOutOfMemoryError)
    assert "task 1 was OOMKilled while running call 7" in str(error)
    assert "memory='512Mi'" in str(error) and "raise memory=" in str(error)


def test_a_runner_killed_mid_task_says_which_call_was_running():
    progress = json.dumps({"running_call": 12})
    event = kev.finished_pod_event(pod("Failed", 1, terminated(137, "Error", progress)), 1, 0)
    assert event.kind == "retrying"
    assert "exited with code 137 (killed by SIGKILL)" in event.message
    assert "while running call 12" in event.message and "{" not in event.message


def test_eviction_is_retried_and_said_so():
    p = pod("Failed", 2, terminated(137, "Error"), reason="Evicted",
            conditions=[{"type": "DisruptionTarget", "status": "True"}],
            message="The node was low on resource: memory.")
    event = kev.finished_pod_event(p, 2, 0)
    assert event.kind == "retrying" and event.reason == "Evicted"
    assert "low on resource" in event.message


def test_integrity_exit_fails_with_runner_message():
    msg = json.dumps({"error": "IntegrityError", "message": "input chunk 0 does not match"})
    event = kev.finished_pod_event(pod("Failed", 0, terminated(10, "Error", msg)), 0, 0)
    assert event.kind == "failed" and event.reason == "IntegrityError"
    assert "does not match" in event.message


def test_other_failures_are_retried_with_exit_code():
    event = kev.finished_pod_event(pod("Failed", 0, terminated(1, "Error", "Traceback...")),
                                   0, 1)
    assert event.kind == "retrying" and "exited with code 1" in event.message


def test_unschedulable_and_pull_failures_are_recognised():
    p = pod("Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                    "reason": "Unschedulable",
                                    "message": "0/3 nodes are available: 3 Insufficient cpu."}])
    assert "Insufficient cpu" in kev.unschedulable_message(p)
    assert kev.requested(p) == "cpu=2, memory=1Gi"
    p = pod("Pending", waiting={"reason": "ImagePullBackOff", "message": "not found"})
    assert kev.pull_failure(p) == ("ImagePullBackOff", "not found")
    assert kev.pull_failure(pod()) is None


def test_job_conditions():
    assert kev.job_terminal({"status": {}}) is None
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert kev.job_terminal(done).kind == "job_succeeded"
    late = {"status": {"conditions": [{"type": "Failed", "status": "True",
                                       "reason": "DeadlineExceeded", "message": "too long"}]}}
    event = kev.job_terminal(late)
    assert event.kind == "job_failed" and "activeDeadlineSeconds" in event.message


def test_index_ranges():
    assert kev.parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert kev.parse_indexes("") == set() and kev.parse_indexes(None) == set()


def test_connection_strings_reach_pods_only_for_a_loopback_emulator(monkeypatch, tmp_path):
    import pytest

    from aksrun.adapters.kubernetes_compute import redact, storage_env
    from aksrun.core.config import load_config
    from aksrun.errors import ConfigError

    azurite = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=abc==;"
               "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
    real = ("DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=SECRET==;"
            "EndpointSuffix=core.windows.net")
    monkeypatch.chdir(tmp_path)
    base = {"backend": "kubernetes", "store": "az://c/p"}
    env = storage_env(load_config({**base, "storage_connection_string": azurite}))
    assert env["AKSRUN_STORAGE_CONNECTION_STRING"] == azurite
    with pytest.raises(ConfigError, match="workload identity"):
        storage_env(load_config({**base, "storage_connection_string": real}))
    assert "SECRET" not in redact(real) and "AccountKey=<redacted>" in redact(real)


def _node(cpu="4", memory="16Gi", labels=None, taints=None, gpus=None):
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = gpus
    return {"metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux", **(labels or {})}},
            "spec": {"taints": taints or []}, "status": {"allocatable": allocatable}}


def _pod_asking(**requests):
    return {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                     "containers": [{"resources": {"requests": requests}}]}}


def test_misfit_tells_a_pod_that_never_fits_from_one_that_waits():
    from aksrun.adapters.kubernetes_events import misfit

    assert misfit(_pod_asking(cpu="500m", memory="1Gi"), _node()) is None
    assert misfit(_pod_asking(cpu="3860m"), _node(cpu="3860m")) is None
    assert misfit(_pod_asking(cpu="64"), _node()).startswith("Insufficient cpu")
    assert misfit(_pod_asking(memory="32Gi"), _node(memory="16373476Ki")).startswith(
        "Insufficient memory")
    assert misfit(_pod_asking(**{"nvidia.com/gpu": "1"}), _node()).startswith(
        "Insufficient nvidia.com/gpu")
    spot = {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot",
            "effect": "NoSchedule"}
    assert misfit(_pod_asking(cpu="1"), _node(taints=[spot])).startswith("taint ")
    tolerant = _pod_asking(cpu="1")
    tolerant["spec"]["tolerations"] = [{**spot, "operator": "Equal"}]
    assert misfit(tolerant, _node(taints=[spot])) is None
    picky = _pod_asking(cpu="1")
    picky["spec"]["nodeSelector"]["node.kubernetes.io/instance-type"] = "Standard_NC6"
    assert misfit(picky, _node()) == "node selector node.kubernetes.io/instance-type=Standard_NC6"
