"""Doctor on the local backend: it says so and checks only what applies (the configuration
and the store); and a configuration that does not load is a failed check, not a crash."""

from __future__ import annotations

from tests.doctor.support import doctor, doctor_json, single_failure


def test_local_backend_checks_only_what_applies(tmp_path, monkeypatch):
    monkeypatch.setenv("AKSRUN_STORE", (tmp_path / "store").as_uri())
    run = doctor()
    assert run.exit_code == 0, run.output
    assert run.output.splitlines()[0].startswith("aksrun doctor: local backend: jobs run as "
                                                 "processes on this machine")
    assert run.marks == {"configuration": "✓", "store": "✓"}
    assert "write, read and delete work" in run.lines["store"]
    assert run.output.splitlines()[-1].startswith("all checks passed (")
    assert list((tmp_path / "store").rglob("probe-*")) == []  # the probe cleaned up


def test_configuration_line_says_where_each_setting_came_from(tmp_path, monkeypatch):
    (tmp_path / "aksrun.toml").write_text('max_parallel = 3\n')
    (tmp_path / ".env").write_text("AKSRUN_NAMESPACE=from-dotenv\n")
    monkeypatch.setenv("AKSRUN_DOTENV", "1")
    monkeypatch.setenv("AKSRUN_STORE", (tmp_path / "store").as_uri())
    code, data = doctor_json(cwd=tmp_path)
    assert code == 0
    config = data["checks"][0]
    assert config["id"] == "configuration" and config["status"] == "ok"
    summary = config["summary"]
    assert summary.startswith("backend local (default); ")
    assert "environment: AKSRUN_HOME, AKSRUN_STORE, AKSRUN_USER" in summary
    assert ".env: AKSRUN_NAMESPACE" in summary
    assert f"{tmp_path / 'aksrun.toml'}: max_parallel" in summary
    assert config["details"]["settings"]["max_parallel"] == {
        "value": 3, "source": f"{tmp_path / 'aksrun.toml'} key 'max_parallel'"}


def test_a_connection_string_is_never_shown(monkeypatch):
    monkeypatch.setenv("AKSRUN_STORAGE_CONNECTION_STRING", "AccountKey=secret")
    _code, data = doctor_json()
    assert "secret" not in str(data)
    assert data["checks"][0]["details"]["settings"]["storage_connection_string"]["value"] == \
        "(set, hidden)"


def test_an_unwritable_local_store_fails_with_its_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("AKSRUN_STORE", (blocker / "store").as_uri())
    run = doctor()
    fix = single_failure(run, "store")
    assert fix.startswith("make that directory writable, or set AKSRUN_STORE")


def test_a_configuration_that_does_not_load_is_a_failed_check(monkeypatch):
    monkeypatch.setenv("AKSRUN_BACKEND", "cloud")
    run = doctor()
    fix = single_failure(run, "configuration")
    assert "backend 'cloud' (from environment variable AKSRUN_BACKEND) is not valid" in \
        run.lines["configuration"]
    assert fix.startswith("correct that setting where the message says it came from")
