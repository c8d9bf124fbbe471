"""Bad input on the local backend: real runner processes, a real store. Each refused call
leaves nothing behind; each accepted one behaves as a user expects."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import traceback

import pytest

import aksrun
from aksrun.api.session import default_client
from aksrun.core import job as jobmod
from aksrun.errors import UnsupportedFunctionError
from tests.support.clirun import aksrun_cli


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    return default_client()


def _nothing_stored(client) -> bool:
    return not list(client.store.list("jobs/")) and not list(client.store.list("functions/"))


def square(x):
    return x * x


async def double_later(x):
    await asyncio.sleep(0.01)
    return 2 * x


async def fail_later(message):
    await asyncio.sleep(0)
    raise ValueError(message)


def numbers(n):
    yield from range(n)


def recurse(n):
    return recurse(n + 1)


def a_lock(_):
    return {"lock": threading.Lock()}


# --- 2. async functions run; generator functions are refused ---------------------------------


def test_an_async_function_is_awaited_remotely(local):
    remote = aksrun.function()(double_later)
    assert remote(21) == 42
    assert list(remote.map([1, 2, 3])) == [2, 4, 6]


def test_an_async_function_raises_its_own_exception_from_its_own_frame(local):
    with pytest.raises(ValueError, match="async boom") as info:
        aksrun.function()(fail_later)("async boom")
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "fail_later"
    assert not any("asyncio" in f.filename for f in frames)  # the runner's loop is not shown


def test_a_generator_function_is_refused_and_nothing_is_written(local):
    with pytest.raises(UnsupportedFunctionError, match="Return a list instead"):
        aksrun.function()(numbers)
    with aksrun.Executor() as ex, pytest.raises(UnsupportedFunctionError):
        ex.submit(numbers, 3)
    assert _nothing_stored(local)


# --- 3. endless maps ---------------------------------------------------------------------------


def test_an_endless_map_is_refused_and_nothing_is_written(local):
    with pytest.raises(aksrun.ConfigError, match="1,000,000"):
        aksrun.function()(square).map(itertools.count())
    with aksrun.Executor() as ex, pytest.raises(aksrun.ConfigError, match="1,000,000"):
        ex.map(square, itertools.count())
    assert _nothing_stored(local)


# --- 5. executor arguments ---------------------------------------------------------------------


def test_bad_executor_arguments_are_refused_and_nothing_is_written(local):
    with pytest.raises(aksrun.ConfigError, match=r"max_parallel=-3 is not valid"):
        aksrun.Executor(max_parallel=-3)
    with aksrun.Executor() as ex, pytest.raises(aksrun.ConfigError, match="chunksize=0"):
        ex.map(square, range(3), chunksize=0)
    assert _nothing_stored(local)


# --- 4. a remote RecursionError ----------------------------------------------------------------


def test_a_remote_recursion_error_is_raised_as_itself_with_its_frames(local):
    with pytest.raises(RecursionError) as info:
        aksrun.function()(recurse)(0)
    text = "".join(traceback.format_exception(info.value))
    assert "in recurse" in text and "were trimmed" in text


# --- 8. a return value that won't pickle ---------------------------------------------------------


def test_an_unpicklable_return_value_fails_the_call_and_the_job(local):
    fut = aksrun.function()(a_lock).submit(1)
    with pytest.raises(aksrun.SerializationError, match=r"a_lock\(\).*'_thread\.lock'"):
        fut.result(timeout=60)
    for _ in range(200):  # the job's own end follows its last task's within moments
        if local.status(fut.job_id).state not in ("pending", "running"):
            break
        time.sleep(0.05)
    assert local.status(fut.job_id).state == "failed"
    listed = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    assert [j["state"] for j in listed if j["job_id"] == fut.job_id] == ["failed"]
    shown = aksrun_cli("jobs", "show", fut.job_id, "--json")
    assert json.loads(shown.stdout)["state"] == "failed"


# --- 6. job records changed in the store ---------------------------------------------------------


def _finished_job(client) -> str:
    fut = aksrun.function()(square).submit(2)
    assert fut.result(timeout=60) == 4
    return fut.job_id


def test_a_record_with_a_flipped_byte_is_an_integrity_error_everywhere(local):
    job_id = _finished_job(local)
    key = jobmod.record_key(job_id)
    raw = bytearray(local.store.get(key))
    raw[0] ^= 0xFF
    local.store.put(key, bytes(raw))
    with pytest.raises(aksrun.IntegrityError) as info:
        aksrun.get(job_id)
    assert job_id in str(info.value) and key in str(info.value)
    for args in (["jobs", "result", job_id], ["jobs", "show", job_id]):
        out = aksrun_cli(*args)
        assert out.returncode == 1 and key in out.stderr and "Traceback" not in out.stderr, args
        assert out.stdout == ""


def test_an_edited_but_valid_record_does_not_reshape_the_result(local):
    job_id = _finished_job(local)
    key = jobmod.record_key(job_id)
    edited = bytes(local.store.get(key)).replace(b'"kind": "call"', b'"kind": "map"')
    local.store.put(key, edited)
    with pytest.raises(aksrun.IntegrityError, match=rf"{job_id}.*{key}"):
        aksrun.get(job_id).result(timeout=60)
    out = aksrun_cli("jobs", "result", job_id)
    assert out.returncode == 1 and "[4]" not in out.stdout and key in out.stderr
    # while compute still knows the job, its record is checked against the digest the job
    # was launched with: `jobs show` does not present the edited record as the job's
    out = aksrun_cli("jobs", "show", job_id)
    assert out.returncode == 1 and key in out.stderr and "changed" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


# --- 7. a corrupted function object ------------------------------------------------------------


def test_a_corrupted_function_object_does_not_stay_cached(local):
    remote = aksrun.function()(square)
    assert remote(3) == 9
    (key,) = list(local.store.list("functions/"))
    data = bytearray(local.store.get(key))
    data[-1] ^= 0xFF
    local.store.put(key, bytes(data))
    with pytest.raises(aksrun.IntegrityError, match="function"):
        remote(4)  # this process had checked the object already: the runner catches it
    assert remote(5) == 25  # the next call checks again and re-uploads
    assert remote(6) == 36


# --- AKSRUN_HOME unusable, from the library (not only the CLI) --------------------------------


def test_a_call_with_aksrun_home_under_a_file_is_a_config_error_and_leaves_no_job(
        tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = tmp_path / "store"
    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    monkeypatch.setenv("AKSRUN_HOME", str(blocker / "aksrun"))
    monkeypatch.setenv("AKSRUN_STORE", store.as_uri())
    with pytest.raises(aksrun.ConfigError) as info:
        aksrun.function()(square)(3)
    assert f"{blocker} is a file, not a directory" in str(info.value)
    assert "AKSRUN_HOME" in str(info.value)
    assert not (store / "jobs").exists() or not any((store / "jobs").iterdir())
    assert blocker.read_text() == ""
