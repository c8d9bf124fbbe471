"""`aksrun init` without Azure: settings from flags and the environment written to the file
aksrun reads, an existing file changed only with --force (the difference shown either way),
and what init can't find is an error naming the flag that settles it."""

from __future__ import annotations

import re
import tomllib

from aksrun.core.config import load_config
from tests.doctor.support import init

SUBSCRIPTION = "8a4e2f61-3c5d-4b7a-9e1f-0d2c3b4a5e6f"
FLAGS = ("--subscription", SUBSCRIPTION, "--resource-group", "rg-ml", "--cluster", "aks-ml",
         "--storage-account", "mlstore", "--registry", "mlacr", "--user", "alice")


def test_init_writes_what_it_was_given_and_aksrun_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AKSRUN_USER")
    run = init(*FLAGS, "--no-doctor", cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert f"wrote {tmp_path / 'aksrun.toml'}" in run.stderr
    assert re.search(r"cluster_name +=  ?aks-ml +\(--cluster\)", run.stderr), run.stderr
    assert '+cluster_name = "aks-ml"' in run.output  # the new file, as a diff
    assert tomllib.loads((tmp_path / "aksrun.toml").read_text()) == {
        "subscription_id": SUBSCRIPTION, "resource_group": "rg-ml", "cluster_name": "aks-ml",
        "storage_account": "mlstore", "registry": "mlacr", "user": "alice"}
    config = load_config(cwd=str(tmp_path))
    assert (config.backend, config.effective_namespace, config.store_url) == (
        "aks", "aksrun-alice", "az://aksrun-alice")


def test_environment_values_are_written_with_their_source(tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-env")
    run = init("--cluster", "aks-ml", "--storage-account", "s", "--registry", "r",
               "--no-doctor", cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert re.search(r"resource_group += rg-env +\(environment variable AZURE_RESOURCE_GROUP\)",
                     run.stderr), run.stderr
    assert re.search(r"user += tester +\(environment variable AKSRUN_USER\)", run.stderr)
    assert tomllib.loads((tmp_path / "aksrun.toml").read_text())["resource_group"] == "rg-env"


def test_an_existing_file_changes_only_with_force_and_the_diff_is_shown(tmp_path):
    path = tmp_path / "aksrun.toml"
    path.write_text('# ours\ncluster_name = "old-cluster"\nmax_parallel = 4\n')
    before = path.read_text()
    refused = init(*FLAGS, "--no-doctor", cwd=tmp_path)
    assert refused.exit_code == 1
    assert path.read_text() == before
    assert '-cluster_name = "old-cluster"' in refused.output
    assert '+cluster_name = "aks-ml"' in refused.output
    assert "run `aksrun init --force` to write it" in refused.stderr

    forced = init(*FLAGS, "--force", "--no-doctor", cwd=tmp_path)
    assert forced.exit_code == 0, forced.stderr
    assert f"updated {path}" in forced.stderr
    written = path.read_text()
    assert written.startswith("# ours\n") and "max_parallel = 4" in written
    assert tomllib.loads(written)["cluster_name"] == "aks-ml"

    again = init(*FLAGS, "--no-doctor", cwd=tmp_path)  # nothing new: no --force needed
    assert again.exit_code == 0 and "already says this; nothing to write" in again.stderr


def test_pyproject_gets_a_tool_aksrun_table_when_asked(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ml"\n')
    refused = init(*FLAGS, "--pyproject", "--no-doctor", cwd=tmp_path)  # an existing file
    assert refused.exit_code == 1 and "+[tool.aksrun]" in refused.output
    run = init(*FLAGS, "--pyproject", "--force", "--no-doctor", cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert f"updated {tmp_path / 'pyproject.toml'} [tool.aksrun]" in run.stderr
    data = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert data["project"] == {"name": "ml"} and data["tool"]["aksrun"]["registry"] == "mlacr"
    assert not (tmp_path / "aksrun.toml").exists()


def test_without_a_subscription_init_says_which_flag(tmp_path):
    run = init("--resource-group", "rg", "--no-doctor", cwd=tmp_path)
    assert run.exit_code == 2
    assert ("init needs the subscription id: pass --subscription or set AZURE_SUBSCRIPTION_ID"
            in run.stderr)
    assert not (tmp_path / "aksrun.toml").exists()


def test_a_user_name_that_cannot_name_a_namespace_is_refused(tmp_path):
    run = init(*FLAGS[:-2], "--user", "Alice_Smith!", "--no-doctor", cwd=tmp_path)
    assert run.exit_code == 2
    assert "user name 'Alice_Smith!' can't name a namespace" in run.stderr
    assert not (tmp_path / "aksrun.toml").exists()
