"""The Kubernetes objects of one submission, built as plain dicts by pure functions.

No I/O and no `kubernetes` import: the same dict is validated in tests against the real
OpenAPI schemas of every AKS-supported minor version, posted by the executor, and printed by
`aksrun` as YAML. One submission is ONE Indexed Job; the pod carries pointers only (store URL,
job id, digest); every payload travels through the store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..core.options import resolve_node_type
from ..core.quantities import memory_bytes
from ..errors import ConfigError
from ..ports.compute import EXIT_TIMEOUT, FATAL_EXIT_CODES, LaunchRequest

RUNNER_CONTAINER = "runner"
RUNNER_COMMAND = ("python", "-m", "aksrun.runner")
TERMINATION_LOG = "/dev/termination-log"
HOME_DIR = "/home/aksrun"
WORK_DIR = "/work"
RUN_AS_USER = 1000  # explicit, so images built as root still run as non-root
DEFAULT_TTL_SECONDS = 7 * 24 * 3600  # finished Jobs (and their logs) stay a week for `aksrun logs`

MANAGED_BY = "app.kubernetes.io/managed-by"
APP_NAME = "app.kubernetes.io/name"
LABEL_JOB_ID = "aksrun.io/job-id"
LABEL_USER = "aksrun.io/user"
LABEL_FUNCTION = "aksrun.io/function"
ANN_JOB_DIGEST = "aksrun.io/job-digest"
ANN_FUNCTION = "aksrun.io/function"
ANN_CALLS = "aksrun.io/calls"
ANN_CHUNKSIZE = "aksrun.io/chunksize"
ANN_TASKS = "aksrun.io/tasks"
ANN_STORE = "aksrun.io/store"
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
GPU_RESOURCE = "nvidia.com/gpu"
# The taints AKS documents: GPU pools are created with `--node-taints sku=gpu:NoSchedule`,
# spot pools get `kubernetes.azure.com/scalesetpriority=spot:NoSchedule` automatically.
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
SPOT_TOLERATION = {"key": SPOT_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}
_GPU_VM_SIZE = re.compile(r"^Standard_N", re.IGNORECASE)  # N-series = the Azure GPU families

# API-server limits for Indexed Jobs (pkg/apis/batch/validation): clamped here so a big map
# never produces a Job the server rejects.
_MAX_PARALLELISM = 100_000
_COMPLETIONS_SOFT_LIMIT = 100_000
_PARALLELISM_HIGH_COMPLETIONS = 10_000
_MAX_FAILED_INDEXES_HIGH_COMPLETIONS = 10_000

_NO_ENV: Mapping[str, str] = MappingProxyType({})
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def build_job(
    request: LaunchRequest,
    *,
    namespace: str,
    image: str,
    service_account: str,
    extra_env: Mapping[str, str] = _NO_ENV,
    storage_env: Mapping[str, str] = _NO_ENV,
    ttl_seconds_after_finished: int = DEFAULT_TTL_SECONDS,
    max_failed_indexes: int | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job running every task of `request` (one pod per index, retried per index).

    Retries: infrastructure faults count against `backoffLimitPerIndex`; disruptions
    (preemption, eviction, spot reclaim) are retried without counting; the runner's integrity,
    version and usage exit codes fail the whole Job at once, since no retry can fix them.
    """
    options = request.options
    tasks = int(request.tasks)
    if tasks < 1:
        raise ConfigError(f"a job needs at least one task, got tasks={tasks}.")
    longest_hostname = f"{request.job_id}-{tasks - 1}"
    if len(longest_hostname) > 63 or not _DNS_LABEL.match(longest_hostname):
        raise ConfigError(
            f"job id {request.job_id!r} with {tasks} tasks makes pod hostname "
            f"{longest_hostname!r}, which is not a DNS label (a-z, 0-9, '-', at most 63); "
            "use a shorter function name (name=...) or a larger chunksize."
        )

    parallelism = max(1, min(int(request.parallelism), tasks, _MAX_PARALLELISM))
    if tasks > _COMPLETIONS_SOFT_LIMIT:
        # The API server requires these bounds above 100k completions with backoffLimitPerIndex.
        parallelism = min(parallelism, _PARALLELISM_HIGH_COMPLETIONS)
        if max_failed_indexes is None or max_failed_indexes > _MAX_FAILED_INDEXES_HIGH_COMPLETIONS:
            max_failed_indexes = _MAX_FAILED_INDEXES_HIGH_COMPLETIONS
    if max_failed_indexes is not None:
        max_failed_indexes = max(0, min(int(max_failed_indexes), tasks))

    labels = job_labels(request)
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": tasks,
        "parallelism": parallelism,
        "backoffLimitPerIndex": int(request.backoff_limit_per_index),
    }
    if max_failed_indexes is not None:
        spec["maxFailedIndexes"] = max_failed_indexes
    spec["podFailurePolicy"] = pod_failure_policy()
    if request.deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(request.deadline_seconds))
    spec["ttlSecondsAfterFinished"] = int(ttl_seconds_after_finished)
    spec["template"] = {
        "metadata": {
            "labels": {**labels, WORKLOAD_IDENTITY_LABEL: "true"},
            "annotations": {
                # A running chunk is not rescheduled for free: keep the autoscaler from
                # draining its node mid-task (eviction would be retried, but work is lost).
                "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
            },
        },
        "spec": _pod_spec(request, options, image, service_account, extra_env, storage_env),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": request.job_id,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                ANN_JOB_DIGEST: request.job_digest,
                ANN_FUNCTION: request.function_name,
                ANN_CALLS: str(request.calls),
                ANN_CHUNKSIZE: str(request.chunksize),
                ANN_TASKS: str(tasks),
                ANN_STORE: request.store_url,
            },
        },
        "spec": spec,
    }


def job_labels(request: LaunchRequest) -> dict[str, str]:
    """Labels on the Job and its pods: what `aksrun jobs ls` and the executor select by."""
    return {
        MANAGED_BY: "aksrun",
        APP_NAME: "aksrun",
        LABEL_JOB_ID: request.job_id,
        LABEL_USER: label_value(request.user),
        LABEL_FUNCTION: label_value(request.function_name),
    }


def pod_failure_policy() -> dict[str, Any]:
    """FailJob on the runner's fatal exit codes; FailIndex on its hard-timeout code; Ignore
    (retry, uncounted) on disruptions."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": RUNNER_CONTAINER,
                    "operator": "In",
                    "values": sorted(set(FATAL_EXIT_CODES)),  # the server wants them ordered
                },
            },
            {  # a call that hung past its timeout: running it again would hang again
                "action": "FailIndex",
                "onExitCodes": {
                    "containerName": RUNNER_CONTAINER,
                    "operator": "In",
                    "values": [EXIT_TIMEOUT],
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def _pod_spec(
    request: LaunchRequest,
    options: Any,
    image: str,
    service_account: str,
    extra_env: Mapping[str, str],
    storage_env: Mapping[str, str],
) -> dict[str, Any]:
    memory = options.memory
    gpu = int(options.gpu or 0)
    vm_size = resolve_node_type(options.node_type)

    # CPU: request only. CPU is compressible (a pod above its request is slowed under
    # contention, never killed), and a CFS quota throttles Python's bursty threads (BLAS,
    # data loaders) even on idle nodes. Memory is not compressible: limit = request, so the
    # pod gets exactly what the user asked for, is OOMKilled at that size rather than evicted
    # later under node pressure, and can never use more than the scheduler reserved.
    requests: dict[str, Any] = {"cpu": options.cpu, "memory": memory}
    limits: dict[str, Any] = {"memory": memory}
    if gpu:
        # Extended resources: request must equal limit.
        requests[GPU_RESOURCE] = str(gpu)
        limits[GPU_RESOURCE] = str(gpu)

    node_selector = {"kubernetes.io/os": "linux"}
    if vm_size:
        node_selector[INSTANCE_TYPE_LABEL] = vm_size
    tolerations = []
    if gpu or (vm_size and _GPU_VM_SIZE.match(vm_size)):
        # Tolerating an untainted pool is harmless; missing it on a tainted one never schedules.
        tolerations.append(dict(GPU_TOLERATION))
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        # The runner never calls the Kubernetes API; workload identity projects its own token.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": node_selector,
    }
    if options.spot:
        tolerations.append(dict(SPOT_TOLERATION))
        pod["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [
                            {"key": SPOT_LABEL, "operator": "In", "values": ["spot"]}
                        ]}
                    ]
                }
            }
        }
    if tolerations:
        pod["tolerations"] = tolerations
    pod["containers"] = [
        {
            "name": RUNNER_CONTAINER,
            "image": image,
            "command": list(RUNNER_COMMAND),
            "workingDir": WORK_DIR,
            "env": _env(request, options, extra_env, storage_env),
            "resources": {"requests": requests, "limits": limits},
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "dshm", "mountPath": "/dev/shm"},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "home", "mountPath": HOME_DIR},
                {"name": "work", "mountPath": WORK_DIR},
            ],
        }
    ]
    pod["volumes"] = [
        # tmpfs pages count against the memory limit: cap /dev/shm at half of it.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": _half(memory)}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "work", "emptyDir": {}},
    ]
    return pod


# The fraction of memory= at which the runner stops a call (runner/memory.py): a little below
# the limit, where the kernel would kill the whole container (memory.oom.group on cgroup v2).
MEMORY_STOP_AT = "0.95"


def _env(
    request: LaunchRequest,
    options: Any,
    extra_env: Mapping[str, str],
    storage_env: Mapping[str, str],
) -> list[dict[str, str]]:
    """Pointers only. User values may replace the conveniences (HOME, TMPDIR, ...), never the
    pointers the runner trusts."""
    pointers = {
        "AKSRUN_STORE": request.store_url,
        "AKSRUN_JOB_ID": request.job_id,
        "AKSRUN_JOB_DIGEST": request.job_digest,
        "AKSRUN_TERMINATION_LOG": TERMINATION_LOG,
        # DefaultAzureCredential in the pod tries workload identity only: without the
        # webhook's injection it fails with the reason instead of falling through to the
        # node's managed identity (IMDS), i.e. signing in as the kubelet.
        "AZURE_TOKEN_CREDENTIALS": "WorkloadIdentityCredential",
    }
    if options.memory:  # the runner stops a call before the OOM killer takes the container
        pointers["AKSRUN_MEMORY_LIMIT"] = str(memory_bytes(options.memory))
        pointers["AKSRUN_MEMORY_STOP_AT"] = MEMORY_STOP_AT
    values = {**pointers, "HOME": HOME_DIR, "TMPDIR": "/tmp", "PYTHONUNBUFFERED": "1"}
    for layer in (options.env or {}, request.env or {}, extra_env, storage_env):
        for key, value in layer.items():
            values[str(key)] = str(value)
    values.update(pointers)
    return [{"name": key, "value": value} for key, value in values.items()]


def _half(memory: str) -> str:
    half = memory_bytes(memory) // 2
    for unit, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if half % factor == 0:
            return f"{half // factor}{unit}"
    return str(half)


def label_value(text: str) -> str:
    """A valid label value (<= 63 of [A-Za-z0-9._-], alphanumeric at both ends) from any text."""
    value = _LABEL_VALUE_BAD.sub("-", str(text))[:63]
    return value.strip("._-") or "none"


def job_label_selector(job_id: str) -> str:
    """Selects the Job and the pods of one submission."""
    return f"{LABEL_JOB_ID}={job_id}"


def managed_selector(user: str | None = None) -> str:
    """Selects everything aksrun created (optionally only one user's)."""
    selector = f"{MANAGED_BY}=aksrun"
    if user:
        selector += f",{LABEL_USER}={label_value(user)}"
    return selector


def to_yaml(obj: Any) -> str:
    """A manifest as YAML in its natural key order (for `--dry-run` and debugging)."""
    import yaml

    if isinstance(obj, list):
        return yaml.safe_dump_all(obj, sort_keys=False, default_flow_style=False)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
