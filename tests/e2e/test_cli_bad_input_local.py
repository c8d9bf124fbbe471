"""Bad input to the `aksrun` command, end to end on the local backend (a separate process, as
a user runs it): one `Error:` line naming the problem and the fix, the documented exit code
(2: usage or configuration), no traceback, and no "no jobs yet" when the jobs can't be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.clirun import aksrun_cli


@pytest.fixture(autouse=True)
def local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKSRUN_BACKEND", "local")


def assert_one_error(out, *fragments: str) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def test_run_a_module_with_a_syntax_error(tmp_path, monkeypatch):
    (tmp_path / "broken_module.py").write_text("def f(x):\n    return x +\n")
    monkeypatch.chdir(tmp_path)
    out = aksrun_cli("run", "broken_module:f", "1")
    assert_one_error(out, "'broken_module'", f"{tmp_path / 'broken_module.py'}:2",
                     "SyntaxError", "Fix the syntax there")


def test_run_a_module_whose_import_raises(tmp_path, monkeypatch):
    (tmp_path / "raising_module.py").write_text(
        "import os\nSETTING = os.environ['AKSRUN_TEST_NO_SUCH_VARIABLE']\ndef f(x):\n"
        "    return x\n")
    monkeypatch.chdir(tmp_path)
    out = aksrun_cli("run", "raising_module:f", "1")
    assert_one_error(out, "'raising_module'", f"{tmp_path / 'raising_module.py'}:2",
                     "KeyError: 'AKSRUN_TEST_NO_SUCH_VARIABLE'", "fix it there")


def test_jobs_ls_limit_keeps_the_newest_and_rejects_negatives():
    first = aksrun_cli("run", "--detach", "tests.e2e.funcs:square", "2").stdout.strip()
    second = aksrun_cli("run", "--detach", "tests.e2e.funcs:square", "3").stdout.strip()
    assert aksrun_cli("jobs", "result", second).returncode == 0
    assert aksrun_cli("jobs", "result", first).returncode == 0

    listed = json.loads(aksrun_cli("jobs", "ls", "--json", "--limit", "1").stdout)
    assert [row["job_id"] for row in listed] == [second]
    for bad in ("-1", "0"):
        out = aksrun_cli("jobs", "ls", "--limit", bad)
        assert out.returncode == 2 and "--limit" in out.stderr, out.stderr
        assert first not in out.stdout and second not in out.stdout


def test_jobs_logs_task_out_of_range_is_a_usage_error():
    job_id = aksrun_cli("run", "--detach", "tests.e2e.funcs:shout", "'x'").stdout.strip()
    assert aksrun_cli("jobs", "result", job_id).returncode == 0
    for bad in ("99", "-1"):
        assert_one_error(aksrun_cli("jobs", "logs", job_id, "--task", bad),
                         "--task", f"no task {bad}", "1 task (0)", "Give --task 0")
    assert "stdout: x" in aksrun_cli("jobs", "logs", job_id, "--task", "0").stdout


def test_malformed_dotenv_warns_once_with_its_path_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AKSRUN_DOTENV")
    dotenv = tmp_path / ".env"
    dotenv.write_text("AKSRUN_USER=tester\nnot a setting\n")
    out = aksrun_cli("jobs", "ls")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "could not" in line]
    assert warnings == [f"{dotenv}: line 2 could not be parsed and is ignored; write each "
                        "setting as KEY=value (quote values that hold spaces or '#')."]


def test_home_under_a_regular_file(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("AKSRUN_HOME", str(blocker / "aksrun"))

    run = aksrun_cli("run", "tests.e2e.funcs:square", "3")
    assert_one_error(run, f"{blocker} is a file, not a directory", "AKSRUN_HOME")

    listing = aksrun_cli("jobs", "ls")
    assert "no jobs yet" not in listing.stderr
    assert_one_error(listing, f"{blocker} is a file, not a directory", "AKSRUN_HOME")
    assert blocker.read_text() == ""


def test_store_under_a_regular_file(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("AKSRUN_STORE", (blocker / "store").as_uri())

    run = aksrun_cli("run", "tests.e2e.funcs:square", "3")
    assert_one_error(run, f"the local store {blocker / 'store'} is not writable",
                     f"{blocker} is a file", "AKSRUN_STORE")

    listing = aksrun_cli("jobs", "ls")
    assert "no jobs yet" not in listing.stderr
    assert_one_error(listing, f"the local store {blocker / 'store'} can't be read")


def test_home_is_a_regular_file_and_store_is_usable(tmp_path, monkeypatch):
    home = tmp_path / "home-file"
    home.write_text("")
    store = tmp_path / "store"
    monkeypatch.setenv("AKSRUN_HOME", str(home))
    monkeypatch.setenv("AKSRUN_STORE", store.as_uri())

    run = aksrun_cli("run", "tests.e2e.funcs:square", "3")
    assert_one_error(run, f"{home} is a file, not a directory", "AKSRUN_HOME")
    # The submission was rolled back: no job half-written in the store.
    assert not (store / "jobs").exists() or not any(Path(store / "jobs").iterdir())
