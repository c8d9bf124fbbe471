"""`aksrun init`'s file writing: the file core.config reads, only the given keys changed,
comments and other tables kept, never replaced without --force, the difference shown."""

from __future__ import annotations

import tomllib

import pytest

from aksrun.core.config import load_config
from aksrun.doctor import config_file
from aksrun.errors import ConfigError

VALUES = {"subscription_id": "8a4e2f61-3c5d-4b7a-9e1f-0d2c3b4a5e6f",
          "resource_group": "rg-ml", "cluster_name": "aks-ml", "user": "alice"}


def test_a_new_aksrun_toml_reads_back_through_load_config(tmp_path, monkeypatch):
    monkeypatch.delenv("AKSRUN_USER")  # the test session's; the file's must count
    target = config_file.find_target(tmp_path)
    assert target.path == tmp_path / "aksrun.toml" and target.table is None
    change = config_file.plan_change(target, VALUES)
    assert change.old is None and not change.unchanged
    assert change.diff().startswith("--- /dev/null")
    config_file.write(change)
    config = load_config(cwd=str(tmp_path))
    assert (config.cluster_name, config.resource_group, config.user) == ("aks-ml", "rg-ml",
                                                                         "alice")
    assert config.backend == "aks"
    assert config.source_of("cluster_name") == f"{tmp_path / 'aksrun.toml'} key 'cluster_name'"
    assert config_file.plan_change(target, VALUES).unchanged  # writing again changes nothing


def test_an_update_changes_only_its_keys_and_keeps_comments(tmp_path):
    path = tmp_path / "aksrun.toml"
    path.write_text('# my settings\nmax_parallel = 8  # small laptop\ncluster_name = "old"\n'
                    '\n[extra]\nx = 1\n')
    target = config_file.find_target(tmp_path)
    change = config_file.plan_change(target, VALUES)
    data = tomllib.loads(change.new)
    assert data["cluster_name"] == "aks-ml" and data["max_parallel"] == 8
    assert data["extra"] == {"x": 1}  # keys went above the first table, not into it
    assert "# my settings" in change.new and "# small laptop" in change.new
    diff = change.diff()
    assert '-cluster_name = "old"' in diff and '+cluster_name = "aks-ml"' in diff
    assert "max_parallel" not in "".join(x for x in diff.splitlines() if x[:1] in "+-")


def test_pyproject_tool_aksrun_is_found_and_updated_in_place(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n[tool.aksrun]\nregistry = "acr1"\n\n'
                    '[tool.ruff]\nline-length = 100\n')
    target = config_file.find_target(tmp_path)
    assert target == config_file.Target(path, ("tool", "aksrun"))
    config_file.write(config_file.plan_change(target, VALUES))
    data = tomllib.loads(path.read_text())
    assert data["tool"]["aksrun"]["registry"] == "acr1"
    assert data["tool"]["aksrun"]["cluster_name"] == "aks-ml"
    assert data["tool"]["ruff"] == {"line-length": 100} and data["project"]["name"] == "x"
    assert load_config(cwd=str(tmp_path)).cluster_name == "aks-ml"


def test_pyproject_without_the_table_gets_one_only_when_asked(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert config_file.find_target(tmp_path).path.name == "aksrun.toml"
    target = config_file.find_target(tmp_path, pyproject=True)
    config_file.write(config_file.plan_change(target, VALUES))
    assert tomllib.loads(target.path.read_text())["project"] == {"name": "x"}
    assert load_config(cwd=str(tmp_path)).resource_group == "rg-ml"


def test_a_parent_folders_file_is_the_one_updated(tmp_path):
    (tmp_path / "aksrun.toml").write_text('registry = "acr1"\n')
    below = tmp_path / "notebooks" / "deep"
    below.mkdir(parents=True)
    assert config_file.find_target(below).path == tmp_path / "aksrun.toml"


def test_values_that_would_not_read_back_are_refused(tmp_path):
    path = tmp_path / "aksrun.toml"
    path.write_text('cluster_name = """\nmulti\n"""\n')  # a multi-line value the editor can't
    with pytest.raises(ConfigError, match="could not be updated safely"):
        config_file.plan_change(config_file.find_target(tmp_path), VALUES)
