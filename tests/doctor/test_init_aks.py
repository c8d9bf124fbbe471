"""`aksrun init` asking ARM (the strict fake) for what the person did not say, then doctor:
the cluster found in the resource group, the file written, every check ✓. And the choices
ARM can't make alone are errors naming the candidates and the flag."""

from __future__ import annotations

import tomllib

import pytest

from tests.doctor.conftest import CLUSTER, RESOURCE_GROUP, SUBSCRIPTION, AksSetup
from tests.doctor.support import init

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def reader(aks: AksSetup, scope: str = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/"
                                        f"{RESOURCE_GROUP}") -> None:
    """Asking ARM what is in a resource group takes Reader on it."""
    aks.arm.grant(aks.base.oauth.entra.client_id, "Reader", scope)


def test_init_finds_the_cluster_writes_the_file_and_doctor_passes(aks: AksSetup, tmp_path):
    reader(aks)
    aks.base.monkeypatch.delenv("AZURE_AKS_CLUSTER_NAME")  # init must find it
    run = init("--user", "tester", "--namespace", aks.namespace, cwd=tmp_path)
    assert run.exit_code == 0, run.stderr + run.output
    assert f"ARM: the only managed cluster in {RESOURCE_GROUP}" in run.stderr
    written = tomllib.loads((tmp_path / "aksrun.toml").read_text())
    assert written["cluster_name"] == CLUSTER
    assert written["subscription_id"] == SUBSCRIPTION and written["user"] == "tester"
    assert "all checks passed" in run.output
    assert run.failed() == [] and run.marks["AKS cluster"] == "✓"
    assert f"{tmp_path / 'aksrun.toml'}: cluster_name" in run.lines["configuration"]


def test_init_prefers_what_aksrun_tagged_and_refuses_to_guess(aks: AksSetup, tmp_path):
    reader(aks)
    arm = aks.arm
    for name, tags in (("stteam", {}), ("staksrun", {"managed-by": "aksrun"})):
        arm.add_storage_account(SUBSCRIPTION, RESOURCE_GROUP, name,
                                blob_endpoint=aks.base.oauth.account_url, tags=tags)
    arm.add_managed_cluster(SUBSCRIPTION, RESOURCE_GROUP, "aks-other",
                            kubeconfig=aks.base.k8s.kubeconfig.read_bytes(),
                            issuer_url="https://example.invalid/other/")
    arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, "teamacr")
    ours = arm.add_registry(SUBSCRIPTION, RESOURCE_GROUP, "aksrunacr2")
    ours.tags = {"managed-by": "aksrun"}
    aks.base.monkeypatch.delenv("AZURE_AKS_CLUSTER_NAME")
    aks.base.monkeypatch.delenv("AKSRUN_STORAGE_ACCOUNT_URL")
    aks.base.monkeypatch.delenv("AZURE_CONTAINER_REGISTRY")
    refused = init("--user", "tester", "--no-doctor", cwd=tmp_path)
    assert refused.exit_code == 2
    assert (f"resource group '{RESOURCE_GROUP}' has several managed clusters (aks-doctor, "
            "aks-other); pick one with --cluster.") in refused.stderr
    assert not (tmp_path / "aksrun.toml").exists()

    chosen = init("--user", "tester", "--cluster", CLUSTER, "--no-doctor", cwd=tmp_path)
    assert chosen.exit_code == 0, chosen.stderr
    assert f"ARM: the storage account tagged managed-by=aksrun in {RESOURCE_GROUP}" in \
        chosen.stderr
    assert f"ARM: the container registry tagged managed-by=aksrun in {RESOURCE_GROUP}" in \
        chosen.stderr
    written = tomllib.loads((tmp_path / "aksrun.toml").read_text())
    assert (written["storage_account"], written["registry"]) == ("staksrun", "aksrunacr2")


def test_init_in_a_resource_group_that_does_not_exist(aks: AksSetup, tmp_path):
    reader(aks, f"/subscriptions/{SUBSCRIPTION}")  # else ARM answers 403, not 404
    aks.base.monkeypatch.delenv("AZURE_AKS_CLUSTER_NAME")
    run = init("--user", "tester", "--resource-group", "rg-nowhere", "--no-doctor",
               cwd=tmp_path)
    assert run.exit_code == 2
    assert "resource group 'rg-nowhere' does not exist" in run.stderr


def test_init_without_reader_on_the_group_names_the_flag(aks: AksSetup, tmp_path):
    aks.base.monkeypatch.delenv("AZURE_AKS_CLUSTER_NAME")
    run = init("--user", "tester", "--no-doctor", cwd=tmp_path)
    assert run.exit_code == 1
    assert (f"ARM won't list the managed clusters in resource group '{RESOURCE_GROUP}' for you "
            "(it does not exist, or you lack Reader on it): pass --cluster, or ask for Reader "
            "on the resource group.") in run.stderr
