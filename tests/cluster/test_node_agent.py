"""The node agent itself, against the real control plane: what a kubelet must do for the real
scheduler, Job controller and Eviction API to behave as on AKS.

The tests run their own NodeAgent with a pool of their own, tainted so that no other test's
pods land on it, and pods that tolerate the taint and select that pool.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.images.session import TestImages
from tests.support.node_agent import NodeAgent, NodePool
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

POOL = "agenttest"
TAINT = {"key": "aksrun.io/node-agent-test", "value": "true", "effect": "NoSchedule"}
IMAGE = ""  # the session's runner image by digest (set by the `agent` fixture)


@pytest.fixture(scope="module")
def admin_kubeconfig(control_plane) -> Path:
    return Path(control_plane.admin_kubeconfig)


@pytest.fixture(scope="module")
def agent(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory,
          test_images: TestImages) -> Iterator[NodeAgent]:
    global IMAGE
    assert test_images.runner is not None
    IMAGE = test_images.runner.reference
    pool = NodePool(name=POOL, count=1, taints=[TAINT])
    node_agent = NodeAgent(admin_kubeconfig, tmp_path_factory.mktemp("node-agent"), pools=[pool],
                           registries=test_images.registry_clients(),
                           image_cache=test_images.layer_cache,
                           max_grace_seconds=3.0, backoff_base=0.5).start()
    try:
        yield node_agent
    finally:
        node_agent.stop(delete_nodes=True)


@pytest.fixture(scope="module")
def api(admin_kubeconfig: Path) -> Any:
    from kubernetes import config

    return config.new_client_from_config(str(admin_kubeconfig))


@pytest.fixture(scope="module")
def core(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


@pytest.fixture
def ns(core: Any, agent: NodeAgent) -> Iterator[str]:
    """A fresh namespace whose `default` ServiceAccount exists (ServiceAccount admission)."""
    name = f"na-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: _exists(lambda: core.read_namespaced_service_account("default", name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def _exists(read: Callable[[], Any]) -> bool:
    from kubernetes.client import ApiException

    try:
        read()
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise




def raw_pod(core: Any, ns: str, name: str) -> dict | None:
    """The pod as JSON (None once it is gone)."""
    from kubernetes.client import ApiException

    try:
        return json.loads(core.read_namespaced_pod(name, ns, _preload_content=False).data)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def pod_spec(script: str, **container: Any) -> dict:
    """A pod like aksrun's (restartPolicy Never, uid 1000, read-only root, emptyDirs) that
    runs `python -c script` on this module's pool."""
    container.setdefault("image", IMAGE)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": {"agentpool": POOL},
        "tolerations": [{**TAINT, "operator": "Equal"}],
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "fsGroup": 1000},
        "containers": [{
            "name": "runner", "command": ["python", "-c", script],
            "workingDir": "/work",
            # as aksrun sets it: stdout and stderr lines reach the log in the order printed
            "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}, *container.pop("env", [])],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                             {"name": "tmp", "mountPath": "/tmp"},
                             {"name": "work", "mountPath": "/work"}],
            **container,
        }],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}},
                    {"name": "tmp", "emptyDir": {}}, {"name": "work", "emptyDir": {}}],
    }
    return spec


def create_pod(core: Any, ns: str, name: str, script: str, metadata: dict | None = None,
               **container: Any) -> None:
    core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": name, **(metadata or {})},
                                    "spec": pod_spec(script, **container)})


def finished(core: Any, ns: str, name: str, timeout: float = 60.0) -> dict:
    return wait_for(lambda: (p := raw_pod(core, ns, name)) and
                    p["status"].get("phase") in ("Succeeded", "Failed") and p, timeout)


def terminated(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def conditions(pod: dict) -> dict[str, dict]:
    return {c["type"]: c for c in pod["status"].get("conditions") or []}


def log_text(core: Any, ns: str, name: str) -> str:
    """The pod's log so far ("" before there is one: unbound, not yet seen by the node's
    kubelet (404 from it), or still waiting to start (400))."""
    from kubernetes.client import ApiException

    try:
        return core.read_namespaced_pod_log(name, ns) or ""
    except ApiException as exc:
        if exc.status in (400, 404):
            return ""
        raise


def events(core: Any, ns: str, name: str) -> list[dict]:
    items = json.loads(core.list_namespaced_event(ns, _preload_content=False).data)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def test_nodes_are_registered_ready_and_schedulable(core: Any, agent: NodeAgent) -> None:
    (name,) = agent.node_names
    node = json.loads(core.read_node(name, _preload_content=False).data)
    labels = node["metadata"]["labels"]
    assert name.startswith(f"aks-{POOL}-") and name.endswith("-vmss000000")
    assert labels["kubernetes.azure.com/agentpool"] == POOL
    assert labels["node.kubernetes.io/instance-type"] == "Standard_D4s_v5"
    assert node["spec"]["taints"] == [TAINT]  # the not-ready taint was lifted
    status = node["status"]
    assert status["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
        "PIDPressure": "False"}
    assert status["allocatable"]["cpu"] == "4" and status["allocatable"]["pods"] == "110"


def test_pod_runs_in_its_own_filesystem_and_logs_reach_the_api_server(
        core: Any, agent: NodeAgent, ns: str) -> None:
    script = (
        "import os, socket, sys\n"
        "print('cwd', os.getcwd())\n"
        "print('host', socket.gethostname(), 'pid', os.getpid())\n"
        "print('env', os.environ['GREETING'], os.environ['POD'], os.environ['NODE'])\n"
        "open('/work/out', 'w').write('x')\n"
        "open('/tmp/t', 'w').write('x')\n"
        "try:\n    open('/etc/oops', 'w')\nexcept OSError as e:\n    print('root', e.strerror)\n"
        "print('to stderr', file=sys.stderr)\n"
    )
    create_pod(core, ns, "hello", script, env=[
        {"name": "NAME", "value": "world"},
        {"name": "GREETING", "value": "hello-$(NAME)-$$(NAME)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ])
    pod = finished(core, ns, "hello")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]["containerStatuses"]
    term = terminated(pod)
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert term["containerID"].startswith("containerd://")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["imageID"] == IMAGE  # the registry's digest, as containerd reports it
    assert cs["ready"] is False and cs["restartCount"] == 0
    conds = conditions(pod)
    assert conds["PodScheduled"]["status"] == "True"  # the scheduler's, kept
    assert conds["Ready"]["reason"] == "PodCompleted"
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert pod["status"]["hostIP"] == "127.0.0.1" and pod["status"]["startTime"]

    text = core.read_namespaced_pod_log("hello", ns)  # API server -> agent's kubelet port
    node = pod["spec"]["nodeName"]
    assert text.splitlines() == [
        "cwd /work", "host hello pid 1", f"env hello-world-$(NAME) hello {node}",
        "root Read-only file system", "to stderr"]
    assert core.read_namespaced_pod_log("hello", ns, tail_lines=1) == "to stderr\n"
    stamped = core.read_namespaced_pod_log("hello", ns, timestamps=True, limit_bytes=40)
    assert stamped[:4].isdigit() and "Z cwd /work" in stamped

    reasons = [(e["reason"], e["source"].get("component"), e["involvedObject"].get("fieldPath"))
               for e in events(core, ns, "hello")]
    for reason in ("Created", "Started"):
        assert (reason, "kubelet", "spec.containers{runner}") in reasons


def test_follow_streams_until_the_container_ends(core: Any, agent: NodeAgent, ns: str) -> None:
    script = ("import time\nfor i in range(5):\n    print('tick', i, flush=True)\n"
              "    time.sleep(0.3)\n")
    create_pod(core, ns, "ticker", script)
    wait_for(lambda: (p := raw_pod(core, ns, "ticker")) and p["status"].get("phase") ==
             "Running")
    resp = core.read_namespaced_pod_log("ticker", ns, follow=True, _preload_content=False)
    seen = b"".join(resp.stream(64)).decode()
    assert seen.splitlines() == [f"tick {i}" for i in range(5)]


def test_termination_message_keeps_the_last_4096_bytes(
        core: Any, agent: NodeAgent, ns: str) -> None:
    script = ("open('/dev/termination-log', 'w').write('H' * 1000 + 'b' * 4090 + 'END')\n"
              "raise SystemExit(3)\n")
    create_pod(core, ns, "tmsg", script)
    pod = finished(core, ns, "tmsg")
    term = terminated(pod)
    assert pod["status"]["phase"] == "Failed"
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert len(term["message"]) == 4096 and term["message"].endswith("END")
    assert "H" in term["message"][:4] and term["message"][3:].strip("b") == "END"


def test_failure_falls_back_to_the_log_tail(core: Any, agent: NodeAgent, ns: str) -> None:
    script = "import sys\nfor i in range(100):\n    print('line', i)\nsys.exit('boom')\n"
    create_pod(core, ns, "crash", script)
    pod = finished(core, ns, "crash")
    term = terminated(pod)
    assert pod["status"]["phase"] == "Failed" and term["exitCode"] == 1
    lines = term["message"].splitlines()
    assert lines[-1] == "boom" and len(lines) == 80 and lines[0] == "line 21"


def test_memory_limit_is_enforced_by_the_kernel(core: Any, agent: NodeAgent, ns: str) -> None:
    script = "x = bytearray(200 * 1024 * 1024)\nprint('survived', len(x))\n"
    create_pod(core, ns, "hog", script,
               resources={"requests": {"cpu": "100m", "memory": "64Mi"},
                          "limits": {"memory": "64Mi"}})
    pod = finished(core, ns, "hog")
    term = terminated(pod)
    assert pod["status"]["phase"] == "Failed"
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    assert pod["status"]["qosClass"] == "Burstable"


def test_deletion_sends_sigterm_then_reports_and_removes_the_pod(
        core: Any, agent: NodeAgent, ns: str) -> None:
    from kubernetes import client, watch

    script = ("import signal, sys, time\n"
              "def bye(*_):\n    print('got SIGTERM', flush=True)\n    sys.exit(7)\n"
              "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\n"
              "time.sleep(600)\n")
    create_pod(core, ns, "victim", script)
    wait_for(lambda: "ready" in log_text(core, ns, "victim"))
    assert agent.pid(ns, "victim")
    seen: list[dict] = []
    w = watch.Watch()
    core.delete_namespaced_pod("victim", ns)
    for ev in w.stream(client.CoreV1Api(core.api_client).list_namespaced_pod, ns,
                       field_selector="metadata.name=victim", timeout_seconds=30):
        seen.append(ev)
        if ev["type"] == "DELETED":
            w.stop()
    last = seen[-1]["raw_object"]
    assert seen[-1]["type"] == "DELETED"
    term = last["status"]["containerStatuses"][0]["state"]["terminated"]
    assert last["status"]["phase"] == "Failed" and term["exitCode"] == 7
    assert raw_pod(core, ns, "victim") is None
    assert agent.pid(ns, "victim") is None
    assert any(e["reason"] == "Killing" and e["message"] == "Stopping container runner"
               for e in events(core, ns, "victim"))


def test_eviction_keeps_disruption_target_and_fails_the_pod(
        core: Any, agent: NodeAgent, ns: str) -> None:
    keep = "aksrun.io/test-keep"  # holds the object after the kubelet's final delete
    create_pod(core, ns, "evicted", "import time\nprint('up', flush=True)\ntime.sleep(600)\n",
               metadata={"finalizers": [keep]})
    wait_for(lambda: "up" in log_text(core, ns, "evicted"))
    core.create_namespaced_pod_eviction("evicted", ns, {
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "evicted", "namespace": ns}})
    pod = finished(core, ns, "evicted")
    try:
        conds = conditions(pod)
        assert conds["DisruptionTarget"]["status"] == "True"
        assert conds["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"
        assert pod["status"]["phase"] == "Failed"
        # python is PID 1 with no SIGTERM handler: the kernel ignores SIGTERM for a
        # namespace's init, so the kubelet's SIGKILL after the grace period ends it
        assert terminated(pod)["exitCode"] == 137
        assert pod["metadata"]["deletionTimestamp"]
    finally:
        core.patch_namespaced_pod("evicted", ns, {"metadata": {"finalizers": None}})
    wait_for(lambda: raw_pod(core, ns, "evicted") is None)


def test_kill_is_reported_as_an_error_exit(core: Any, agent: NodeAgent, ns: str) -> None:
    create_pod(core, ns, "killed", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    wait_for(lambda: "up" in log_text(core, ns, "killed"))
    agent.kill(ns, "killed", signal.SIGKILL)
    term = terminated(finished(core, ns, "killed"))
    assert (term["exitCode"], term["reason"]) == (137, "Error")


def test_missing_image_alternates_pull_errors_and_stays_pending(
        core: Any, agent: NodeAgent, ns: str) -> None:
    from kubernetes.client import ApiException

    image = IMAGE.split("/", 1)[0] + "/does-not-exist:1"  # the registry has no such image
    create_pod(core, ns, "nopull", "print('never')", image=image)
    reasons: set[str] = set()

    def waiting() -> bool:
        pod = raw_pod(core, ns, "nopull")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
        state = statuses[0].get("state", {}).get("waiting") or {}
        if state.get("reason"):
            reasons.add(state["reason"])
            assert pod is not None and pod["status"]["phase"] == "Pending"
            if state["reason"] == "ErrImagePull":
                assert f'failed to resolve reference "{image}"' in state["message"]
        return {"ErrImagePull", "ImagePullBackOff"} <= reasons

    wait_for(waiting, timeout=30)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("nopull", ns)
    assert err.value.status == 400 and "is waiting to start" in err.value.body
    msgs = {(e["reason"], e["message"]) for e in events(core, ns, "nopull")}
    assert ("Failed", "Error: ErrImagePull") in msgs
    assert ("BackOff", f'Back-off pulling image "{image}"') in msgs

    # deleted before any container ran: terminal status, then the kubelet's final delete
    core.delete_namespaced_pod("nopull", ns)
    wait_for(lambda: raw_pod(core, ns, "nopull") is None, timeout=30)


def test_restart_keeps_the_previous_log_and_the_emptydir(
        core: Any, agent: NodeAgent, ns: str) -> None:
    script = ("import os, sys\n"
              "if os.path.exists('/work/marker'):\n    print('second run')\n    sys.exit(0)\n"
              "open('/work/marker', 'w').write('x')\nprint('first run')\nsys.exit(5)\n")
    pod = pod_spec(script)
    pod["restartPolicy"] = "OnFailure"
    core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "again"}, "spec": pod})
    done = finished(core, ns, "again")
    cs = done["status"]["containerStatuses"][0]
    assert done["status"]["phase"] == "Succeeded" and cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 5
    assert core.read_namespaced_pod_log("again", ns) == "second run\n"
    assert core.read_namespaced_pod_log("again", ns, previous=True) == "first run\n"


def test_indexed_job_completes_with_each_completion_index(
        api: Any, core: Any, agent: NodeAgent, ns: str) -> None:
    from kubernetes import client

    batch = client.BatchV1Api(api)
    template = pod_spec("import os\nprint('index', os.environ['JOB_COMPLETION_INDEX'])\n")
    batch.create_namespaced_job(ns, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "idx"},
        "spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 3,
                 "backoffLimitPerIndex": 0, "template": {"spec": template}}})

    def complete() -> bool:
        job = json.loads(batch.read_namespaced_job("idx", ns, _preload_content=False).data)
        conds = {c["type"]: c["status"] for c in job["status"].get("conditions") or []}
        assert conds.get("Failed") != "True", job["status"]
        return conds.get("Complete") == "True"

    wait_for(complete, timeout=90)
    pods = core.list_namespaced_pod(ns, label_selector="job-name=idx").items
    printed = sorted(core.read_namespaced_pod_log(p.metadata.name, ns).strip() for p in pods)
    assert printed == ["index 0", "index 1", "index 2"]


# --- pure parts (no cluster needed) -----------------------------------------------------------
def test_expansion_follows_kubernetes_rules() -> None:
    from tests.support.node_agent.envvars import expand

    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)-$$$(A)-$", env) == "1-two-$(C)-$(A)-$1-$"


def test_phase_follows_the_kubelet() -> None:
    from tests.support.node_agent.status import pod_phase

    term0, term1 = {"terminated": {"exitCode": 0}}, {"terminated": {"exitCode": 1}}
    waiting = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert pod_phase("Never", [(term1, {})], False) == "Failed"
    assert pod_phase("OnFailure", [(waiting, term1)], False) == "Running"
    assert pod_phase("Always", [(term0, {})], False) == "Running"
    assert pod_phase("Always", [(term0, {})], True) == "Succeeded"
    assert pod_phase("Never", [({"waiting": {}}, {})], False) == "Pending"


def test_termination_message_is_the_file_tail_or_the_log_tail(tmp_path: Path) -> None:
    from tests.support.node_agent.logs import ContainerLog, last_log_text
    from tests.support.node_agent.status import termination_message

    msg = tmp_path / "termination-log"
    msg.write_text("a" * 5000 + "END")
    assert termination_message(str(msg), "File", 1, lambda: "log") == "a" * 4093 + "END"
    msg.write_text("")
    log = ContainerLog(tmp_path / "0.log")
    log.write("stdout", "".join(f"line {i}\n" for i in range(500)).encode())
    log.write("stderr", b"no newline at the end")
    log.close()
    tail = termination_message(str(msg), "FallbackToLogsOnError", 1,
                               lambda: last_log_text(log))
    assert len(tail.encode()) <= 2048 and tail.endswith("line 499\nno newline at the end")
    assert termination_message(str(msg), "FallbackToLogsOnError", 0, lambda: "x") == ""


def test_images_are_normalized_like_containerd() -> None:
    from tests.support.node_agent.images import image_id, normalize

    assert normalize("python:3.11") == "docker.io/library/python:3.11"
    assert normalize("user/app") == "docker.io/user/app:latest"
    assert normalize("acr.azurecr.io/r/app:1") == "acr.azurecr.io/r/app:1"
    assert image_id("acr.azurecr.io/r/app:1").startswith("acr.azurecr.io/r/app@sha256:")
