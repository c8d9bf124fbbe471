"""The fake Kubernetes API server, exercised only through the official client (typed
BatchV1Api / CoreV1Api / watch.Watch) and an ordinary kubeconfig, with `python -c` pods."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support.fake_k8s import FakeCluster, NodePool, gpu_pool, spot_pool

pytestmark = pytest.mark.cluster

NS = "default"
GPU_TYPE = "Standard_NC24ads_A100_v4"


@pytest.fixture
def cluster():
    with FakeCluster() as fake:
        yield fake


@pytest.fixture
def api(cluster: FakeCluster, tmp_path: Path):
    path = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    api_client = config.new_client_from_config(str(path))
    yield api_client
    api_client.close()


@pytest.fixture
def batch(api) -> client.BatchV1Api:
    return client.BatchV1Api(api)


@pytest.fixture
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def container(code: str, **extra: object) -> dict:
    return {"name": "main", "image": "python:3.12-slim",
            "command": [sys.executable, "-c", textwrap.dedent(code)], **extra}


def job(name: str, code: str = "pass", *, ctr: dict | None = None, restart: str = "Never",
        pod: dict | None = None, **spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": restart,
                                           "containers": [ctr or container(code)],
                                           **(pod or {})}},
                     **spec}}


def wait_condition(batch: client.BatchV1Api, name: str, ctype: str,
                   timeout: float = 15.0) -> client.V1Job:
    deadline = time.monotonic() + timeout
    while True:
        obj = batch.read_namespaced_job(name, NS)
        if any(c.type == ctype and c.status == "True" for c in obj.status.conditions or []):
            return obj
        assert time.monotonic() < deadline, f"job {name} never got {ctype}: {obj.status}"
        time.sleep(0.05)


def wait_pod(core: client.CoreV1Api, pred, selector: str = "", timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        for p in core.list_namespaced_pod(NS, label_selector=selector).items:
            if pred(p):
                return p
        assert time.monotonic() < deadline, "no matching pod"
        time.sleep(0.05)


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["code"] == exc.status
    return body


def raw(cluster: FakeCluster, method: str, path: str, body: object = None) -> tuple[int, dict]:
    """Bypass the client's own model validation to see what the server says."""
    request = urllib.request.Request(
        cluster.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def reason_of(pod: client.V1Pod) -> str | None:
    term = pod.status.container_statuses[0].state.terminated
    return term.reason if term else None


# ------------------------------------------------------------------------------ discovery
def test_discovery_nodes_and_kubeconfig(cluster: FakeCluster, api, core, batch, tmp_path):
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    names = {r.name for r in core.get_api_resources().resources}
    assert {"pods", "pods/log", "events", "nodes"} <= names
    assert "jobs" in {r.name for r in batch.get_api_resources().resources}
    assert [g.name for g in client.ApisApi(api).get_api_versions().groups] == ["batch"]
    _, current = config.list_kube_config_contexts(str(tmp_path / "kubeconfig"))
    assert current["context"]["namespace"] == NS

    sa = core.create_namespaced_service_account(NS, {"metadata": {"name": "runner"}})
    assert core.read_namespaced_service_account("runner", NS).metadata.uid == sa.metadata.uid
    assert core.delete_namespaced_service_account("runner", NS).metadata.name == "runner"
    assert [n.metadata.name for n in core.list_namespace().items] == ["default", "kube-system"]

    cluster.add_node_pool(gpu_pool())
    cluster.add_node_pool(spot_pool())
    nodes = core.list_node().items
    types = [n.metadata.labels["node.kubernetes.io/instance-type"] for n in nodes]
    assert types.count("Standard_D4s_v5") == 4 and GPU_TYPE in types
    taints = {(t.key, t.value, t.effect) for n in nodes for t in n.spec.taints or []}
    assert taints == {("sku", "gpu", "NoSchedule"),
                      ("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")}
    gpu = next(n for n in nodes if n.spec.taints and n.spec.taints[0].key == "sku")
    assert gpu.status.allocatable["nvidia.com/gpu"] == "1"


# ------------------------------------------------------------------------------ indexed jobs
def test_indexed_job_respects_parallelism_and_reports_status(cluster, batch, core, tmp_path):
    code = f"""
        import os, time
        i = os.environ["JOB_COMPLETION_INDEX"]
        with open(os.path.join({str(tmp_path)!r}, "run-" + i), "w") as f:
            f.write(f"{{time.time()}} ")
            time.sleep(0.4)
            f.write(f"{{time.time()}}")
        print("index", i, os.environ["POD_NAME"], os.environ["HOSTNAME"])
    """
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    created = batch.create_namespaced_job(NS, job(
        "par", ctr=container(code, env=env), completionMode="Indexed", completions=5,
        parallelism=2))
    assert created.spec.backoff_limit == 6 and created.spec.completion_mode == "Indexed"
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}

    done = wait_condition(batch, "par", "Complete", timeout=20)
    st = done.status
    assert (st.succeeded, st.completed_indexes, st.failed, st.active) == (5, "0-4", None, None)
    assert [c.type for c in st.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert st.start_time <= st.completion_time

    intervals = [tuple(map(float, p.read_text().split())) for p in tmp_path.glob("run-*")]
    assert len(intervals) == 5
    overlap = max(sum(1 for a, b in intervals if a <= t < b) for t, _ in intervals)
    assert overlap == 2

    pods = core.list_namespaced_pod(NS, label_selector=f"controller-uid={uid}").items
    assert len(pods) == 5
    for p in sorted(pods, key=lambda p: p.metadata.name):
        idx = p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert p.metadata.labels["batch.kubernetes.io/job-completion-index"] == idx
        assert p.metadata.name.startswith(f"par-{idx}-") and len(p.metadata.name) == 11
        assert p.metadata.labels["batch.kubernetes.io/job-name"] == "par"
        assert p.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Job", "par", uid, True)
        assert p.spec.containers[0].env[-1].name == "JOB_COMPLETION_INDEX"
        assert p.spec.node_name and p.status.pod_ip and p.status.phase == "Succeeded"
        cs = p.status.container_statuses[0]
        assert cs.state.terminated.exit_code == 0 and cs.state.terminated.reason == "Completed"
        assert cs.container_id.startswith("containerd://") and "@sha256:" in cs.image_id
        conds = {c.type: (c.status, c.reason) for c in p.status.conditions}
        assert conds["Ready"] == ("False", "PodCompleted") and conds["PodScheduled"][0] == "True"
        log = core.read_namespaced_pod_log(p.metadata.name, NS)
        assert log == f"index {idx} {p.metadata.name} par-{idx}\n"

    sel = "batch.kubernetes.io/job-completion-index"
    assert len(core.list_namespaced_pod(NS, label_selector=f"{sel} in (0,1)").items) == 2
    notin = core.list_namespaced_pod(NS, label_selector=f"{sel} notin (0,1),job-name")
    assert len(notin.items) == 3
    assert len(core.list_namespaced_pod(NS, label_selector=f"{sel}!=4,!nope").items) == 4
    name = pods[0].metadata.name
    assert [p.metadata.name for p in core.list_namespaced_pod(
        NS, field_selector=f"metadata.name={name}").items] == [name]
    assert len(core.list_namespaced_pod(NS, field_selector="status.phase=Succeeded").items) == 5
    page = core.list_namespaced_pod(NS, limit=3)
    rest = core.list_namespaced_pod(NS, limit=3, _continue=page.metadata._continue)
    assert len(page.items) == 3 and len(rest.items) == 2 and rest.metadata._continue is None
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=par").items
    assert sum(e.reason == "SuccessfulCreate" for e in events) == 5
    assert {e.reason for e in events} >= {"Completed"}
    assert cluster.requests[("create", "jobs")] == 1
    assert cluster.requests[("get", "pods/log")] == 5


def test_termination_message_volumes_env_and_fallback(cluster, batch, core, monkeypatch):
    monkeypatch.setenv("FAKE_K8S_HOST_ONLY", "x")  # the test process's env is not the pod's
    code = """
        import os
        data = os.environ["DATA"]
        open(data, "w").write("x")
        msg = f"cwd={os.path.basename(os.getcwd())} node={os.environ['NODE']} "
        msg += f"team={os.environ['TEAM']} greet={os.environ['GREET']} "
        msg += f"mem={os.environ['MEM']} exists={os.path.exists(data)} "
        msg += f"leak={os.environ.get('FAKE_K8S_HOST_ONLY')} "
        msg += f"home={os.path.isdir(os.environ['HOME'])}"
        open(os.environ["TMSG"], "w").write(msg)
    """
    env = [{"name": "DATA", "value": "/scratch/out.txt"},
           {"name": "TMSG", "value": "/dev/termination-log"},
           {"name": "NAME", "value": "world"},
           {"name": "GREET", "value": "hello-$(NAME)"},
           {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
           {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                              "divisor": "1Mi"}}}]
    ctr = container(code, env=env, workingDir="/scratch",
                    volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                    resources={"limits": {"memory": "256Mi"}})
    body = job("msg", ctr=ctr, pod={"volumes": [{"name": "scratch", "emptyDir": {}}]})
    body["spec"]["template"]["metadata"] = {"labels": {"team": "blue"}}
    batch.create_namespaced_job(NS, body)
    wait_condition(batch, "msg", "Complete")
    pod = core.list_namespaced_pod(NS, label_selector="job-name=msg").items[0]
    term = pod.status.container_statuses[0].state.terminated
    assert term.message == (f"cwd=scratch node={pod.spec.node_name} team=blue "
                            "greet=hello-world mem=256 exists=True leak=None home=True")
    assert pod.status.qos_class == "Burstable"

    ctr = container("import sys; print('working', flush=True); sys.exit('boom: bad input')",
                    terminationMessagePolicy="FallbackToLogsOnError")
    batch.create_namespaced_job(NS, job("fallback", ctr=ctr, backoffLimit=0))
    failed = wait_condition(batch, "fallback", "Failed")
    assert failed.status.conditions[-1].reason == "BackoffLimitExceeded"
    pod = core.list_namespaced_pod(NS, label_selector="job-name=fallback").items[0]
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (1, "Error")
    assert term.message == "working\nboom: bad input\n"


# ------------------------------------------------------------------------------ logs
def test_log_follow_streams_until_the_container_exits(cluster, batch, core):
    code = """
        import time
        for i in range(5):
            print("line", i, flush=True)
            time.sleep(0.1)
    """
    batch.create_namespaced_job(NS, job("logs", code, completionMode="Indexed", completions=1))
    pod = wait_pod(core, lambda p: p.status.phase == "Running", "job-name=logs")
    name = pod.metadata.name
    lines = list(watch.Watch().stream(core.read_namespaced_pod_log, name, NS, follow=True))
    assert lines == [f"line {i}" for i in range(5)]
    assert core.read_namespaced_pod(name, NS).status.phase in ("Running", "Succeeded")
    wait_pod(core, lambda p: p.status.phase == "Succeeded", "job-name=logs")
    assert core.read_namespaced_pod_log(name, NS, tail_lines=2) == "line 3\nline 4\n"
    stamped = core.read_namespaced_pod_log(name, NS, timestamps=True, container="main")
    assert stamped.splitlines()[0].split(" ", 1)[1] == "line 0"
    assert stamped.splitlines()[0][:4].isdigit() and stamped.split(" ")[0].endswith("Z")
    assert core.read_namespaced_pod_log(name, NS, limit_bytes=4) == "line"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log(name, NS, container="sidecar")
    assert exc.value.status == 400

    cluster.startup_delay = 5.0
    batch.create_namespaced_job(NS, job("slow", "pass"))
    slow = wait_pod(core, lambda p: bool(p.spec.node_name), "job-name=slow")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log(slow.metadata.name, NS)
    assert exc.value.status == 400
    assert "is waiting to start: ContainerCreating" in status_of(exc.value)["message"]


# ------------------------------------------------------------------------------ watch
def test_watch_from_resource_version_bookmarks_and_410(cluster, batch, core):
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    batch.create_namespaced_job(NS, job("w", "print('hi')"))
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, NS, label_selector="job-name=w",
                       resource_version=rv, timeout_seconds=10):
        assert isinstance(ev["object"], client.V1Pod)
        seen.append((ev["type"], ev["object"].status.phase))
        if ev["object"].status.phase == "Succeeded":
            w.stop()
    assert seen[0] == ("ADDED", "Pending") and seen[-1] == ("MODIFIED", "Succeeded")
    assert ("MODIFIED", "Running") in seen
    assert all(t == "MODIFIED" for t, _ in seen[1:])

    jobs = [ev["object"] for ev in watch.Watch().stream(
        batch.list_namespaced_job, NS, resource_version=rv, timeout_seconds=1)]
    assert isinstance(jobs[0], client.V1Job) and jobs[0].metadata.name == "w"

    cluster.bookmark_interval = 0.2
    types = [ev["type"] for ev in watch.Watch().stream(
        core.list_namespaced_pod, NS, allow_watch_bookmarks=True, timeout_seconds=1)]
    assert types[0] == "ADDED" and "BOOKMARK" in types  # no rv: current state first

    cluster.compact()
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=rv,
                                  timeout_seconds=5))
    assert exc.value.status == 410
    raw = core.list_namespaced_pod(NS, watch=True, resource_version=rv, timeout_seconds=5,
                                   _preload_content=False)
    event = json.loads(raw.data.decode().splitlines()[0])
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert cluster.requests[("watch", "pods")] == 4
    assert cluster.requests[("watch", "jobs")] == 1


def test_bounded_watch_history_expires_old_versions(tmp_path):
    with FakeCluster(watch_history=3) as fake:
        api = config.new_client_from_config(str(fake.write_kubeconfig(tmp_path / "kc")))
        core = client.CoreV1Api(api)
        rv = core.list_namespace().metadata.resource_version
        for i in range(4):
            core.create_namespace({"metadata": {"name": f"ns{i}"}})
        with pytest.raises(ApiException) as exc:
            list(watch.Watch().stream(core.list_namespace, resource_version=rv,
                                      timeout_seconds=1))
        assert exc.value.status == 410
        recent = core.list_namespace().metadata.resource_version
        core.delete_namespace("ns0")
        events = list(watch.Watch().stream(core.list_namespace, resource_version=recent,
                                           timeout_seconds=1))
        assert [(e["type"], e["object"].metadata.name) for e in events] == [("DELETED", "ns0")]
        api.close()


# ------------------------------------------------------------------------------ failure policy
def test_pod_failure_policy_fail_job_on_exit_code(cluster, batch, core):
    code = """
        import os, sys, time
        if os.environ["JOB_COMPLETION_INDEX"] == "1":
            time.sleep(1)
            sys.exit(42)
        time.sleep(30)
    """
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {
        "containerName": "main", "operator": "In", "values": [42]}}]}
    batch.create_namespaced_job(NS, job("pfp", code, completionMode="Indexed", completions=3,
                                        parallelism=3, podFailurePolicy=policy))
    running = [wait_pod(core, lambda p, i=i: p.status.phase == "Running" and p.metadata.labels[
        "batch.kubernetes.io/job-completion-index"] == str(i), "job-name=pfp") for i in (0, 2)]
    pids = [cluster.pid(p.metadata.name) for p in running]
    start = time.monotonic()
    failed = wait_condition(batch, "pfp", "Failed")
    assert time.monotonic() - start < 10
    assert [c.type for c in failed.status.conditions] == ["FailureTarget", "Failed"]
    cond = failed.status.conditions[-1]
    assert cond.reason == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in cond.message
    assert failed.status.failed == 1 and failed.status.active is None
    # the controller deleted the still-running pods; only the failed one is kept
    left = core.list_namespaced_pod(NS, label_selector="job-name=pfp").items
    assert [p.status.phase for p in left] == ["Failed"]
    assert all(gone(pid) for pid in pids if pid)


def test_disruption_target_is_ignored_and_the_index_retried(cluster, batch, core, tmp_path):
    marker = tmp_path / "second-run"
    code = f"""
        import os, sys, time
        if os.path.exists({str(marker)!r}):
            sys.exit(0)
        open({str(marker)!r}, "w").close()
        time.sleep(30)
    """
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                        {"action": "FailJob", "onExitCodes": {"operator": "NotIn",
                                                              "values": [0]}}]}
    batch.create_namespaced_job(NS, job("evict", code, completionMode="Indexed", completions=1,
                                        backoffLimit=0, podFailurePolicy=policy))
    first = wait_pod(core, lambda p: p.status.phase == "Running", "job-name=evict")
    cluster.wait_for(marker.exists)
    cluster.evict(first.metadata.name)
    done = wait_condition(batch, "evict", "Complete")
    assert done.status.failed is None and done.status.succeeded == 1
    evicted = core.read_namespaced_pod(first.metadata.name, NS)
    assert (evicted.status.phase, evicted.status.reason) == ("Failed", "Evicted")
    disruption = next(c for c in evicted.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    term = evicted.status.container_statuses[0].state.terminated
    assert term.exit_code == 137
    pods = core.list_namespaced_pod(NS, label_selector="job-name=evict").items
    assert sorted(p.status.phase for p in pods) == ["Failed", "Succeeded"]
    assert any(e.reason == "Evicted" for e in core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={first.metadata.name}").items)


def test_eviction_api_marks_and_deletes_the_pod(cluster, batch, core):
    batch.create_namespaced_job(NS, job("api-evict", "import time; time.sleep(30)"))
    pod = wait_pod(core, lambda p: p.status.phase == "Running", "job-name=api-evict")
    name = pod.metadata.name
    seen = []
    cluster.store.listeners.append(lambda ch: seen.append(ch.obj) if ch.resource == "pods"
                                   and ch.obj["metadata"]["name"] == name else None)
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    resp = core.create_namespaced_pod_eviction(name, NS, body, _preload_content=False)
    assert resp.status == 201 and json.loads(resp.data)["status"] == "Success"
    cluster.wait_for(lambda: not cluster.pods(predicate=lambda p: p["metadata"]["name"] == name))
    last = seen[-1]
    assert last["status"]["phase"] == "Failed"
    assert {"type": "DisruptionTarget", "reason": "EvictionByEvictionAPI"}.items() <= \
        next(c for c in last["status"]["conditions"] if c["type"] == "DisruptionTarget").items()
    retry = wait_pod(core, lambda p: p.metadata.name != name and p.status.phase == "Running",
                     "job-name=api-evict")
    cluster.evict(retry.metadata.name, reason="PreemptionByScheduler", delete=True)
    cluster.wait_for(lambda: not cluster.pods(
        predicate=lambda p: p["metadata"]["name"] == retry.metadata.name))
    # without a podFailurePolicy, disruptions count against backoffLimit like any failure
    cluster.wait_for_job("api-evict", lambda j: j["status"].get("failed") == 2)


def test_backoff_limit_per_index(cluster, batch, core):
    code = """
        import os, sys
        sys.exit(1 if os.environ["JOB_COMPLETION_INDEX"] == "1" else 0)
    """
    batch.create_namespaced_job(NS, job("bpi", code, completionMode="Indexed", completions=3,
                                        parallelism=3, backoffLimitPerIndex=1))
    failed = wait_condition(batch, "bpi", "Failed")
    st = failed.status
    assert (st.failed_indexes, st.completed_indexes, st.failed, st.succeeded) == \
        ("1", "0,2", 2, 2)
    assert st.conditions[-1].reason == "FailedIndexes"
    assert failed.spec.backoff_limit == 2147483647
    ones = core.list_namespaced_pod(
        NS, label_selector="job-name=bpi,batch.kubernetes.io/job-completion-index=1").items
    counts = sorted(p.metadata.annotations["batch.kubernetes.io/job-index-failure-count"]
                    for p in ones)
    assert counts == ["0", "1"]


def test_fail_index_rule_and_max_failed_indexes(cluster, batch):
    policy = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In",
                                                                "values": [3]}}]}
    batch.create_namespaced_job(NS, job(
        "fidx", "import sys, time; time.sleep(0.2); sys.exit(3)", completionMode="Indexed",
        completions=4, parallelism=1, backoffLimitPerIndex=5, maxFailedIndexes=1,
        podFailurePolicy=policy))
    failed = wait_condition(batch, "fidx", "Failed")
    assert failed.status.conditions[-1].reason == "MaxFailedIndexesExceeded"
    assert failed.status.failed_indexes == "0-1" and failed.status.failed == 2


def test_backoff_limit_and_on_failure_restarts(cluster, batch, core, tmp_path):
    batch.create_namespaced_job(NS, job("bol", "raise SystemExit(1)", backoffLimit=1))
    failed = wait_condition(batch, "bol", "Failed")
    assert failed.status.conditions[-1].reason == "BackoffLimitExceeded"
    assert failed.status.failed == 2
    assert len(core.list_namespaced_pod(NS, label_selector="job-name=bol").items) == 2

    marker = tmp_path / "ran"
    code = f"""
        import os, sys
        print("attempt")
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            sys.exit(5)
    """
    batch.create_namespaced_job(NS, job("onfail", code, restart="OnFailure"))
    wait_condition(batch, "onfail", "Complete")
    pod = core.list_namespaced_pod(NS, label_selector="job-name=onfail").items[0]
    cs = pod.status.container_statuses[0]
    assert cs.restart_count == 1 and cs.last_state.terminated.exit_code == 5
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, previous=True) == "attempt\n"


# ------------------------------------------------------------------------------ deadlines, kills
def test_active_deadline_seconds_kills_the_pods(cluster, batch, core):
    batch.create_namespaced_job(NS, job("ads", "import time; time.sleep(30)",
                                        activeDeadlineSeconds=1))
    pod = wait_pod(core, lambda p: p.status.phase == "Running", "job-name=ads")
    pid = cluster.pid(pod.metadata.name)
    failed = wait_condition(batch, "ads", "Failed", timeout=8)
    assert failed.status.conditions[-1].reason == "DeadlineExceeded"
    assert failed.status.conditions[-1].message == "Job was active longer than specified deadline"
    assert pid and gone(pid)
    assert not core.list_namespaced_pod(NS, label_selector="job-name=ads").items


def test_memory_limit_is_enforced_as_oom_kill(cluster, batch, core):
    code = """
        import time
        hog = b"x" * (256 << 20)
        time.sleep(30)
    """
    ctr = container(code, resources={"limits": {"memory": "64Mi", "cpu": "500m"}})
    batch.create_namespaced_job(NS, job("oom", ctr=ctr, backoffLimit=0))
    failed = wait_condition(batch, "oom", "Failed")
    assert failed.status.conditions[-1].reason == "BackoffLimitExceeded"
    pod = core.list_namespaced_pod(NS, label_selector="job-name=oom").items[0]
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (137, "OOMKilled")
    assert pod.status.qos_class == "Guaranteed"
    node_events = core.list_namespaced_event(NS, field_selector="involvedObject.kind=Node")
    assert any(e.reason == "OOMKilling" for e in node_events.items)


def test_kill_injects_signals(cluster, batch, core):
    batch.create_namespaced_job(NS, job("kill", "import time; time.sleep(30)",
                                        completionMode="Indexed", completions=2, parallelism=2,
                                        backoffLimit=5))
    pods = [wait_pod(core, lambda p, i=i: p.status.phase == "Running" and p.metadata.labels[
        "batch.kubernetes.io/job-completion-index"] == str(i), "job-name=kill") for i in (0, 1)]
    cluster.kill(pods[0].metadata.name)
    cluster.kill(pods[1].metadata.name, signal.SIGTERM)
    for pod, code in zip(pods, (137, 143), strict=True):
        done = wait_pod(core, lambda p, n=pod.metadata.name: p.metadata.name == n
                        and p.status.phase == "Failed")
        term = done.status.container_statuses[0].state.terminated
        assert (term.exit_code, term.reason) == (code, "Error")
    cluster.wait_for_job("kill", lambda j: j["status"].get("failed") == 2)


# ------------------------------------------------------------------------------ scheduling
def test_unschedulable_pods_and_node_pools(cluster, batch, core):
    ctr = container("pass", resources={"requests": {"cpu": "64", "memory": "1Gi"}})
    batch.create_namespaced_job(NS, job("huge", ctr=ctr))
    pod = wait_pod(core, lambda p: p.status.conditions and p.status.conditions[0].reason ==
                   "Unschedulable", "job-name=huge")
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    cond = pod.status.conditions[0]
    assert (cond.type, cond.status) == ("PodScheduled", "False")
    assert cond.message.startswith("0/3 nodes are available: 3 Insufficient cpu.")
    name = pod.metadata.name
    events = cluster.wait_for(lambda: len(core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={name},involvedObject.kind=Pod").items) >= 2
        and core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items)
    by_reason = {e.reason: e for e in events}
    assert by_reason["FailedScheduling"].type == "Warning"
    assert by_reason["FailedScheduling"].source.component == "default-scheduler"
    assert by_reason["NotTriggerScaleUp"].message == \
        "pod didn't trigger scale-up: 1 Insufficient cpu"
    assert "TriggeredScaleUp" not in by_reason

    gpu_pod = {"nodeSelector": {"node.kubernetes.io/instance-type": GPU_TYPE}}
    gctr = container("print('on gpu')", resources={"limits": {"nvidia.com/gpu": "1"}})
    batch.create_namespaced_job(NS, job("gpu", ctr=gctr, pod=gpu_pod))
    msg = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    wait_pod(core, lambda p: p.status.conditions[0].message.startswith(msg), "job-name=gpu")
    cluster.add_node_pool(gpu_pool())
    untolerated = "0/4 nodes are available: 1 node(s) had untolerated taint {sku: gpu}, 3 node"
    # (reason strings are sorted with their counts, as kube-scheduler's FitError does)
    wait_pod(core, lambda p: p.status.conditions[0].message.startswith(untolerated),
             "job-name=gpu")

    tolerations = [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    batch.create_namespaced_job(NS, job("gpu-ok", ctr=gctr, pod={**gpu_pod,
                                                              "tolerations": tolerations}))
    wait_condition(batch, "gpu-ok", "Complete")
    ran = core.list_namespaced_pod(NS, label_selector="job-name=gpu-ok").items[0]
    node = core.read_node(ran.spec.node_name)
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == GPU_TYPE

    cluster.add_node_pool(spot_pool())
    key = "kubernetes.azure.com/scalesetpriority"
    spot = {"tolerations": [{"key": key, "operator": "Equal", "value": "spot",
                             "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": key, "operator": "In", "values": ["spot"]}]}]}}}}
    batch.create_namespaced_job(NS, job("spot", pod=spot))
    wait_condition(batch, "spot", "Complete")
    ran = core.list_namespaced_pod(NS, label_selector="job-name=spot").items[0]
    assert core.read_node(ran.spec.node_name).metadata.labels[key] == "spot"


def test_autoscaler_grows_a_pool_with_headroom(tmp_path):
    pools = [NodePool(count=1, max_count=2, cpu="2", memory="8Gi")]
    with FakeCluster(node_pools=pools, scale_up_delay=0.3) as fake:
        api = config.new_client_from_config(str(fake.write_kubeconfig(tmp_path / "kc")))
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        ctr = container("import time; time.sleep(1)", resources={"requests": {"cpu": "1500m"}})
        batch.create_namespaced_job(NS, job("grow", ctr=ctr, completionMode="Indexed",
                                            completions=2, parallelism=2))
        wait_condition(batch, "grow", "Complete")
        assert len(core.list_node().items) == 2
        reasons = {e.reason for e in core.list_namespaced_event(NS).items}
        assert {"FailedScheduling", "TriggeredScaleUp"} <= reasons
        api.close()


def test_image_pull_failure(cluster, batch, core):
    image = "example.azurecr.io/missing:1"
    cluster.failing_images = {image}
    batch.create_namespaced_job(NS, job("pull", ctr={**container("pass"), "image": image}))
    pod = wait_pod(core, lambda p: p.status.container_statuses and p.status.container_statuses[
        0].state.waiting.reason == "ImagePullBackOff", "job-name=pull")
    waiting = pod.status.container_statuses[0].state.waiting
    assert waiting.message == f'Back-off pulling image "{image}"'
    assert pod.status.phase == "Pending" and pod.status.container_statuses[0].image_id == ""
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name="
                                        f"{pod.metadata.name}").items
    messages = [e.message for e in events if e.reason == "Failed"]
    assert any(m.startswith(f'Failed to pull image "{image}"') for m in messages)
    assert "Error: ErrImagePull" in messages and "Error: ImagePullBackOff" in messages
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log(pod.metadata.name, NS)
    assert "waiting to start: ImagePullBackOff" in status_of(exc.value)["message"]
    cluster.failing_images = set()
    wait_condition(batch, "pull", "Complete")


# ------------------------------------------------------------------------------ deletion, TTL
def test_delete_propagation(cluster, batch, core):
    def start(name: str) -> list[int]:
        batch.create_namespaced_job(NS, job(name, "import time; time.sleep(30)",
                                            completionMode="Indexed", completions=2,
                                            parallelism=2))
        cluster.wait_for(lambda: len(cluster.pods(predicate=lambda p: p["metadata"]["labels"][
            "job-name"] == name and p["status"]["phase"] == "Running")) == 2)
        return [cluster.pid(p.metadata.name) for p in
                core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items]

    pids = start("bg")
    status = batch.delete_namespaced_job("bg", NS, propagation_policy="Background")
    assert status["status"] == "Success" and status["details"]["kind"] == "jobs"
    cluster.wait_for(lambda: not core.list_namespaced_pod(NS, label_selector="job-name=bg").items)
    assert all(gone(pid) for pid in pids)

    pids = start("orphan")
    batch.delete_namespaced_job("orphan", NS)  # batch/v1 default: orphan the pods
    time.sleep(0.3)
    left = core.list_namespaced_pod(NS, label_selector="job-name=orphan").items
    assert len(left) == 2 and all(p.metadata.owner_references is None for p in left)
    assert not any(gone(pid) for pid in pids)
    for p in left:
        core.delete_namespaced_pod(p.metadata.name, NS, grace_period_seconds=0)
    cluster.wait_for(lambda: all(gone(pid) for pid in pids))

    pids = start("fg")
    # foreground: the Job still exists (finalizer) and is what the apiserver returns
    body = batch.delete_namespaced_job("fg", NS, propagation_policy="Foreground")
    assert body["kind"] == "Job" and body["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert body["metadata"]["deletionTimestamp"]
    cluster.wait_for(lambda: not batch.list_namespaced_job(NS).items)
    assert all(gone(pid) for pid in pids)


def test_ttl_seconds_after_finished_deletes_job_and_pods(cluster, batch, core):
    batch.create_namespaced_job(NS, job("ttl", "pass", ttlSecondsAfterFinished=1))
    wait_condition(batch, "ttl", "Complete")
    assert core.list_namespaced_pod(NS, label_selector="job-name=ttl").items
    cluster.wait_for(lambda: not batch.list_namespaced_job(NS).items, timeout=5)
    cluster.wait_for(lambda: not core.list_namespaced_pod(NS, label_selector="job-name=ttl")
                     .items)


# ------------------------------------------------------------------------------ strictness
def test_strict_requests_get_status_errors(cluster, batch, core, tmp_path):
    bad = job("bad")
    bad["spec"]["bogus"] = 1
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    jobs_path = f"/apis/batch/v1/namespaces/{NS}/jobs"
    code, body = raw(cluster, "POST", jobs_path, bad)
    assert (code, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (
        'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolcy", '
        'unknown field "spec.bogus"')
    code, body = raw(cluster, "POST", jobs_path, {**job("x"), "apiVersion": "batch/v2"})
    assert code == 400
    code, body = raw(cluster, "POST", "/apis/batch/v1/namespaces/other/jobs", job("x") | {
        "metadata": {"name": "x", "namespace": NS}})
    assert code == 400 and "does not match the namespace" in body["message"]
    code, body = raw(cluster, "GET", f"{jobs_path}?watch=true&sendInitialEvents=true")
    assert code == 400 and "sendInitialEvents" in body["message"]
    code, body = raw(cluster, "PUT", f"{jobs_path}/x", job("x"))
    assert (code, body["reason"]) == (405, "MethodNotAllowed")

    no_restart = job("norestart")
    del no_restart["spec"]["template"]["spec"]["restartPolicy"]
    no_restart["spec"]["completionMode"] = "Indexed"
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, no_restart)
    body = status_of(exc.value)
    assert (exc.value.status, body["reason"]) == (422, "Invalid")
    assert {c["field"] for c in body["details"]["causes"]} == {
        "spec.template.spec.restartPolicy", "spec.completions"}

    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In",
                                                              "values": [0]}}]}
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job("pfp", restart="OnFailure", podFailurePolicy=policy))
    assert exc.value.status == 422

    typed = client.V1Job(metadata=client.V1ObjectMeta(generate_name="typed-"),
                         spec=client.V1JobSpec(template=client.V1PodTemplateSpec(
                             spec=client.V1PodSpec(restart_policy="Never", containers=[
                                 client.V1Container(name="main", image="python:3.12",
                                                    command=[sys.executable, "-c", "pass"])]))))
    made = batch.create_namespaced_job(NS, typed)
    assert made.metadata.name.startswith("typed-") and len(made.metadata.name) == 11
    assert batch.create_namespaced_job(NS, job("dry"), dry_run="All").metadata.uid
    with pytest.raises(ApiException) as exc:
        batch.read_namespaced_job("dry", NS)
    assert exc.value.status == 404
    assert status_of(exc.value)["details"] == {"name": "dry", "group": "batch", "kind": "jobs"}

    batch.create_namespaced_job(NS, job("dup"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job("dup"))
    assert (exc.value.status, status_of(exc.value)["reason"]) == (409, "AlreadyExists")

    with pytest.raises(ApiException) as exc:
        batch.patch_namespaced_job("dup", NS, {"spec": {"suspend": True}})
    assert exc.value.status == 405
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod(NS, label_selector="a in b")
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod(NS, field_selector="spec.containers=x")
    assert status_of(exc.value)["message"] == "field label not supported: spec.containers"
    with pytest.raises(ApiException) as exc:
        client.AppsV1Api(batch.api_client).list_namespaced_deployment(NS)
    assert exc.value.status == 404

    cluster.token = "rotated"
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod(NS)
    assert exc.value.status == 401


def test_suspend_is_tolerated(cluster, batch, core):
    batch.create_namespaced_job(NS, job("sus", "pass", suspend=True))
    suspended = wait_condition(batch, "sus", "Suspended")
    assert suspended.status.conditions[0].reason == "JobSuspended"
    assert not core.list_namespaced_pod(NS, label_selector="job-name=sus").items
