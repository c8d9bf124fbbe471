"""Bad input to the `aksrun` command and the local store: each becomes one typed error that
names the problem and the fix (ConfigError: exit 2; AksrunError: exit 1), never a traceback,
and nothing half-written is left behind."""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aksrun.adapters import local_store
from aksrun.adapters.local_store import LocalStore
from aksrun.cli.main import cli
from aksrun.errors import ConfigError, StoreError


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


# --- 1. a module that can't be imported -------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A directory of the user's modules, the working directory, with sys.path and
    sys.modules restored afterwards (the loader imports into this process)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.mark.parametrize(("source", "line", "what"), [
    ("def ok():\n    return 1\n\ndef f(:\n    pass\n", 4, "SyntaxError"),
    ("import os\nraise RuntimeError('no config at import')\ndef f():\n    pass\n", 2,
     "RuntimeError: no config at import"),
    ("import aksrun_no_such_dependency\ndef f():\n    pass\n", 1,
     "ModuleNotFoundError: No module named 'aksrun_no_such_dependency'"),
])
@pytest.mark.parametrize("form", ["module", "file"])
def test_run_a_module_that_fails_to_import_is_one_error_line(project, source, line, what,
                                                              form):
    name = f"userbad_{form}_{line}"
    path = project / f"{name}.py"
    path.write_text(source)
    target = f"{name}:f" if form == "module" else f"./{name}.py:f"
    result = invoke("run", target, "1")
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped error
    assert "Traceback" not in result.output
    [message] = error_lines(result)
    assert f"cannot import {target.split(':')[0]!r}" in message
    assert f"{path}:{line}" in message, message
    assert what in message, message
    assert "then run again" in message
    assert name not in sys.modules  # no half-run module left importable


def test_run_a_missing_module_still_says_cannot_import(project):
    result = invoke("run", "aksrun_no_such_module:f")
    assert result.exit_code == 2
    assert "cannot import 'aksrun_no_such_module'" in result.output
    assert "Traceback" not in result.output


# --- 2. jobs ls --limit ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_jobs_ls_rejects_a_limit_below_one(limit):
    result = invoke("jobs", "ls", "--limit", limit)
    assert result.exit_code == 2, result.output
    assert "--limit" in result.output and ">=1" in result.output


def test_jobs_ls_help_says_what_limit_accepts():
    result = invoke("jobs", "ls", "--help")
    assert "1 or more" in result.output


# --- 4. --dry-run without PyYAML ---------------------------------------------------------------


def test_dry_run_without_pyyaml_names_the_extra(monkeypatch):
    monkeypatch.setenv("AKSRUN_IMAGE", "example.azurecr.io/aksrun-runner:1")
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` fails, as when not installed
    result = invoke("run", "--dry-run", "tests.e2e.funcs:square", "3")
    assert result.exit_code == 2, (result.output, result.exception)
    [message] = error_lines(result)
    assert "PyYAML" in message and "pip install 'aksrun[azure]'" in message
    assert "apiVersion" not in result.output


# --- 5. a malformed .env -----------------------------------------------------------------------


def test_malformed_dotenv_warns_once_naming_file_and_line(tmp_path, monkeypatch, caplog):
    from aksrun.core.config import load_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AKSRUN_DOTENV")
    for name in ("AKSRUN_MAX_PARALLEL", "AKSRUN_TEST_FROM_DOTENV"):
        monkeypatch.setenv(name, "")  # recorded, so what .env sets is undone after the test
        monkeypatch.delenv(name)
    dotenv = tmp_path / ".env"
    dotenv.write_text("AKSRUN_MAX_PARALLEL=3\nthis line is not a setting\n"
                      "AKSRUN_TEST_FROM_DOTENV=yes\n")
    with caplog.at_level(logging.WARNING):
        config = load_config()
        load_config()  # every call loads the configuration: still one warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"{dotenv}: line 2 " in warnings[0] and "KEY=value" in warnings[0]
    # The good lines still count, and still reach the environment.
    assert config.max_parallel == 3
    assert os.environ["AKSRUN_TEST_FROM_DOTENV"] == "yes"


def test_unreadable_dotenv_is_a_config_error(tmp_path, monkeypatch):
    from aksrun.core.config import load_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AKSRUN_DOTENV")
    (tmp_path / ".env").write_bytes(b"AKSRUN_USER=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"\.env could not be read.*AKSRUN_DOTENV=0"):
        load_config()


# --- 6. a local store that can't be written or read -------------------------------------------


def test_put_under_a_regular_file_names_it_and_the_fix(tmp_path):
    blocker = tmp_path / "home"
    blocker.write_text("not a directory")
    store = LocalStore(blocker / "store")
    with pytest.raises(ConfigError) as excinfo:
        store.put("functions/abc.pkl", b"data")
    message = str(excinfo.value)
    assert f"{blocker} is a file, not a directory" in message
    assert "AKSRUN_HOME" in message and "writable directory" in message
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(("code", "reason"), [
    (errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied"),
])
def test_put_in_a_read_only_or_forbidden_directory(tmp_path, monkeypatch, code, reason):
    # Root ignores permission bits and there's no read-only mount here: the OS's answer is
    # simulated where the store makes its temp file.
    def refuse(dir=None, prefix=None, **kw):
        raise OSError(code, reason, os.path.join(dir, f"{prefix}x"))

    monkeypatch.setattr(local_store.tempfile, "mkstemp", refuse)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ConfigError) as excinfo:
        store.put("jobs/j/job.json", b"{}")
    message = str(excinfo.value)
    assert reason in message and str(tmp_path / "store" / "jobs" / "j") in message
    assert "AKSRUN_HOME" in message and "AKSRUN_STORE" in message


def test_disk_full_mid_write_leaves_no_partial_object(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    store.put("jobs/j/output-0.pkl", b"the old, whole object")
    real_fdopen = os.fdopen

    class HalfWritten:
        """Writes some bytes, then the disk is full (as a real partial write does)."""

        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(bytes(data)[:3])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_store.os, "fdopen", HalfWritten)
    with pytest.raises(StoreError) as excinfo:
        store.put("jobs/j/output-0.pkl", [b"new ", b"bytes"])
    with pytest.raises(StoreError):
        store.put("jobs/j/output-1.pkl", b"never written")
    monkeypatch.undo()
    message = str(excinfo.value)
    assert "No space left on device" in message and "'jobs/j/output-0.pkl'" in message
    assert "nothing was written" in message and "aksrun gc" in message
    assert store.get("jobs/j/output-0.pkl") == b"the old, whole object"
    assert not store.exists("jobs/j/output-1.pkl")
    assert list(store.list("jobs/")) == ["jobs/j/output-0.pkl"]
    assert os.listdir(tmp_path / "store" / "jobs" / "j") == ["output-0.pkl"]  # no temp files


def test_unreadable_object_is_a_config_error_not_an_oserror(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    store.put("jobs/j/job.json", b"{}")

    def forbidden(path, mode="r", *a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(local_store, "open", forbidden, raising=False)
    with pytest.raises(ConfigError, match=r"Permission denied.*AKSRUN_HOME"):
        store.get("jobs/j/job.json")


def test_listing_an_unreadable_store_fails_instead_of_looking_empty(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    store.put("jobs/j/job.json", b"{}")

    def forbidden(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", forbidden)
    with pytest.raises(ConfigError, match="can't be read"):
        list(store.list("jobs/"))


def test_jobs_ls_on_an_unreadable_home_says_so_not_no_jobs(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AKSRUN_HOME", str(home))
    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode, **kw: Path(p) != home and real_access(p, mode, **kw))
    result = invoke("jobs", "ls")
    assert result.exit_code == 2, result.output
    assert "no jobs yet" not in result.output
    [message] = error_lines(result)
    assert f"permission denied: {home}" in message and "AKSRUN_HOME" in message


def test_jobs_ls_on_an_empty_usable_home_still_says_no_jobs_yet():
    result = invoke("jobs", "ls")
    assert result.exit_code == 0, result.output
    assert "no jobs yet" in result.output


def test_run_when_local_state_is_not_writable_but_the_store_is(tmp_path, monkeypatch):
    blocker = tmp_path / "home"
    blocker.write_text("")
    monkeypatch.setenv("AKSRUN_HOME", str(blocker / "aksrun"))
    monkeypatch.setenv("AKSRUN_STORE", (tmp_path / "store").as_uri())
    result = invoke("run", "tests.e2e.funcs:square", "3")
    assert result.exit_code == 2, (result.output, result.exception)
    [message] = error_lines(result)
    assert f"{blocker} is a file, not a directory" in message and "AKSRUN_HOME" in message
    assert list(LocalStore(tmp_path / "store").list("jobs/")) == []  # nothing half-submitted


def test_help_text_for_task_names_where_to_find_the_count():
    assert "jobs show" in invoke("jobs", "logs", "--help").output
