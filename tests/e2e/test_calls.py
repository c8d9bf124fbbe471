"""Calls, submits, futures, exceptions, timeouts, retries and logs: on every backend."""

from __future__ import annotations

import concurrent.futures as cf
import sys
import time
import traceback

import pytest

import aksrun
from aksrun.core import job as jobmod
from tests.support.jobs import stored_job_ids

from . import funcs


def test_call_returns_value(backend):
    assert aksrun.function(cpu="500m", memory="256Mi")(funcs.add)(2, b=40) == 42


def test_submit_returns_future_with_job_id_at_once(backend):
    fut = aksrun.function()(funcs.sleep_for).submit(0.3)
    assert isinstance(fut, aksrun.Future) and isinstance(fut, cf.Future)
    assert fut.job_id.startswith("sleep-for-")
    assert not fut.done()
    assert fut.result(timeout=60) == 0.3


def test_remote_exception_keeps_type_and_remote_traceback(backend):
    remote = aksrun.function()(funcs.raise_value_error)
    with pytest.raises(ValueError, match="remote boom") as info:
        remote("remote boom")
    text = "".join(traceback.format_exception(info.value))
    assert "deeper" in text and "raise_value_error" in text  # the remote frames


def test_custom_exception_type_is_preserved(backend):
    with pytest.raises(funcs.CustomError, match="input 3 is bad"):
        aksrun.function()(funcs.fail_on)(3)


def test_remote_error_when_exception_does_not_pickle(backend):
    def raise_unpicklable():
        import threading

        exc = RuntimeError("holds a lock")
        exc.lock = threading.Lock()
        raise exc

    with pytest.raises(aksrun.RemoteError) as info:
        aksrun.function()(raise_unpicklable)()
    assert info.value.type_name == "RuntimeError"
    assert "holds a lock" in info.value.message and "raise_unpicklable" in info.value.traceback_text


def test_timeout_raises_timeout_error_soon_after_limit(backend):
    remote = aksrun.function(timeout=1)(funcs.sleep_for)
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        remote(30)
    assert isinstance(info.value, aksrun.CallTimeoutError)
    assert time.monotonic() - start < 15
    assert "timeout=1s" in str(info.value)


def test_retries_rerun_a_call_that_raised(backend, tmp_path):
    counter = str(tmp_path / "count")
    assert aksrun.function(retries=2)(funcs.flaky)(counter, 2) == 3
    with pytest.raises(RuntimeError, match="flaky failure 2"):
        aksrun.function(retries=1)(funcs.flaky)(str(tmp_path / "other"), 5)


def test_blocking_call_streams_output_to_caller_stderr(backend, capfd):
    assert aksrun.function()(funcs.shout)("hi") == "HI"
    err = capfd.readouterr().err
    assert "stdout: hi" in err and "stderr: hi" in err


def test_output_is_captured_in_the_store(backend):
    remote = aksrun.function()(funcs.shout)
    fut = remote.submit("logged")
    fut.result(timeout=60)
    text = "".join(aksrun.api.session.default_client().logs(fut.job_id, 0))
    assert "stdout: logged" in text and "stderr: logged" in text


def test_logs_are_appended_while_the_call_runs(backend):
    fut = aksrun.function()(funcs.print_slowly).submit(30, 0.1)
    client = aksrun.api.session.default_client()
    key = jobmod.log_key(fut.job_id, 0)
    deadline = time.monotonic() + 60
    seen = b""
    while time.monotonic() < deadline and not fut.done():
        try:
            seen = bytes(client.store.get(key))
        except KeyError:
            seen = b""
        if b"line 1" in seen:
            break
        time.sleep(0.05)
    assert b"line 1" in seen and not fut.done(), "log was not visible before the call ended"
    assert fut.result(timeout=60) == 30


def test_unpicklable_argument_fails_before_anything_is_written(backend):
    import threading

    client = aksrun.api.session.default_client()
    before = set(client.store.list("jobs/"))
    with pytest.raises(aksrun.SerializationError, match="argument #0"):
        aksrun.function()(funcs.square)(threading.Lock())
    assert set(client.store.list("jobs/")) == before
    assert client.list() == [] or all(s.function != "square" for s in client.list())


def test_unpicklable_return_value_raises_serialization_error(backend):
    with pytest.raises(aksrun.SerializationError, match="return value of return_lock"):
        aksrun.function()(funcs.return_lock)()


def test_cancel_stops_the_remote_call(backend, tmp_path):
    marker = tmp_path / "started"
    fut = aksrun.function()(funcs.sleep_then_mark).submit(60, str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    assert fut.cancel() and fut.cancelled()
    client = aksrun.api.session.default_client()
    for _ in range(200):
        if client.status(fut.job_id).state == "cancelled":
            break
        time.sleep(0.05)
    assert client.status(fut.job_id).state == "cancelled"
    if backend.startswith("local"):
        import os

        pid = int(marker.read_text())
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"runner process {pid} still alive after cancel")


def test_local_runs_in_process():
    import os

    remote = aksrun.function()(lambda: os.getpid())
    assert remote.local() == os.getpid()


def swallow_timeouts(x):
    import time

    if x != 1:
        return x
    while True:
        try:
            time.sleep(60)
        except BaseException:  # ignores the timeout: only the watchdog can end it
            pass


def test_a_call_that_ignores_its_timeout_fails_alone(backend):
    """Its process is killed just past the timeout; the calls before and after it in its
    task keep their values."""
    remote = aksrun.function(timeout=1)(swallow_timeouts)
    results = list(remote.map([0, 1, 2], chunksize=3, return_exceptions=True))
    assert results[0] == 0
    assert isinstance(results[1], aksrun.CallTimeoutError) and "did not stop" in str(results[1])
    assert "call 1 of swallow_timeouts()" in str(results[1])
    assert results[2] == 2


def test_ctrl_c_with_the_store_down_stops_the_job_and_keeps_the_users_exception(
        backend, tmp_path, monkeypatch):
    """Issue 11, item 11: the job is stopped first; a store failure while recording the
    cancel is logged, and never replaces the KeyboardInterrupt being raised."""
    import os
    import signal
    import threading

    from aksrun.errors import StoreError

    marker = tmp_path / "started"
    client = aksrun.api.session.default_client()

    def interrupt_when_started():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setattr(client.store, "put", _store_down)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C: a real signal wakes the waiting thread

    def _store_down(*args, **kwargs):
        raise StoreError("the store is unreachable (simulated outage)")

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        aksrun.function(name="ctrlc")(funcs.sleep_then_mark)(60, str(marker))
    monkeypatch.undo()
    assert marker.exists()  # it was interrupted while the call ran
    (job_id,) = [j for j in stored_job_ids(client) if j.startswith("ctrlc-")]
    deadline = time.monotonic() + 60
    while client.status(job_id).state in ("pending", "running") and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.status(job_id).state not in ("pending", "running")


def test_a_transient_store_error_reading_an_output_is_retried(backend, monkeypatch):
    """Issue 11, item 10: the output is written and verified; a blip while reading it must
    not fail its task ("could not be unpickled here")."""
    from aksrun.errors import StoreError

    client = aksrun.api.session.default_client()
    real = client.store.get
    failures = []

    def flaky(key, *args, **kwargs):
        if "/outputs/" in key and len(failures) < 2:
            failures.append(key)
            raise StoreError(f"reading {key}: connection reset (simulated)")
        return real(key, *args, **kwargs)

    monkeypatch.setattr(client.store, "get", flaky)
    assert aksrun.function()(funcs.add)(2, b=3) == 5
    assert len(failures) == 2


def test_a_value_of_the_users_own_class_does_not_import_their_module_remotely(
        backend, tmp_path, monkeypatch):
    """The function and its class travel by value (the user's own module); sending back an
    instance must not import that module where the call ran (it can be importable there, as
    on the local backend run from the project's folder), which would run its top level."""
    import importlib

    project = tmp_path / "project"
    project.mkdir()
    imports = tmp_path / "imports.log"
    (project / "mylib_points.py").write_text(
        f"open({str(imports)!r}, 'a').write('imported\\n')\n"
        "class Point:\n"
        "    def __init__(self, x):\n"
        "        self.x = x\n"
        "def make(x):\n"
        "    return Point(x)\n")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.chdir(project)  # where a local runner looks for modules too
    module = importlib.import_module("mylib_points")
    try:
        points = list(aksrun.function()(module.make).map([1, 2, 3]))
    finally:
        sys.modules.pop("mylib_points", None)
    assert [p.x for p in points] == [1, 2, 3]
    assert imports.read_text() == "imported\n"  # by this test's import only
