"""Doctor on the aks backend: the cluster as ARM describes it (the strict fake ARM), its
kubeconfig from ARM (the person's, on the real control plane), the workload-identity chain
(service account → user-assigned identity → federated credential → the cluster's issuer).
Healthy: all ✓; each broken link: exactly one ✗ with its own fix."""

from __future__ import annotations

import pytest

from tests.doctor.conftest import CLUSTER, RESOURCE_GROUP, SUBSCRIPTION, AksSetup
from tests.doctor.support import doctor, doctor_json, single_failure

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

HEALTHY = ["configuration", "Azure credential", "AKS cluster",
           "OIDC issuer and workload identity", "Kubernetes API", "namespace",
           "service account", "Kubernetes permissions", "federated credential", "store",
           "container registry", "runner image", "Python and cloudpickle"]


def test_healthy_aks_set_up_passes_every_check(aks: AksSetup, record_property):
    run = doctor()
    assert run.exit_code == 0, run.output
    assert run.marks == dict.fromkeys(HEALTHY, "✓"), run.output
    assert run.output.splitlines()[0] == f"aksrun doctor: aks backend, namespace {aks.namespace}"
    assert f"{CLUSTER}: Kubernetes 1.36.3, Succeeded" in run.lines["AKS cluster"]
    assert f"OIDC issuer {aks.issuer}, workload identity on" in \
        run.lines["OIDC issuer and workload identity"]
    assert (f"identity aksrun-tester ({aks.identity.client_id}) trusts "
            f"system:serviceaccount:{aks.namespace}:aksrun from this cluster's issuer") in \
        run.lines["federated credential"]
    assert "Kubernetes v1.36.3" in run.lines["Kubernetes API"]  # through ARM's kubeconfig
    assert aks.arm.calls("POST", "/listClusterUserCredential")
    code, data = doctor_json()
    assert code == 0 and data["ok"] is True and data["backend"] == "aks"
    assert [c["status"] for c in data["checks"]] == ["ok"] * len(HEALTHY)
    federated = next(c for c in data["checks"] if c["id"] == "federated-credential")
    assert federated["details"]["trusted"] == [{
        "name": "aksrun-tester-sa", "issuer": aks.issuer, "audiences":
        ["api://AzureADTokenExchange"], "subject": f"system:serviceaccount:{aks.namespace}:aksrun"}]
    record_property("doctor_seconds_aks", round(run.seconds, 3))
    print(f"\ndoctor wall time, healthy aks set-up: {run.seconds:.2f} s")


def test_workload_identity_off(aks_factory):
    aks_factory(workload_identity=False)
    run = doctor()
    fix = single_failure(run, "OIDC issuer and workload identity")
    assert (f"the OIDC issuer and workload identity are off on cluster '{CLUSTER}', so pods "
            "can't sign in to Azure") in run.lines["OIDC issuer and workload identity"]
    assert fix == (f"ask an admin to run `aksrun admin bootstrap --resource-group "
                   f"{RESOURCE_GROUP} --cluster {CLUSTER} --enable-workload-identity`.")
    assert run.marks["federated credential"] == "-"


def test_wrong_client_id(aks: AksSetup):
    aks.base.annotate("0f0f0f0f-0000-4000-8000-000000000bad")
    run = doctor()
    fix = single_failure(run, "federated credential")
    assert ("names client id 0f0f0f0f-0000-4000-8000-000000000bad, but your identity "
            f"aksrun-tester has {aks.identity.client_id}") in run.lines["federated credential"]
    assert fix == ("set the annotation to your identity aksrun-tester's client id: `kubectl "
                   f"annotate --overwrite serviceaccount aksrun -n {aks.namespace} "
                   f"azure.workload.identity/client-id={aks.identity.client_id}`.")


def test_federated_credential_for_another_service_account(aks_factory):
    aks = aks_factory(federate=False)
    aks.federate(subject="system:serviceaccount:aksrun-someone-else:aksrun")
    run = doctor()
    fix = single_failure(run, "federated credential")
    wanted = f"system:serviceaccount:{aks.namespace}:aksrun"
    assert (f"identity aksrun-tester does not trust {wanted} (it trusts: "
            "system:serviceaccount:aksrun-someone-else:aksrun)") in \
        run.lines["federated credential"]
    assert fix.startswith("ask your admin to run `aksrun admin add-user tester`, or run `az "
                          f"identity federated-credential create -g {RESOURCE_GROUP} "
                          "--identity-name aksrun-tester --name aksrun-tester-sa --issuer "
                          f"{aks.issuer} --subject {wanted} --audiences "
                          "api://AzureADTokenExchange`")


def test_federated_credential_from_another_issuer(aks_factory):
    aks = aks_factory(federate=False)
    aks.federate(issuer=aks.issuer.rstrip("/"))  # the slip Entra does not forgive
    run = doctor()
    fix = single_failure(run, "federated credential")
    assert "(they differ only in the trailing '/', and Entra compares exactly)" in \
        run.lines["federated credential"]
    assert fix.startswith("ask your admin to run `aksrun admin add-user tester` (it writes "
                          "this cluster's issuer)")


def test_cluster_not_found(aks: AksSetup):
    """Seen by someone who may read the resource group: ARM answers 404."""
    aks.arm.grant(aks.base.oauth.entra.client_id, "Reader",
                  f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}")
    aks.base.setenv("AZURE_AKS_CLUSTER_NAME", "aks-nowhere")
    run = doctor()
    fix = single_failure(run, "AKS cluster")
    assert fix == ("set AZURE_AKS_CLUSTER_NAME and AZURE_RESOURCE_GROUP to an existing cluster "
                   "(`az aks list -o table`).")
    for title in ("Kubernetes API", "namespace", "federated credential"):
        assert run.marks[title] == "-"


def test_cluster_hidden_by_arm(aks: AksSetup):
    """Seen by someone with a role on the cluster only: ARM answers 403 for a cluster that
    does not exist as for one they may not read, and the fix covers both."""
    aks.base.setenv("AZURE_AKS_CLUSTER_NAME", "aks-nowhere")
    run = doctor()
    fix = single_failure(run, "AKS cluster")
    assert "ARM won't show you AKS cluster 'aks-nowhere'" in run.lines["AKS cluster"]
    assert fix.startswith("check AZURE_AKS_CLUSTER_NAME and AZURE_RESOURCE_GROUP (`az aks list "
                          "-o table`), and if they are right ask an owner")


def test_no_right_to_the_clusters_credentials(aks: AksSetup):
    """Reader on the group sees the cluster but may not list its user credentials."""
    you = aks.base.oauth.entra.client_id
    assert aks.arm.revoke(you, "Azure Kubernetes Service Cluster User Role") == 1
    aks.arm.grant(you, "Reader", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/"
                                 f"{RESOURCE_GROUP}")
    run = doctor()
    fix = single_failure(run, "Kubernetes API")
    assert fix == ("ask an owner for the 'Azure Kubernetes Service Cluster User Role' on the "
                   "cluster.")
