"""The runner, PID 1 of its container, on SIGTERM (the kubelet's first word on a deleted,
evicted or preempted pod): it stops the call at once, flushes the live log and exits 143, with
a termination message that says so. Without a handler, PID 1 ignores SIGTERM: the pod would
wait out its grace period (capped at 5 s by the node agent, 30 s on AKS) and be SIGKILLed
(exit 137), losing the call's last lines.

On the real control plane; the node agent signals the container as a kubelet does."""

from __future__ import annotations

import json
import threading
import time

import pytest

import aksrun
from tests.support.clirun import aksrun_cli
from tests.support.cluster_fixtures import pod_writable

pytestmark = [pytest.mark.cluster, pytest.mark.azurite]

# The node agent's cap on grace periods: SIGKILL (exit 137) comes this long after SIGTERM.
GRACE = 5.0


def stops_cleanly(attempts: str):
    """Prints, then sleeps far longer than any grace period; its clean-up prints on the way
    out. A retry (marked in the shared file) returns at once."""
    import os
    import time

    retry = os.path.exists(attempts)
    with open(attempts, "a") as out:
        out.write("attempt\n")
    if retry:
        return "retried"
    print("working on it", flush=True)
    try:
        time.sleep(60)
    finally:
        print("cleaning up after SIGTERM")  # buffered: only the runner's last flush sends it
    return "slept"


def ignores_sigterm(attempts: str):
    """A call that swallows the runner's stop (and keeps its main thread busy): only the
    runner's backstop can end it before the grace period does."""
    import os
    import time

    retry = os.path.exists(attempts)
    with open(attempts, "a") as out:
        out.write("attempt\n")
    if retry:
        return "retried"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            time.sleep(60)
        except BaseException:
            print("told to stop; not stopping")
    return "slept"


class PodEnds:
    """Watches the namespace's pods and records each container's first terminated state, with
    when it was seen: a terminated pod may be gone (deleted) by the time a poll looks."""

    def __init__(self, k8s) -> None:
        from kubernetes import watch

        self.k8s, self.ended, self.seen = k8s, {}, threading.Condition()
        self.error: Exception | None = None
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        api = self.k8s.admin_api()
        sanitize = self.k8s.cluster.admin_client().sanitize_for_serialization
        try:
            for event in self._watch.stream(api.list_namespaced_pod, self.k8s.namespace,
                                            timeout_seconds=120):
                pod = sanitize(event["object"])
                for status in pod["status"].get("containerStatuses") or []:
                    terminated = (status.get("state") or {}).get("terminated")
                    if terminated and pod["metadata"]["name"] not in self.ended:
                        with self.seen:
                            self.ended[pod["metadata"]["name"]] = (time.monotonic(), terminated)
                            self.seen.notify_all()
        except Exception as exc:  # the namespace goes at teardown: only wait() cares
            with self.seen:
                self.error = exc
                self.seen.notify_all()

    def wait(self, name: str, timeout: float = 30.0) -> tuple[float, dict]:
        with self.seen:
            self.seen.wait_for(lambda: name in self.ended or self.error, timeout)
            assert name in self.ended, (
                f"pod {name} did not terminate within {timeout} s ({self.error or 'no error'})")
            return self.ended[name]

    def stop(self) -> None:
        self._watch.stop()


@pytest.fixture
def pod_ends(k8s):
    ends = PodEnds(k8s)
    yield ends
    ends.stop()


def _stopped_in_the_call(k8s, tmp_path, pod_ends, stop, func=stops_cleanly):
    """Run `func`; once it sleeps, stop its pod with `stop(future, pod_name)`; return (the
    future, the seconds from the stop to the container's end, its terminated state)."""
    attempts = pod_writable(tmp_path) / "attempts"
    fut = aksrun.function()(func).submit(str(attempts))
    pod = k8s.running_pod(fut.job_id)["metadata"]["name"]
    k8s.wait_for(attempts.exists, timeout=60)
    time.sleep(0.5)  # into the sleep
    start = time.monotonic()
    stop(fut, pod)
    seen, terminated = pod_ends.wait(pod)
    print(f"pod {pod} ended {seen - start:.2f} s after the stop: {terminated}")
    return fut, seen - start, terminated


def _log(job_id: str) -> str:
    logs = aksrun_cli("jobs", "logs", job_id)
    assert logs.returncode == 0, logs.stderr
    return logs.stdout


def test_an_evicted_runner_exits_143_at_once_and_its_last_lines_reach_the_store(
        k8s, tmp_path, pod_ends):
    fut, seconds, terminated = _stopped_in_the_call(
        k8s, tmp_path, pod_ends, lambda fut, pod: k8s.evict(pod))
    assert terminated["exitCode"] == 143, terminated  # 137: SIGKILLed after the grace period
    assert seconds < GRACE - 1, f"the runner took {seconds:.1f} s to stop"
    message = json.loads(terminated["message"])
    assert message["error"] == "Terminated" and "SIGTERM" in message["message"]
    # The eviction is retried, uncounted (DisruptionTarget: podFailurePolicy Ignore).
    assert fut.result(timeout=120) == "retried"
    job = k8s.wait_for(lambda: next((j for j in k8s.jobs() if j["status"].get("succeeded")),
                                    None), timeout=30)
    assert not job["status"].get("failed")
    log = _log(fut.job_id)
    assert "working on it" in log
    assert "cleaning up after SIGTERM" in log


def test_a_cancelled_runner_exits_143_at_once_and_its_last_lines_reach_the_store(
        k8s, tmp_path, pod_ends):
    fut, seconds, terminated = _stopped_in_the_call(
        k8s, tmp_path, pod_ends, lambda fut, pod: fut.cancel())
    assert terminated["exitCode"] == 143, terminated
    assert seconds < GRACE - 1, f"the runner took {seconds:.1f} s to stop"
    assert json.loads(terminated["message"])["error"] == "Terminated"
    assert "cleaning up after SIGTERM" in _log(fut.job_id)


def test_a_call_that_ignores_the_stop_is_ended_by_the_runner_before_the_grace_period(
        k8s, tmp_path, pod_ends):
    fut, seconds, terminated = _stopped_in_the_call(
        k8s, tmp_path, pod_ends, lambda fut, pod: k8s.evict(pod), func=ignores_sigterm)
    assert terminated["exitCode"] == 143, terminated
    assert seconds < GRACE - 1, f"the runner took {seconds:.1f} s to stop"
    assert json.loads(terminated["message"])["error"] == "Terminated"
    assert fut.result(timeout=120) == "retried"
    assert "told to stop; not stopping" in _log(fut.job_id)
