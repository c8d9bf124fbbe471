"""The Job manifest: valid for every AKS-supported Kubernetes minor (real OpenAPI schemas,
strict), loadable by the official client's models, and carrying the semantics aksrun relies on.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from aksrun.adapters import kubernetes_manifest as km
from aksrun.core.options import make_options
from aksrun.core.quantities import memory_bytes
from aksrun.errors import ConfigError
from aksrun.ports.compute import FATAL_EXIT_CODES, LaunchRequest

# Kubernetes minors AKS supports (and kubernetes-validate ships schemas for), as the exact
# version strings `kubernetes_validate.validate` takes.
AKS_KUBERNETES_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0")

JOB_ID = "train-20261124-101500-k3x9q"
DIGEST = "0123456789abcdef" * 4
STORE = "az://aksrun-alice"
IMAGE = "myacr.azurecr.io/aksrun-runner:py3.11-0.1.0"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
POINTERS = {"AKSRUN_STORE", "AKSRUN_JOB_ID", "AKSRUN_JOB_DIGEST", "AKSRUN_TERMINATION_LOG",
            "AKSRUN_MEMORY_LIMIT", "AKSRUN_MEMORY_STOP_AT"}


def request(options: dict[str, Any] | None = None, **changes: Any) -> LaunchRequest:
    fields: dict[str, Any] = dict(
        job_id=JOB_ID,
        job_digest=DIGEST,
        store_url=STORE,
        function_name="mymodule.train",
        tasks=1,
        parallelism=1,
        calls=1,
        chunksize=1,
        options=make_options(**(options or {})),
        user="alice",
    )
    fields.update(changes)
    return LaunchRequest(**fields)


# name -> (LaunchRequest, extra build_job keyword arguments)
CASES: dict[str, tuple[LaunchRequest, dict[str, Any]]] = {
    "defaults": (request(), {}),
    "gpu": (request({"gpu": 1, "memory": "16Gi", "cpu": "4"}), {}),
    "node-type-alias": (request({"node_type": "gpu-a100", "gpu": 1}), {}),
    "raw-vm-size": (request({"node_type": "Standard_D8s_v5", "cpu": "7500m"}), {}),
    "spot": (request({"spot": True}), {}),
    "env": (
        request(
            {"env": {"OMP_NUM_THREADS": "4", "MY_SETTING": "a b c", "EMPTY": ""}},
            env={"AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000000"},
        ),
        {
            "extra_env": {"AKSRUN_LOG_LEVEL": "debug"},
            "storage_env": {"AZURE_STORAGE_ACCOUNT": "aksrunstore"},
        },
    ),
    "timeout-deadline": (request({"timeout": "30m"}, deadline_seconds=2 * 3600 + 0.5), {}),
    "big-map": (
        request({"memory": "512Mi", "cpu": "250m"}, tasks=5000, parallelism=200, calls=500_000,
                chunksize=100),
        {"max_failed_indexes": 50},
    ),
    "huge-map-clamped": (
        request(tasks=150_000, parallelism=150_000, calls=150_000), {}
    ),
    "everything": (
        request(
            {"gpu": 2, "node_type": "gpu-h100", "spot": True, "memory": "1G", "cpu": "8",
             "timeout": 60, "env": {"HOME": "/work/home"}},
            tasks=8, parallelism=3, calls=80, chunksize=10, deadline_seconds=900,
            backoff_limit_per_index=0,
        ),
        {"ttl_seconds_after_finished": 3600},
    ),
}


def build(name: str) -> dict[str, Any]:
    req, kwargs = CASES[name]
    return km.build_job(
        req, namespace="aksrun-alice", image=IMAGE, service_account="aksrun", **kwargs
    )


def container(job: dict[str, Any]) -> dict[str, Any]:
    (runner,) = job["spec"]["template"]["spec"]["containers"]
    return runner


def env_of(job: dict[str, Any]) -> dict[str, str]:
    entries = container(job)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e["value"] for e in entries}


@pytest.fixture(scope="module")
def kubernetes_validate():
    """Imported here, not at collection: only this module pays for it."""
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions

    shipped = set(all_versions())
    missing = [v for v in AKS_KUBERNETES_VERSIONS if v not in shipped]
    assert not missing, f"kubernetes-validate has no schemas for {missing}; upgrade it"
    return kubernetes_validate


# -- schema and model validation ------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_valid_for_every_aks_kubernetes_version(name, kubernetes_validate):
    job = build(name)
    for version in AKS_KUBERNETES_VERSIONS:
        try:
            used = kubernetes_validate.validate(job, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: invalid for Kubernetes {version} at {path}: {exc.message}")
        assert used == version.rsplit(".", 1)[0]  # its own schema, not a fallback


@pytest.mark.parametrize("name", CASES)
def test_loads_into_the_official_client_models(name):
    from kubernetes.client import ApiClient, V1Job

    job = build(name)
    strict = V1Job.model_validate(job)  # pydantic, extra="forbid": unknown fields fail
    assert strict.spec.completion_mode == "Indexed"
    api = ApiClient()
    loaded = api.deserialize(json.dumps(job), "V1Job", "application/json")
    assert isinstance(loaded, V1Job)
    # from_dict/deserialize silently drop unknown keys: a lossless round trip proves none.
    assert api.sanitize_for_serialization(loaded) == job
    assert api.sanitize_for_serialization(strict) == job


def test_strict_validation_really_catches_mistakes(kubernetes_validate):
    from kubernetes.client import V1Job

    job = build("defaults")
    job["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, AKS_KUBERNETES_VERSIONS[-1], strict=True)
    with pytest.raises(ValueError, match="bogusField"):
        V1Job.model_validate(job)


# -- semantics ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_common_shape(name):
    req, kwargs = CASES[name]
    job = build(name)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    runner = container(job)

    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == req.job_id
    assert job["metadata"]["namespace"] == "aksrun-alice"
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == req.tasks
    assert 1 <= spec["parallelism"] <= min(req.parallelism, req.tasks)
    assert spec["backoffLimitPerIndex"] == req.backoff_limit_per_index
    assert "backoffLimit" not in spec  # per-index limits replace the global one
    assert spec["ttlSecondsAfterFinished"] == kwargs.get(
        "ttl_seconds_after_finished", km.DEFAULT_TTL_SECONDS
    )
    # longest pod hostname the Job controller will make must be a DNS label
    assert len(f"{req.job_id}-{req.tasks - 1}") <= 63

    # podFailurePolicy: fatal runner codes fail the Job; disruptions are ignored
    rules = spec["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob"]
    assert len(fail) == 1
    codes = fail[0]["onExitCodes"]
    assert codes["containerName"] == runner["name"] == "runner"
    assert codes["operator"] == "In"
    assert tuple(codes["values"]) == tuple(sorted(FATAL_EXIT_CODES))
    assert 0 not in codes["values"]  # the API server rejects 0 with In
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert ignore == [{"action": "Ignore", "onPodConditions": [
        {"type": "DisruptionTarget", "status": "True"}]}]
    assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy

    # labels and annotations
    meta = job["metadata"]
    for labels in (meta["labels"], spec["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/managed-by"] == "aksrun"
        assert labels["app.kubernetes.io/name"] == "aksrun"
        assert labels["aksrun.io/job-id"] == req.job_id
        assert labels["aksrun.io/user"] == "alice"
        assert labels["aksrun.io/function"] == "mymodule.train"
        for value in labels.values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), value
    assert spec["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert meta["annotations"] == {
        "aksrun.io/job-digest": DIGEST,
        "aksrun.io/function": req.function_name,
        "aksrun.io/calls": str(req.calls),
        "aksrun.io/chunksize": str(req.chunksize),
        "aksrun.io/tasks": str(req.tasks),
        "aksrun.io/store": STORE,
    }

    # the pod: service account, the runner command, no payload anywhere
    assert pod["serviceAccountName"] == "aksrun"
    assert runner["image"] == IMAGE
    assert runner["command"] == ["python", "-m", "aksrun.runner"]
    assert "args" not in runner
    assert runner["workingDir"] == "/work"
    assert runner["terminationMessagePath"] == "/dev/termination-log"
    assert runner["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = env_of(job)
    assert env["AKSRUN_STORE"] == STORE
    assert env["AKSRUN_JOB_ID"] == req.job_id
    assert env["AKSRUN_JOB_DIGEST"] == DIGEST
    assert env["AKSRUN_TERMINATION_LOG"] == "/dev/termination-log"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == "/tmp"
    # the runner stops a call a little before the kernel would kill the whole container
    limit = runner["resources"]["limits"]["memory"]
    assert int(env["AKSRUN_MEMORY_LIMIT"]) == memory_bytes(limit)
    assert 0.8 <= float(env["AKSRUN_MEMORY_STOP_AT"]) < 1
    assert {k for k in env if k.startswith("AKSRUN_")} - POINTERS <= set(
        kwargs.get("extra_env", {})
    )
    for key, value in env.items():
        assert len(value) <= 256, f"env {key} carries {len(value)} characters: not a pointer"
    assert all("value" in e and "valueFrom" not in e for e in runner["env"])
    assert len(json.dumps(job)) < 8192  # size does not grow with the data

    # resources: memory request == limit; CPU request only (see build_job)
    resources = runner["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == req.options.memory
    assert resources["requests"]["cpu"] == req.options.cpu
    assert "cpu" not in resources["limits"]

    # security context
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert runner["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False

    # writable emptyDirs for everything written under a read-only root
    mounts = {m["mountPath"]: m["name"] for m in runner["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/dev/shm", "/tmp", "/home/aksrun", "/work"}
    assert set(mounts.values()) == set(volumes)
    shm = volumes[mounts["/dev/shm"]]["emptyDir"]
    assert shm["medium"] == "Memory"

    assert memory_bytes(shm["sizeLimit"]) == memory_bytes(req.options.memory) // 2
    for path in ("/tmp", "/home/aksrun", "/work"):
        assert volumes[mounts[path]] == {"name": mounts[path], "emptyDir": {}}


def test_defaults_have_no_scheduling_constraints():
    job = build("defaults")
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "tolerations" not in pod and "affinity" not in pod
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "maxFailedIndexes" not in job["spec"]
    assert "nvidia.com/gpu" not in container(job)["resources"]["limits"]
    assert env_of(job)["HOME"] == "/home/aksrun"


def test_gpu_requests_gpus_and_tolerates_the_aks_gpu_taint():
    job = build("gpu")
    pod = job["spec"]["template"]["spec"]
    resources = container(job)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"] == [
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    ]
    assert "node.kubernetes.io/instance-type" not in pod["nodeSelector"]


def test_node_type_alias_selects_the_vm_size():
    pod = build("node-type-alias")["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == "Standard_NC24ads_A100_v4"
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_gpu_vm_size_tolerates_gpu_taint_even_without_gpu_request():
    job = km.build_job(
        request({"node_type": "Standard_NC6s_v3"}), namespace="n", image=IMAGE,
        service_account="sa",
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "sku"
    assert "nvidia.com/gpu" not in container(job)["resources"]["limits"]


def test_raw_vm_size_is_used_as_is():
    pod = build("raw-vm-size")["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == "Standard_D8s_v5"
    assert "tolerations" not in pod


def test_spot_tolerates_and_requires_spot_nodes():
    pod = build("spot")["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{
        "key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal",
        "value": "spot", "effect": "NoSchedule",
    }]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [
        {"key": "kubernetes.azure.com/scalesetpriority", "operator": "In", "values": ["spot"]}
    ]}]


def test_env_layers_and_pointers_win():
    env = env_of(build("env"))
    assert env["OMP_NUM_THREADS"] == "4" and env["MY_SETTING"] == "a b c" and env["EMPTY"] == ""
    assert env["AZURE_CLIENT_ID"] == "00000000-0000-0000-0000-000000000000"
    assert env["AZURE_STORAGE_ACCOUNT"] == "aksrunstore"
    assert env["AKSRUN_LOG_LEVEL"] == "debug"
    names = [e["name"] for e in container(build("env"))["env"]]
    assert names[:4] == ["AKSRUN_STORE", "AKSRUN_JOB_ID", "AKSRUN_JOB_DIGEST",
                         "AKSRUN_TERMINATION_LOG"]

    hijack = km.build_job(
        request(), namespace="n", image=IMAGE, service_account="sa",
        extra_env={"AKSRUN_JOB_ID": "other", "AKSRUN_STORE": "file:///elsewhere"},
        storage_env={"AKSRUN_JOB_DIGEST": "0" * 64},
    )
    env = env_of(hijack)
    assert (env["AKSRUN_JOB_ID"], env["AKSRUN_STORE"], env["AKSRUN_JOB_DIGEST"]) == (
        JOB_ID, STORE, DIGEST
    )
    # conveniences may be replaced by the user
    assert env_of(build("everything"))["HOME"] == "/work/home"


def test_deadline_backstop_is_whole_seconds_rounded_up():
    assert build("timeout-deadline")["spec"]["activeDeadlineSeconds"] == 7201
    assert build("everything")["spec"]["activeDeadlineSeconds"] == 900


def test_big_map_parallelism_and_failed_index_budget():
    spec = build("big-map")["spec"]
    assert (spec["completions"], spec["parallelism"], spec["maxFailedIndexes"]) == (5000, 200, 50)
    small = km.build_job(
        request(tasks=3, parallelism=50), namespace="n", image=IMAGE, service_account="sa",
        max_failed_indexes=10,
    )["spec"]
    assert (small["parallelism"], small["maxFailedIndexes"]) == (3, 3)


def test_huge_map_is_clamped_to_api_server_limits():
    spec = build("huge-map-clamped")["spec"]
    # above 100k completions with backoffLimitPerIndex the server demands these bounds
    assert spec["completions"] == 150_000
    assert spec["parallelism"] == 10_000
    assert spec["maxFailedIndexes"] == 10_000


def test_everything_combined():
    job = build("everything")
    pod = job["spec"]["template"]["spec"]
    assert [t["key"] for t in pod["tolerations"]] == [
        "sku", "kubernetes.azure.com/scalesetpriority"
    ]
    assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == "Standard_NC40ads_H100_v5"
    assert container(job)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "500000000"
    assert job["spec"]["backoffLimitPerIndex"] == 0
    assert job["spec"]["parallelism"] == 3


def test_pure_and_deterministic():
    req, _ = CASES["everything"]
    before = copy.deepcopy(req.options.to_dict())
    first = km.build_job(req, namespace="n", image=IMAGE, service_account="sa")
    second = km.build_job(req, namespace="n", image=IMAGE, service_account="sa")
    assert first == second and first is not second
    first["spec"]["template"]["spec"]["containers"][0]["env"].clear()
    assert km.build_job(req, namespace="n", image=IMAGE, service_account="sa") == second
    assert req.options.to_dict() == before


def test_rejects_jobs_whose_pod_hostnames_are_invalid():
    long_id = "a" * 40 + "-20261124-101500-k3x9q"  # 62 characters
    with pytest.raises(ConfigError, match="DNS label"):
        km.build_job(request(job_id=long_id, tasks=10), namespace="n", image=IMAGE,
                     service_account="sa")
    with pytest.raises(ConfigError, match="at least one task"):
        km.build_job(request(tasks=0), namespace="n", image=IMAGE, service_account="sa")


def test_label_values_are_always_valid():
    for text in ("mymodule.train", "<lambda>", "pkg.mod:Class.method", "_x_", "", "é" * 10,
                 "a" * 100 + "-b", "Mod.Run"):
        value = km.label_value(text)
        assert len(value) <= 63 and value and LABEL_VALUE.match(value), (text, value)
    assert km.label_value("<lambda>") == "lambda"
    job = km.build_job(request(function_name="__main__.<lambda>"), namespace="n", image=IMAGE,
                       service_account="sa")
    assert job["metadata"]["labels"]["aksrun.io/function"] == "main__.-lambda"
    assert job["metadata"]["annotations"]["aksrun.io/function"] == "__main__.<lambda>"


def test_selectors():
    assert km.job_label_selector(JOB_ID) == f"aksrun.io/job-id={JOB_ID}"
    assert km.managed_selector() == "app.kubernetes.io/managed-by=aksrun"
    assert km.managed_selector("alice") == (
        "app.kubernetes.io/managed-by=aksrun,aksrun.io/user=alice"
    )
    labels = build("defaults")["metadata"]["labels"]
    for selector in (km.job_label_selector(JOB_ID), km.managed_selector("alice")):
        for term in selector.split(","):
            key, value = term.split("=")
            assert labels[key] == value


def test_to_yaml_round_trips():
    import yaml

    job = build("everything")
    text = km.to_yaml(job)
    assert text.startswith("apiVersion: batch/v1\nkind: Job\n")
    assert yaml.safe_load(text) == job
    assert list(yaml.safe_load_all(km.to_yaml([job, job]))) == [job, job]


def test_module_is_pure_to_import():
    code = (
        "import sys, aksrun.adapters.kubernetes_manifest\n"
        "bad = [m for m in ('kubernetes', 'yaml', 'kubernetes_validate', 'azure') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_deadline_backstop_outlasts_a_cluster_that_runs_one_pod_at_a_time():
    """activeDeadlineSeconds must not end a healthy job that merely waits its turn (issue 11,
    item 7): 100 one-minute tasks on room for one pod, each retried, plus the pending time."""
    from kubernetes import client

    from aksrun.adapters.kubernetes_compute import KubernetesCompute
    from aksrun.core.lifecycle import INFRA_RETRIES, plan_job

    options = make_options(timeout="60s", retries=1)
    plan = plan_job(lambda x: x, [((i,), {}) for i in range(100)], options, kind="map",
                    store_url="file:///tmp/s", user="u", backend="kubernetes", parallel=100,
                    chunksize=1)
    compute = KubernetesCompute(client.ApiClient(), "ns", image="r.io/x:1",
                                pending_timeout=1800)
    deadline = compute.job_manifest(plan.request)["spec"]["activeDeadlineSeconds"]
    serial = 100 * 60 * (1 + 1) * (INFRA_RETRIES + 1)  # every attempt, one after another
    assert deadline >= serial + 1800
