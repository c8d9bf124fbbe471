"""`aksrun gc` on the local backend: what ended before the cut-off goes, nothing else."""

from __future__ import annotations

import json
import os
import time

import pytest

import aksrun
from aksrun.api.session import default_client
from aksrun.core import job as jobmod
from aksrun.gc.collect import FUNCTION_GRACE, collect
from tests.support.clirun import aksrun_cli
from tests.support.waiting import wait_for


@pytest.fixture
def local(monkeypatch, tmp_path):
    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    monkeypatch.setenv("AKSRUN_HOME", str(tmp_path / "home"))
    from aksrun.api import session

    monkeypatch.setattr(session, "_cached", None)
    return default_client()


@aksrun.function()
def double(x):
    return 2 * x


@aksrun.function()
def wait_for_release(path):
    import pathlib
    import time

    while not pathlib.Path(path).exists():
        time.sleep(0.05)
    return "released"


def _ended(client, *futures):
    """A value arrives a moment before the job's own state says it ended."""
    for fut in futures:
        wait_for(lambda f=fut: client.status(f.job_id).state == "succeeded", timeout=30)


def _keys(client, prefix):
    return list(client.store.list(prefix))


def test_finished_jobs_older_than_the_cutoff_go_with_their_objects(local):
    fut = double.submit(21)
    assert fut.result(timeout=60) == 42
    _ended(local, fut)
    job_id = fut.job_id
    assert _keys(local, jobmod.job_prefix(job_id) + "/")

    # Not old enough: nothing goes.
    kept = collect(local, 3600)
    assert kept.jobs == [] and kept.kept_active == 1
    # A day later, a dry run lists it and removes nothing.
    later = time.time() + 86400
    planned = collect(local, 3600, dry_run=True, now=later)
    assert planned.jobs == [job_id] and planned.objects > 0
    assert _keys(local, jobmod.job_prefix(job_id) + "/")
    # For real: the job's objects and its now unreferenced function object are gone.
    done = collect(local, 3600, now=later)
    assert done.jobs == [job_id]
    assert _keys(local, jobmod.job_prefix(job_id) + "/") == []
    assert len(done.functions) == 1 and _keys(local, "functions/") == []
    assert done.bytes > 0


def test_running_jobs_and_the_functions_they_use_stay(local, tmp_path):
    release = tmp_path / "release"
    running = wait_for_release.submit(str(release))
    old = double.submit(1)
    assert old.result(timeout=60) == 2
    _ended(local, old)
    try:
        report = collect(local, 0, now=time.time() + 86400)
        assert report.jobs == [old.job_id]
        assert running.job_id not in report.jobs and report.kept_active == 1
        remaining = {k.split("/")[1] for k in _keys(local, "functions/")}
        assert remaining == {local.record(running.job_id).function_sha256 + ".pkl"}
    finally:
        release.write_text("go")
    assert running.result(timeout=60) == "released"


def test_a_fresh_unreferenced_function_is_kept_an_old_one_goes(local):
    # A submission uploads its function just before its record: gc must not take it.
    local.store.put("functions/" + "a" * 64 + ".pkl", b"fresh")
    local.store.put("functions/" + "b" * 64 + ".pkl", b"old")
    old_path = local.store.root / "functions" / ("b" * 64 + ".pkl")
    stamp = time.time() - FUNCTION_GRACE - 60
    os.utime(old_path, (stamp, stamp))
    report = collect(local, 0)
    assert report.functions == ["b" * 64]
    assert {k.rsplit("/", 1)[1] for k in _keys(local, "functions/")} == {"a" * 64 + ".pkl"}


def test_cli_dry_run_and_json(local):
    fut = double.submit(5)
    assert fut.result(timeout=60) == 10
    _ended(local, fut)
    time.sleep(1.2)  # ended over a second ago
    out = aksrun_cli("gc", "--older-than", "1s", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["dry_run"] is True and len(report["jobs"]) == 1
    assert len(_keys(local, "jobs/")) > 0
    out = aksrun_cli("gc", "--older-than", "1s")
    assert out.returncode == 0, out.stderr
    assert "removed 1 finished job(s)" in out.stdout
    assert _keys(local, "jobs/") == []
    bad = aksrun_cli("gc", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr


def test_a_cancelled_job_goes_with_its_listing_entry_and_a_stray_entry_goes_too(local,
                                                                                 tmp_path):
    fut = wait_for_release.submit(str(tmp_path / "never"))
    wait_for(lambda: local.status(fut.job_id).state == "running", timeout=30)
    assert local.cancel(fut.job_id)
    assert _keys(local, "cancelled/") == [jobmod.cancelled_index_key(fut.job_id)]
    stray = jobmod.cancelled_index_key("gone-20200101-000000-abcde")  # its job removed
    local.store.put(stray, b"")                                         # by other means
    done = collect(local, 3600, now=time.time() + 86400)
    assert done.jobs == [fut.job_id]
    assert _keys(local, "cancelled/") == [] and _keys(local, jobmod.job_prefix(fut.job_id)) == []
