"""A pod whose identity is refused stops at once with the fix (issue 11, item 14): the runner
exits with the fatal access code (the Job's podFailurePolicy fails the job instead of
retrying 4 times), and the termination message says what to check. Real runner process,
real DefaultAzureCredential, Azurite in OAuth mode, the fake Entra endpoint refusing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aksrun.adapters import kubernetes_manifest as km
from aksrun.ports.compute import EXIT_ACCESS, FATAL_EXIT_CODES

REFUSED = "11111111-2222-3333-4444-555555555555"


def test_a_refused_identity_is_a_fatal_exit_with_the_fix(workload_identity_env, new_container,
                                                         tmp_path, monkeypatch):
    oauth = workload_identity_env
    oauth.entra.rejected_clients.add(REFUSED)
    termination = tmp_path / "termination-log"
    env = {**os.environ, "AZURE_CLIENT_ID": REFUSED,
           "AKSRUN_STORE": f"az://{new_container(oauth)}",
           "AKSRUN_STORAGE_ACCOUNT_URL": oauth.account_url,
           "AKSRUN_JOB_ID": "f-20261130-000000-abcde", "AKSRUN_JOB_DIGEST": "0" * 64,
           "AKSRUN_TERMINATION_LOG": str(termination),
           # what the Job's pod gets (kubernetes_manifest): workload identity only
           "AZURE_TOKEN_CREDENTIALS": "WorkloadIdentityCredential"}
    try:
        out = subprocess.run([sys.executable, "-m", "aksrun.runner"], env=env,
                             capture_output=True, text=True, timeout=120)
    finally:
        oauth.entra.rejected_clients.discard(REFUSED)
    assert out.returncode == EXIT_ACCESS, out.stderr
    message = json.loads(termination.read_text())
    assert message["error"] == "StoreAccessDenied"
    assert "AADSTS700016" in message["message"]
    assert "azure.workload.identity/client-id" in message["message"]
    assert EXIT_ACCESS in FATAL_EXIT_CODES  # -> FailJob in the Job's podFailurePolicy


def test_pods_try_workload_identity_only():
    from aksrun.core.options import make_options
    from aksrun.ports.compute import LaunchRequest

    request = LaunchRequest("f-20261130-000000-abcde", "0" * 64, "az://c", "f", 1, 1, 1, 1,
                            make_options(), "alice")
    job = km.build_job(request, namespace="ns", image="r.io/x@sha256:" + "1" * 64,
                       service_account="aksrun", storage_env={})
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["AZURE_TOKEN_CREDENTIALS"] == "WorkloadIdentityCredential"
    fail_job = [r for r in job["spec"]["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert EXIT_ACCESS in fail_job[0]["onExitCodes"]["values"]


def test_the_cluster_token_comes_from_the_clusters_tenant(workload_identity_env, tmp_path):
    """kubelogin's --tenant-id is honoured (issue 11, item 15): a guest user's home tenant
    would get a token the cluster refuses. Real DefaultAzureCredential, fake Entra."""
    import yaml

    from aksrun.adapters.azure.kubeconfig import AKS_SERVER_APP_ID, load_kubernetes_client

    cluster_tenant = "99999999-8888-7777-6666-555555555555"
    assert workload_identity_env.env["AZURE_TENANT_ID"] != cluster_tenant
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": "aks",
        "clusters": [{"name": "aks", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "u"}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
            "args": ["get-token", "--server-id", AKS_SERVER_APP_ID, "--tenant-id",
                     cluster_tenant, "--login", "azurecli"]}}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    load_kubernetes_client(path)  # gets the first token at once
    last = workload_identity_env.entra.requests[-1]
    assert last.accepted and last.tenant == cluster_tenant
    assert last.scope == f"{AKS_SERVER_APP_ID}/.default"
