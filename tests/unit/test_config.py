import pytest

from aksrun.core.config import load_config
from aksrun.errors import ConfigError


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("AKSRUN_USER", "AKSRUN_HOME", "AKSRUN_DOTENV"):
        monkeypatch.delenv(name, raising=False)
    # A person's login name (these machines run as root, which many people share).
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "ada")
    return tmp_path


def test_defaults_are_local(project):
    config = load_config()
    assert config.backend == "local"
    assert config.store_url.startswith("file://") and config.store_url.endswith("/store")
    assert config.source_of("backend") == "default"


def test_precedence_args_env_dotenv_pyproject(project, monkeypatch):
    (project / "pyproject.toml").write_text(
        '[tool.aksrun]\nmax_parallel = 3\nnamespace = "from-pyproject"\nuser = "py"\n'
    )
    (project / ".env").write_text("AKSRUN_MAX_PARALLEL=5\nAKSRUN_USER=dotenv\n")
    config = load_config()
    assert config.max_parallel == 5 and config.user == "dotenv"
    assert config.namespace == "from-pyproject"
    assert ".env" in config.source_of("max_parallel")
    monkeypatch.setenv("AKSRUN_MAX_PARALLEL", "7")
    config = load_config()
    assert config.max_parallel == 7
    assert config.source_of("max_parallel") == "environment variable AKSRUN_MAX_PARALLEL"
    assert load_config(overrides={"max_parallel": 9}).max_parallel == 9


def test_dotenv_never_overrides_environment(project, monkeypatch):
    import os

    (project / ".env").write_text("AZURE_STORAGE_ACCOUNT=fromfile\nAKSRUN_USER=fromfile\n")
    monkeypatch.setenv("AKSRUN_USER", "fromenv")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
    config = load_config()
    assert config.user == "fromenv"
    assert config.storage_account == "fromfile"
    assert os.environ["AKSRUN_USER"] == "fromenv"
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT")


def test_cluster_name_selects_aks_backend(project, monkeypatch):
    monkeypatch.setenv("AZURE_AKS_CLUSTER_NAME", "c1")
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "s")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg")
    config = load_config()
    assert config.backend == "aks" and config.store_url == f"az://aksrun-{config.user}"


def test_bad_backend_names_its_source_and_fix(project, monkeypatch):
    monkeypatch.setenv("AKSRUN_BACKEND", "cloud")
    with pytest.raises(ConfigError) as err:
        load_config()
    assert "environment variable AKSRUN_BACKEND" in str(err.value)
    assert "local, kubernetes, aks" in str(err.value)


def test_bad_value_in_pyproject_names_file_and_key(project):
    (project / "pyproject.toml").write_text('[tool.aksrun]\nmax_parallel = "many"\n')
    with pytest.raises(ConfigError) as err:
        load_config()
    assert "pyproject.toml [tool.aksrun] key 'max_parallel'" in str(err.value)


def test_unknown_key_in_pyproject(project):
    (project / "pyproject.toml").write_text('[tool.aksrun]\nbakend = "local"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'bakend'"):
        load_config()


def test_aks_backend_without_cluster_settings(project, monkeypatch):
    monkeypatch.setenv("AKSRUN_BACKEND", "aks")
    with pytest.raises(ConfigError, match="AZURE_SUBSCRIPTION_ID"):
        load_config()


def test_bad_store_url(project, monkeypatch):
    monkeypatch.setenv("AKSRUN_STORE", "s3://bucket")
    with pytest.raises(ConfigError, match=r"AKSRUN_STORE.*file:///"):
        load_config()


def test_aksrun_toml(project):
    (project / "aksrun.toml").write_text('backend = "kubernetes"\nnamespace = "team-a"\n')
    config = load_config()
    assert config.backend == "kubernetes" and config.effective_namespace == "team-a"


def test_dotenv_can_be_switched_off(project, monkeypatch):
    (project / ".env").write_text("AKSRUN_MAX_PARALLEL=5\n")
    monkeypatch.setenv("AKSRUN_DOTENV", "0")
    assert load_config().max_parallel is None


def test_non_text_value_in_pyproject_names_file_and_key(project):
    (project / "pyproject.toml").write_text("[tool.aksrun]\nnamespace = 5\n")
    with pytest.raises(ConfigError, match=r"namespace 5 .*key 'namespace'.* must be text"):
        load_config()


def test_pending_timeout_is_a_duration_named_by_its_source(project, monkeypatch):
    assert load_config(cwd=str(project)).pending_timeout == 1800.0
    monkeypatch.setenv("AKSRUN_PENDING_TIMEOUT", "10m")
    assert load_config(cwd=str(project)).pending_timeout == 600.0
    monkeypatch.setenv("AKSRUN_PENDING_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="AKSRUN_PENDING_TIMEOUT"):
        load_config(cwd=str(project))


def test_shared_login_names_are_not_a_user_on_a_cluster(monkeypatch, tmp_path):
    """JupyterHub's jovyan, a dev container's vscode, CI's runner: on a cluster everyone would
    share one namespace (issue 11, item 17). Locally it does no harm."""
    import getpass

    import pytest as _pytest

    from aksrun.core.config import load_config as _load
    from aksrun.errors import ConfigError as _ConfigError

    monkeypatch.setattr(getpass, "getuser", lambda: "jovyan")
    monkeypatch.delenv("AKSRUN_USER", raising=False)
    assert _load({"backend": "local"}, cwd=str(tmp_path)).user == "jovyan"
    with _pytest.raises(_ConfigError, match="AKSRUN_USER"):
        _load({"backend": "kubernetes"}, cwd=str(tmp_path))
    assert _load({"backend": "kubernetes", "user": "alice"}, cwd=str(tmp_path)).user == "alice"


def test_user_slugs_never_hold_a_double_dash(tmp_path):
    from aksrun.core.config import load_config as _load
    from aksrun.core.naming import check_user

    for raw, slug in (("a.-b", "a-b"), ("Anne--Marie", "anne-marie"), ("x" * 39 + "-y", "x" * 39)):
        got = _load({"user": raw}, cwd=str(tmp_path)).user
        assert got == slug and check_user(got) == got


def test_an_edit_of_the_project_file_counts_at_the_next_load(project):
    """The parsed file is reused while it is unchanged; an edit (same size, even) is read."""
    path = project / "aksrun.toml"
    path.write_text('namespace = "team-a"\n')
    assert load_config().effective_namespace == "team-a"
    assert load_config().effective_namespace == "team-a"
    import os

    before = path.stat().st_mtime_ns
    path.write_text('namespace = "team-b"\n')
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))  # a coarse clock's edit
    assert load_config().effective_namespace == "team-b"
    path.write_text('namespace = 3\n')
    with pytest.raises(ConfigError):
        load_config()
