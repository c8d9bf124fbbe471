"""The `aksrun` command: every command, its output and its exit codes (0 ok, 1 job failed,
2 usage error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support.clirun import aksrun_cli

pytestmark = pytest.mark.usefixtures("backend")


def test_help_on_every_command():
    for args in ([], ["run"], ["jobs"], ["jobs", "ls"], ["jobs", "show"], ["jobs", "logs"],
                 ["jobs", "result"], ["jobs", "cancel"], ["jobs", "rm"]):
        out = aksrun_cli(*args, "--help")
        assert out.returncode == 0 and "Usage:" in out.stdout, args


def test_run_prints_result_and_streams_output():
    out = aksrun_cli("run", "tests.e2e.funcs:shout", "'cli'")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("'CLI'")
    assert "stdout: cli" in out.stderr


def test_run_with_keywords_and_json():
    out = aksrun_cli("run", "tests.e2e.funcs:add", "2", "b=40", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == 42


def test_run_failure_exits_1_with_remote_traceback():
    out = aksrun_cli("run", "tests.e2e.funcs:fail_on", "3")
    assert out.returncode == 1
    assert "CustomError: input 3 is bad" in out.stderr and "fail_on" in out.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["run", "nosuchmodule:f"], "cannot import"),
    (["run", "tests.e2e.funcs"], "MODULE:FUNC"),
    (["run", "tests.e2e.funcs:nope"], "no attribute"),
    (["run", "tests.e2e.funcs:square", "1", "--cpu", "lots"], "cpu="),
    (["jobs", "result", "not-a-job"], "not an aksrun job id"),
    (["jobs", "show", "square-20200101-000000-zzzzz"], "square-20200101-000000-zzzzz"),
    (["jobs", "cancel", "square-20200101-000000-zzzzz"], "square-20200101-000000-zzzzz"),
    (["jobs", "rm", "square-20200101-000000-zzzzz"], "square-20200101-000000-zzzzz"),
    (["jobs", "logs", "square-20200101-000000-zzzzz"], "square-20200101-000000-zzzzz"),
])
def test_usage_errors_exit_2_and_say_why(args, message):
    out = aksrun_cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_jobs_lifecycle_from_the_cli():
    job_id = aksrun_cli("run", "--detach", "tests.e2e.funcs:shout", "'ls'").stdout.strip()
    result = aksrun_cli("jobs", "result", job_id)
    assert result.returncode == 0 and "'LS'" in result.stdout

    listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    row = next(r for r in listing if r["job_id"] == job_id)
    assert row["state"] == "succeeded" and row["calls_done"] == row["calls"] == 1
    table = aksrun_cli("jobs", "ls").stdout
    assert job_id in table and "1/1" in table and "succeeded" in table

    shown = json.loads(aksrun_cli("jobs", "show", job_id, "--json").stdout)
    assert shown["function"] == "shout" and shown["kind"] == "call"

    logs = aksrun_cli("jobs", "logs", job_id)
    assert "stdout: ls" in logs.stdout

    removed = aksrun_cli("jobs", "rm", job_id)
    assert removed.returncode == 0
    assert aksrun_cli("jobs", "result", job_id).returncode == 2


def test_jobs_logs_follow_and_cancel():
    job_id = aksrun_cli("run", "--detach", "tests.e2e.funcs:print_slowly", "3", "0.3").stdout
    job_id = job_id.strip()
    follow = aksrun_cli("jobs", "logs", "-f", job_id)
    assert follow.returncode == 0
    assert [line for line in follow.stdout.splitlines() if line.startswith("line")] == [
        "line 0", "line 1", "line 2"]

    slow = aksrun_cli("run", "--detach", "tests.e2e.funcs:sleep_for", "60").stdout.strip()
    time.sleep(0.5)
    assert aksrun_cli("jobs", "cancel", slow).returncode == 0
    shown = json.loads(aksrun_cli("jobs", "show", slow, "--json").stdout)
    assert shown["state"] == "cancelled"
    result = aksrun_cli("jobs", "result", slow)
    assert result.returncode == 1 and "cancelled" in result.stderr
    assert "Traceback" not in result.stderr  # aksrun's verdict, not its insides
    again = aksrun_cli("jobs", "cancel", slow)
    assert again.returncode == 0 and "nothing to cancel" in again.stdout


def test_a_cancelled_job_stays_listed_as_cancelled_until_removed(backend):
    """On Kubernetes cancelling deletes the Job (and its pods), so compute forgets the job at
    once; the listing still shows it, as cancelled, until `jobs rm`."""
    from aksrun.api.session import default_client
    from tests.support.waiting import wait_for

    slow = aksrun_cli("run", "--detach", "tests.e2e.funcs:sleep_for", "60").stdout.strip()
    time.sleep(0.5)
    assert aksrun_cli("jobs", "cancel", slow).returncode == 0
    compute = default_client().compute
    if backend == "kubernetes":  # gone from compute: only the store still knows the job
        wait_for(lambda: slow not in {s.job_id for s in compute.list()}, timeout=60)
    listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    assert [(j["job_id"], j["state"]) for j in listing if j["job_id"] == slow] == [
        (slow, "cancelled")]
    assert aksrun_cli("jobs", "rm", slow).returncode == 0
    listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    assert slow not in [j["job_id"] for j in listing]
    assert not list(default_client().store.list("cancelled/"))  # nothing of it left


def test_failed_job_shows_failed_in_listing():
    aksrun_cli("run", "tests.e2e.funcs:fail_on", "3")
    listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    assert listing[0]["state"] == "failed"


def test_cli_entry_point_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "aksrun")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "version" in out.stdout
