"""End-to-end job lifecycle scenarios: submit, wait, verify; map; remote exceptions; timeout;
cancel; logs. Each is `scenario_xxx(target)`, using only the public API on the configuration
the target's fixture applied. Every wait is bounded by `target.timeout`."""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

import aksrun
from aksrun.api.session import default_client
from aksrun.core import job as jobmod

from . import remote_funcs as rf
from .target import Target


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.2) -> Any:
    """Poll `predicate` until it is truthy (and return its value); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def read_log(target: Target, job_id: str, index: int = 0) -> bytes:
    try:
        return bytes(target.store.read(jobmod.log_key(job_id, index)))
    except KeyError:
        return b""


def final_status(target: Target, job_id: str):
    """The job's status once compute reports it finished (a pod's success can be seen before
    the Job's own Complete condition)."""
    client = default_client()
    return wait_until(
        lambda: (s := client.status(job_id)).state not in ("pending", "running") and s,
        target.timeout, f"job {job_id} to be reported finished",
    )


# --- scenarios ------------------------------------------------------------------------------


def scenario_call_returns_value(target: Target) -> None:
    """A blocking call: one job, the value back."""
    assert target.function(rf.add)(2, b=40) == 42
    assert len(target.jobs_of(rf.add)) == 1


def scenario_submit_wait_and_verify(target: Target) -> None:
    """Submit, get the job id at once, wait for the result, verify it; re-attach by id."""
    fut = target.function(rf.describe).submit(12345)
    target.track(fut.job_id)
    assert isinstance(fut, aksrun.Future) and isinstance(fut, cf.Future)
    assert fut.job_id.startswith(target.job_prefix)
    out = fut.result(timeout=target.timeout)
    assert out["input"] == 12345 and out["square"] == 152399025
    assert out["digits"] == [1, 5, 2, 3, 9, 9, 0, 2, 5]
    assert out["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (out["host"], out["pid"]) != (socket.gethostname(), os.getpid()), "ran in-process"

    assert aksrun.get(fut.job_id).result(timeout=target.timeout) == out
    status = final_status(target, fut.job_id)
    assert status.state == "succeeded", status
    assert status.calls == 1 and status.tasks == 1


def scenario_map_results_in_order(target: Target) -> None:
    """A map is ONE job of several tasks; results come back in input order."""
    remote = target.function(rf.square)
    results = list(remote.map(range(20), chunksize=3, max_parallel=4))
    assert results == [x * x for x in range(20)]
    jobs = target.jobs_of(rf.square)
    assert len(jobs) == 1, f"a map must be one job, found {jobs}"
    status = final_status(target, jobs[0])
    assert status.state == "succeeded", status
    assert status.calls == 20 and status.tasks == 7 and status.calls_done == 20
    assert aksrun.get(jobs[0]).result(timeout=target.timeout) == results


def scenario_map_failures_in_place(target: Target) -> None:
    """return_exceptions=True puts a call's exception in its place, of its own type."""
    results = list(target.function(rf.fail_on).map(range(6), chunksize=2,
                                                    return_exceptions=True))
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    assert isinstance(results[3], rf.ScenarioError) and "input 3 is bad" in str(results[3])


def scenario_remote_exception_with_traceback(target: Target) -> None:
    """A remote exception is raised here as itself, with the remote frames in its traceback."""
    with pytest.raises(ValueError, match="remote boom") as info:
        target.function(rf.raise_value_error)("remote boom")
    text = "".join(traceback.format_exception(info.value))
    assert "deeper" in text and "raise_value_error" in text, text
    [job_id] = target.jobs_of(rf.raise_value_error)
    notes = getattr(info.value, "__notes__", [])
    assert any(job_id in note for note in notes), notes

    with pytest.raises(rf.ScenarioError, match="input 3 is bad"):
        target.function(rf.fail_on)(3)


def scenario_timeout(target: Target) -> None:
    """A call longer than its timeout= raises CallTimeoutError (a TimeoutError) instead of
    waiting for the function to return."""
    remote = target.function(rf.sleep_for, timeout=2)
    start = time.monotonic()
    with pytest.raises(aksrun.CallTimeoutError) as info:
        remote(60)
    assert isinstance(info.value, TimeoutError)
    assert "timeout=2s" in str(info.value), str(info.value)
    assert time.monotonic() - start < target.timeout
    assert len(target.jobs_of(rf.sleep_for)) == 1


def scenario_cancel(target: Target) -> None:
    """Cancelling a running call stops the remote job: no output is ever written, and the job
    can't be re-attached to for a value."""
    fut = target.function(rf.announce_then_sleep).submit(300)
    job_id = target.track(fut.job_id)
    wait_until(lambda: b"started" in read_log(target, job_id), target.timeout,
               f"job {job_id} to start running")
    assert not fut.done()
    assert fut.cancel() and fut.cancelled()
    with pytest.raises(cf.CancelledError):
        fut.result(timeout=1)

    client = default_client()

    def stopped() -> bool:
        try:
            return client.status(job_id).state not in ("pending", "running")
        except aksrun.UnknownJobError:  # Kubernetes: the Job and its pods are gone
            return True

    wait_until(stopped, target.timeout, f"job {job_id} to stop after cancel")
    with pytest.raises((aksrun.JobCancelledError, aksrun.UnknownJobError)):
        aksrun.get(job_id).result(timeout=target.timeout)
    assert not target.store.exists(jobmod.output_key(job_id, 0))


def scenario_logs(target: Target) -> None:
    """stdout and stderr of the function are in the job's log (the store) and in the raw
    output of the task (Kubernetes: the pod's log)."""
    fut = target.function(rf.shout).submit("logged")
    job_id = target.track(fut.job_id)
    assert fut.result(timeout=target.timeout) == "LOGGED"
    client = default_client()
    text = "".join(client.logs(job_id, 0))
    assert "stdout: logged" in text and "stderr: logged" in text, text

    compute = client.compute
    raw = wait_until(lambda: "".join(compute.logs(compute.attach(job_id), 0)),
                     target.timeout, f"the raw output of job {job_id}")
    assert "stdout: logged" in raw, raw


def scenario_logs_stream_while_running(target: Target) -> None:
    """The log is appended while the call runs, and following it ends with the job."""
    fut = target.function(rf.print_slowly).submit(40, 0.25)
    job_id = target.track(fut.job_id)
    wait_until(lambda: b"line 1\n" in read_log(target, job_id), target.timeout,
               f"the first lines of job {job_id}'s log", interval=0.05)
    assert not fut.done(), "the log was not visible before the call ended"

    followed = "".join(default_client().logs(job_id, 0, follow=True))
    assert all(f"line {i}\n" in followed for i in range(40)), followed
    assert fut.result(timeout=target.timeout) == 40


LIFECYCLE_SCENARIOS: list[Callable[[Target], None]] = [
    scenario_call_returns_value,
    scenario_submit_wait_and_verify,
    scenario_map_results_in_order,
    scenario_map_failures_in_place,
    scenario_remote_exception_with_traceback,
    scenario_timeout,
    scenario_cancel,
    scenario_logs,
    scenario_logs_stream_while_running,
]
