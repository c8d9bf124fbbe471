"""KubernetesCompute on the real control plane (kube-apiserver, Job controller, scheduler; the
node agent plays the kubelet): faults Kubernetes reports, and how aksrun says so. Every test
runs as a person holding only aksrun's Role in a namespace of their own."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import pytest
import yaml

import aksrun
from tests.e2e import funcs
from tests.support.clirun import aksrun_cli
from tests.support.manifests import assert_valid_job


def _job_pods(k8s, job_id):
    return k8s.pods(job_id)


def test_one_kubernetes_write_per_submission_and_reads_by_watch(k8s):
    before = k8s.requests()
    assert list(aksrun.function()(funcs.square).map(range(40), chunksize=4)) == [
        x * x for x in range(40)]
    delta = k8s.requests() - before
    writes = {k: v for k, v in delta.items() if k[0] in ("create", "update", "patch", "delete")}
    # the submission, and the outputs' digests copied onto the Job at its end
    assert writes == {("create", "jobs"): 1, ("patch", "jobs"): 1}
    assert delta[("watch", "pods")] >= 1 and delta[("watch", "jobs")] >= 1
    assert not any(verb == "get" and res == "jobs" for verb, res in delta)  # no status polling
    jobs = k8s.jobs()
    assert len(jobs) == 1 and jobs[0]["spec"]["completions"] == 10


def test_pod_killed_mid_chunk_is_retried_and_result_arrives_once(k8s, capfd):
    fut = aksrun.function()(funcs.sleep_for).submit(3)
    pod = k8s.running_pod(fut.job_id)
    time.sleep(0.5)
    k8s.kill(pod["metadata"]["name"])
    assert fut.result(timeout=120) == 3
    assert len(_job_pods(k8s, fut.job_id)) == 2
    assert "retrying" in capfd.readouterr().err


def test_evicted_pod_is_retried_and_said_so(k8s, capfd):
    remote = aksrun.function()(funcs.sleep_for)
    # Long enough to be running when the eviction comes: the runner (PID 1 of its container)
    # stops on SIGTERM, and Kubernetes retries the task without counting it.
    results = remote.map([8, 8], chunksize=1)
    client = aksrun.api.session.default_client()
    job_id = client.list()[0].job_id
    pod = k8s.running_pod(job_id, index=1)
    k8s.evict(pod["metadata"]["name"])
    assert list(results) == [8, 8]
    err = capfd.readouterr().err
    said = [line for line in err.splitlines() if "evicted or preempted" in line]
    assert len(said) == 1 and said[0].count("evicted or preempted") == 1, err  # once, once
    assert "retrying" in said[0]
    job = k8s.wait_for(lambda: next((j for j in k8s.jobs() if j["status"].get("succeeded") == 2),
                                    None), timeout=30)
    assert job["status"]["succeeded"] == 2
    assert not job["status"].get("failed")  # podFailurePolicy Ignore: not counted
    # The Eviction API deleted the evicted pod; the Job controller replaced it.
    [replacement] = _job_pods(k8s, f"{job_id}-1-")
    assert replacement["metadata"]["name"] != pod["metadata"]["name"]
    assert replacement["status"]["phase"] == "Succeeded"


def test_a_deleted_pod_counts_against_its_retries_as_the_job_controller_counts_it(
        k8s, capfd, monkeypatch):
    """`kubectl delete pod` (no DisruptionTarget): the pod ends Failed and the Job controller
    counts it against backoffLimitPerIndex; aksrun says so, and says when none are left."""
    from aksrun.core import lifecycle

    monkeypatch.setattr(lifecycle, "INFRA_RETRIES", 1)  # one retry: two deletions end it
    fut = aksrun.function()(funcs.sleep_for).submit(120)
    for _ in range(2):
        pod = k8s.running_pod(fut.job_id, timeout=90)
        k8s.admin_api().delete_namespaced_pod(pod["metadata"]["name"], k8s.namespace)
    with pytest.raises(aksrun.JobFailedError) as failed:
        fut.result(timeout=120)
    message = str(failed.value)
    assert "was deleted" in message and "(Deleted)" in message, message
    assert "no retries left: backoffLimitPerIndex=1" in message
    err = capfd.readouterr().err
    assert err.count("was deleted") == 1 and "retrying (attempt 2)" in err, err


def test_oom_killed_fails_fast_naming_the_limit(k8s):
    def hog():
        blocks = []
        while True:
            blocks.append(bytearray(50 * 1024 * 1024))
            time.sleep(0.01)

    start = time.monotonic()
    # the runner stops the call (CallOutOfMemoryError naming it), or, for a burst faster
    # than its watch, the whole container is OOMKilled (naming the call that was running)
    with pytest.raises(aksrun.CallOutOfMemoryError, match=r"call 0.*memory='128Mi'.*raise memory="):
        aksrun.function(memory="128Mi")(hog)()
    assert time.monotonic() - start < 30

    # the call failed alone: its task completed (with one call raised), not retried
    def completed() -> bool:
        return all(any(c["type"] == "Complete" and c["status"] == "True"
                       for c in (j.get("status") or {}).get("conditions") or [])
                   for j in k8s.jobs(live_only=True))

    k8s.wait_for(completed, timeout=30)
    assert len(k8s.pods("hog-")) == 1


def test_unschedulable_fails_fast_with_scheduler_message(k8s):
    start = time.monotonic()
    with pytest.raises(aksrun.JobFailedError) as info:
        aksrun.function(cpu="64", memory="1Gi")(funcs.square)(2)
    text = str(info.value)
    assert "Unschedulable" in text and "Insufficient cpu" in text and "cpu=64" in text
    assert time.monotonic() - start < 30


def test_gpu_without_gpu_nodes_is_unschedulable(k8s):
    with pytest.raises(aksrun.JobFailedError, match=r"gpu=1"):
        aksrun.function(gpu=1)(funcs.square)(2)


def test_image_pull_failure_names_the_image(k8s):
    remote = aksrun.function(image="aksrunacr.azurecr.io/does-not-exist:1")(funcs.square)
    with pytest.raises(aksrun.JobFailedError) as info:
        remote(2)
    assert "aksrunacr.azurecr.io/does-not-exist:1" in str(info.value)
    assert "ErrImagePull" in str(info.value) or "ImagePullBackOff" in str(info.value)


def test_watch_resumes_after_a_real_410(k8s, monkeypatch):
    """The API server restarts (as in a control-plane upgrade); its watch cache starts afresh,
    so a client resuming from a resourceVersion seen before the restart (one that was
    disconnected for long) gets the real 410 Gone, lists again and loses nothing."""
    from aksrun.adapters import kubernetes_watch

    fut = aksrun.function()(funcs.sleep_for).submit(6)
    k8s.running_pod(fut.job_id)
    stale = k8s.admin_api().list_namespaced_pod(k8s.namespace).metadata.resource_version
    k8s.admin_api().create_namespaced_config_map(k8s.namespace, {"metadata": {"name": "bump"}})
    real = kubernetes_watch.MergedWatch._watch_once
    restarted, gone = threading.Event(), []

    def resume_from_stale(self, source, list_call, kwargs, version):
        if source == "pod" and restarted.is_set() and not gone:
            result = real(self, source, list_call, kwargs, stale)  # raises while it is down
            gone.append(result)
            return result
        return real(self, source, list_call, kwargs, version)

    monkeypatch.setattr(kubernetes_watch.MergedWatch, "_watch_once", resume_from_stale)
    restarted.set()
    k8s.cluster.control_plane.restart_apiserver()
    assert fut.result(timeout=120) == 6
    assert gone == [None]  # the server answered 410 Gone, and aksrun listed again


def test_job_deadline_backstop(k8s, monkeypatch):
    from aksrun.core import lifecycle

    monkeypatch.setattr(lifecycle, "_deadline", lambda *a: 2)
    monkeypatch.setenv("AKSRUN_PENDING_TIMEOUT", "1s")  # the compute adds it to the deadline
    with pytest.raises(TimeoutError, match="deadline"):
        aksrun.function(timeout=60)(funcs.sleep_for)(30)


def test_dry_run_prints_a_valid_manifest_and_submits_nothing(k8s):
    before = k8s.requests()
    out = aksrun_cli("run", "--dry-run", "tests.e2e.funcs:add", "2", "b=3", "--cpu", "2",
                     "--memory", "3Gi")
    assert out.returncode == 0, out.stderr
    job = yaml.safe_load(out.stdout)
    assert_valid_job(job)
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "3Gi"}
    assert resources["limits"]["memory"] == "3Gi"
    env = {e["name"]: e.get("value", "") for e in
           job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert all(len(v) < 300 for k, v in env.items() if k != "AKSRUN_STORAGE_CONNECTION_STRING")
    assert k8s.requests() == before  # nothing reached the API
    store = aksrun.api.session.default_client().store
    assert list(store.list("jobs/")) == []


def test_get_after_the_client_died_reattaches_from_api_and_store(k8s):
    code = ("import aksrun, os; from tests.e2e import funcs;"
            "f = aksrun.function()(funcs.sleep_for).submit(1.5); print(f.job_id, flush=True);"
            "os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    job_id = out.stdout.strip()
    assert aksrun.get(job_id).result(timeout=120) == 1.5

    def state():  # the Job controller marks the Job Complete shortly after its pods end
        listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
        return [row["state"] for row in listing if row["job_id"] == job_id] == ["succeeded"]

    k8s.wait_for(state, timeout=30, interval=0.5)


def test_outputs_stay_verifiable_after_pod_gc_took_the_pods(k8s):
    """Pod GC deletes the pods of a removed node (autoscaler scale-down): the digests their
    termination messages carried were copied onto the Job, and `get` verifies against them
    (a forged one is refused as an integrity error, not trusted)."""
    from aksrun.adapters import kubernetes_digests
    from aksrun.errors import IntegrityError

    results = aksrun.function()(funcs.square).map([3, 4, 5], chunksize=1)
    assert list(results) == [9, 16, 25]
    job_id = aksrun.api.session.default_client().list()[0].job_id
    job = k8s.wait_for(lambda: next((j for j in k8s.jobs() if j["metadata"]["name"] == job_id
                                     and kubernetes_digests.ANNOTATION in
                                     (j["metadata"].get("annotations") or {})), None), 30)
    assert sorted(kubernetes_digests.decode(job)) == [0, 1, 2]
    core = k8s.admin_api()
    for pod in k8s.pods(f"{job_id}-"):  # what pod GC does to a removed node's pods
        core.delete_namespaced_pod(pod["metadata"]["name"], k8s.namespace,
                                   grace_period_seconds=0)
    k8s.wait_for(lambda: not k8s.pods(f"{job_id}-"), timeout=30)
    assert aksrun.get(job_id).result(timeout=60) == [9, 16, 25]

    recorded = kubernetes_digests.decode(job)
    recorded[1] = ("0" * 64, None)
    k8s.admin_api("BatchV1Api").patch_namespaced_job(job_id, k8s.namespace, {"metadata": {
        "annotations": {kubernetes_digests.ANNOTATION: kubernetes_digests.encode(recorded)}}})
    with pytest.raises(IntegrityError):
        aksrun.get(job_id).result(timeout=60)


def test_aks_backend_gets_its_kubeconfig_from_arm(k8s, monkeypatch):
    """AKSRUN_BACKEND=aks: the kubeconfig comes from ARM (here the test cluster's, returned by
    a stand-in for the ARM call), is written privately, and jobs run through it."""
    import os
    import stat

    from aksrun.adapters.azure import kubeconfig as arm

    calls = []

    def fetch(subscription_id, resource_group, cluster_name, credential=None, *, client=None,
              **kwargs):
        calls.append((subscription_id, resource_group, cluster_name))
        return k8s.kubeconfig.read_bytes()

    written = []
    real_write = arm.write_private_kubeconfig

    def write(data, directory=None):
        path = real_write(data, directory)
        written.append(path)
        return path

    monkeypatch.setattr(arm, "fetch_kubeconfig", fetch)
    monkeypatch.setattr(arm, "write_private_kubeconfig", write)
    monkeypatch.delenv("AKSRUN_BACKEND")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-ml")
    monkeypatch.setenv("AZURE_AKS_CLUSTER_NAME", "aks-ml")
    assert aksrun.function()(funcs.add)(20, b=22) == 42
    assert calls == [("00000000-0000-0000-0000-000000000000", "rg-ml", "aks-ml")]
    assert stat.S_IMODE(os.stat(written[0]).st_mode) == 0o600
    assert aksrun.api.session.default_client().backend == "aks"


def sleep_for(x):
    import time

    time.sleep(x)
    return x


def test_a_task_out_of_retries_fails_before_the_rest_of_the_job(k8s):
    """Each pod of task 0 is killed whole (a node fault, not a call's: a call that only ends
    its own process fails alone). The real Job controller re-creates a failed pod after
    10 s, then 20 s, 40 s...: three retries (backoffLimitPerIndex=3) take about 70 s, so the
    other task sleeps longer."""
    start = time.monotonic()
    results = aksrun.function(name="outofretries")(sleep_for).map(
        [100, 150], chunksize=1, return_exceptions=True)
    job_id = k8s.wait_for(lambda: next((j["metadata"]["name"] for j in k8s.jobs()
                                        if j["metadata"]["name"].startswith("outofretries")),
                                       None), timeout=30)
    stop = threading.Event()

    def kill_task_0() -> None:
        killed: set[str] = set()
        while not stop.is_set():
            for pod in k8s.pods(f"{job_id}-0-"):
                name = pod["metadata"]["name"]
                if pod["status"].get("phase") == "Running" and name not in killed:
                    with contextlib.suppress(Exception):
                        time.sleep(1.0)  # the runner has written which call it runs
                        k8s.kill(name)
                        killed.add(name)
            stop.wait(0.2)

    killer = threading.Thread(target=kill_task_0, daemon=True)
    killer.start()
    try:
        first = next(results)
    finally:
        stop.set()
    assert isinstance(first, aksrun.JobFailedError)
    assert "exited with code 137 (killed by SIGKILL)" in str(first), str(first)
    assert "while running call 0" in str(first) and "no retries left" in str(first)
    assert time.monotonic() - start < 140  # not after the 150 s task
    results.close()


def test_hard_timeout_is_not_retried(k8s):
    def stuck():
        import time

        while True:
            try:
                time.sleep(60)
            except BaseException:  # swallows the timeout: only the watchdog can stop it
                pass

    with pytest.raises(TimeoutError):
        aksrun.function(timeout=1)(stuck)()
    job = k8s.wait_for(lambda: next(iter(k8s.jobs()), None), timeout=10)
    k8s.wait_for(lambda: _job_finished(k8s), timeout=30)
    assert len(_job_pods(k8s, job["metadata"]["name"])) == 1


def _job_finished(k8s):
    jobs = k8s.jobs()
    return jobs and any(c.get("type") in ("Failed", "Complete") and c.get("status") == "True"
                        for c in jobs[0]["status"].get("conditions", []))


def test_a_transient_api_fault_reconnects_instead_of_failing(k8s, monkeypatch):
    from kubernetes.client.rest import ApiException

    client = aksrun.api.session.default_client()
    core = client.compute.core
    real = core.list_namespaced_pod
    faults = []

    def flaky(*args, **kwargs):
        if kwargs.get("watch") and not faults:
            faults.append(1)
            raise ApiException(status=503, reason="Service Unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "list_namespaced_pod", flaky)
    assert aksrun.function()(funcs.square)(7) == 49
    assert faults == [1]


def test_no_access_to_events_is_not_fatal(k8s, monkeypatch):
    from kubernetes.client.rest import ApiException

    client = aksrun.api.session.default_client()

    def forbidden(*args, **kwargs):
        raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(client.compute.core, "list_namespaced_event", forbidden)
    assert aksrun.function()(funcs.square)(6) == 36


def test_a_client_exits_at_once_although_its_watches_are_quiet(k8s):
    """At exit the client stops its watches; over TLS, closing a response another thread is
    reading waits for the server's next bytes (minutes on a quiet job): the socket is shut
    down instead, so a finished `aksrun run` returns promptly."""
    out = aksrun_cli("run", "tests.e2e.funcs:add", "2", "b=3", timeout=60)  # a hang: 300 s
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
    out = aksrun_cli("run", "tests.e2e.funcs:fail_on", "3", timeout=60)
    assert out.returncode == 1 and "CustomError: input 3 is bad" in out.stderr


def test_pods_that_cannot_be_created_fail_the_job_naming_why(k8s):
    """Issue 11, item 3: with its service account missing, the Job controller cannot create
    a single pod and says so only in events on the Job (no condition, no pod): aksrun fails
    the job within seconds, naming the account and the fix, instead of waiting forever."""
    k8s.admin_api().delete_namespaced_service_account("aksrun", k8s.namespace)
    start = time.monotonic()
    with pytest.raises(aksrun.JobFailedError) as info:
        aksrun.function()(funcs.square)(3)
    text = str(info.value)
    assert "serviceaccount \"aksrun\" not found" in text
    assert "service account 'aksrun'" in text and "aksrun admin add-user" in text
    assert time.monotonic() - start < 30
    k8s.wait_for(lambda: not k8s.jobs(live_only=True), timeout=30)  # cancelled, not left


def test_a_map_larger_than_the_cluster_queues_and_completes(k8s, capfd):
    """Issue 11, item 2: 100 pods of 500m on 8 cores: most wait Unschedulable for the job's
    own pods to finish. They are queued, not failed: the map completes."""
    results = aksrun.function(cpu="500m", memory="256Mi")(funcs.square).map(
        range(100), chunksize=1, progress=False)
    assert list(results) == [x * x for x in range(100)]
    assert "Unschedulable" not in capfd.readouterr().err


def test_spot_calls_run_on_the_spot_pool_and_others_never_do(k8s):
    """The test cluster has AKS's spot pool (label and NoSchedule taint
    kubernetes.azure.com/scalesetpriority=spot): spot=True tolerates it and requires it."""
    assert aksrun.function(spot=True)(funcs.add)(1, b=2) == 3
    assert aksrun.function()(funcs.add)(3, b=4) == 7
    spot_nodes = {n.metadata.name for n in k8s.admin_api().list_node(
        label_selector="kubernetes.azure.com/scalesetpriority=spot").items}
    assert spot_nodes
    by_job = {}
    for pod in k8s.pods():
        by_job.setdefault(pod["metadata"]["labels"]["aksrun.io/job-id"], pod["spec"]["nodeName"])
    spot_flags = sorted(node in spot_nodes for node in by_job.values())
    assert spot_flags == [False, True]


def test_an_unreachable_api_server_is_said_in_words(k8s, monkeypatch, tmp_path):
    """Issue 11, item 16: no answer at all (a private cluster seen from outside its network)
    gives one sentence naming the server and the likely cause, not a urllib3 traceback."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = yaml.safe_load(k8s.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(unreachable))
    with pytest.raises(aksrun.AksrunError) as info:
        aksrun.function()(funcs.add)(1, b=2)
    text = str(info.value)
    assert f"cannot reach the Kubernetes API server at https://127.0.0.1:{port}" in text
    assert "private" in text and "VPN" in text
    out = aksrun_cli("run", "tests.e2e.funcs:add", "1", "b=2", timeout=120)
    assert out.returncode == 1 and "cannot reach the Kubernetes API server" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_silently_dropped_watch_connection_is_noticed_and_replaced(k8s, monkeypatch,
                                                                    tmp_path):
    """Issue 11, item 4: a watch whose connection an idle load balancer dropped without a
    word (no FIN, no RST) would wait forever; a client-side read timeout ends it, and the
    watch resumes over a new connection."""
    from aksrun.adapters import kubernetes_watch
    from tests.support.tcp_proxy import FreezingProxy

    monkeypatch.setattr(kubernetes_watch, "WATCH_SECONDS", 4)
    monkeypatch.setattr(kubernetes_watch, "READ_MARGIN", 3.0, raising=False)
    port = int(k8s.cluster.url.rsplit(":", 1)[1])
    proxy = FreezingProxy(("127.0.0.1", port))
    try:
        config = yaml.safe_load(k8s.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        through = tmp_path / "through-proxy.kubeconfig"
        through.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("KUBECONFIG", str(through))
        fut = aksrun.function()(funcs.sleep_for).submit(3)
        k8s.running_pod(fut.job_id)
        assert proxy.freeze() >= 3  # the job, pod and event watches, at least
        assert fut.result(timeout=90) == 3
    finally:
        proxy.close()


def test_a_job_deleted_before_its_watch_listed_it_ends_the_watch_as_cancelled(k8s):
    """Seen under load: `aksrun.get` of a job being cancelled attached while its Job still
    existed, then the Job was gone before the watch's first listing, so no event about it
    ever came and the wait ran to its timeout. The watch now asks whether the Job exists."""
    compute = aksrun.api.session.default_client().compute
    fut = aksrun.function(name="deletedearly")(sleep_for).submit(300)
    handle = compute.attach(fut.job_id)  # the Job exists
    compute.delete(handle)
    k8s.wait_for(lambda: not any(j["metadata"]["name"] == fut.job_id for j in k8s.jobs()),
                 timeout=60)
    start = time.monotonic()
    events = list(compute.events(handle))
    assert events[-1].kind == "job_cancelled" and "was deleted" in events[-1].message
    assert time.monotonic() - start < 15
