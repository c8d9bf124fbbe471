"""Doctor against the real control plane, Azurite with Entra ID tokens and the ACR stand-in:
a healthy set-up gives all ✓ and exit 0; each broken set-up (one thing wrong) gives exactly
one ✗, that check's own fix, and exit 1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.doctor.conftest import DoctorSetup, tag_runner_for_this_client
from tests.doctor.support import doctor, single_failure

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

HEALTHY = ["configuration", "Azure credential", "Kubernetes API", "namespace",
           "service account", "Kubernetes permissions", "store", "container registry",
           "runner image", "Python and cloudpickle"]


def test_healthy_set_up_passes_every_check(healthy: DoctorSetup, test_images,
                                          record_property):
    run = doctor()
    assert run.exit_code == 0, run.output
    assert run.marks == dict.fromkeys(HEALTHY, "✓"), run.output
    lines = run.lines
    assert "WorkloadIdentityCredential as application " in lines["Azure credential"]
    assert f"{healthy.namespace} is yours" in lines["namespace"]
    assert "Kubernetes v1.36.3" in lines["Kubernetes API"]
    assert f"workload identity client id {'5b0c7a5e'}" in lines["service account"]
    assert "all 13 verbs aksrun uses are allowed" in lines["Kubernetes permissions"]
    assert "write, read and delete work" in lines["store"]
    assert "aksrun-runner:py3.11-0.1.0-" in lines["runner image"]
    assert "Python 3.11, aksrun 0.1.0 in the image and here; cloudpickle" in \
        lines["Python and cloudpickle"]
    # As a user runs it: a new process (imports included), the environment as set above.
    tag_runner_for_this_client(healthy, test_images, live=True)
    started = time.monotonic()
    process = subprocess.run([sys.executable, "-c", "from aksrun.cli.doctor import doctor; "
                              "doctor()", "--json"], capture_output=True, text=True, timeout=60)
    cold = time.monotonic() - started
    assert process.returncode == 0, process.stdout + process.stderr
    report = json.loads(process.stdout)
    assert [c["status"] for c in report["checks"]] == ["ok"] * len(HEALTHY)
    slowest = sorted(report["checks"], key=lambda c: -c["seconds"])[:4]
    record_property("doctor_seconds_in_process", round(run.seconds, 3))
    record_property("doctor_seconds_new_process", round(cold, 3))
    print(f"\ndoctor wall time, healthy set-up: {run.seconds:.2f} s in process, "
          f"{cold:.2f} s as a new process (its checks {report['seconds']:.2f} s; slowest: "
          + ", ".join(f"{c['id']} {c['seconds']:.2f} s" for c in slowest) + ")")
    # the probe left nothing behind
    blobs = healthy.oauth.service_client().get_container_client(healthy.container)
    assert list(blobs.list_blob_names()) == []


def test_missing_namespace(healthy: DoctorSetup):
    healthy.k8s.cluster.delete_namespace(healthy.namespace, wait=60)
    fix = single_failure(doctor(), "namespace")
    assert fix == (f"ask your admin to run `aksrun admin add-user tester` to create namespace "
                   f"{healthy.namespace} with your Role in it, or set AKSRUN_NAMESPACE to "
                   "yours.")


def test_missing_service_account(healthy: DoctorSetup):
    healthy.core().delete_namespaced_service_account("aksrun", healthy.namespace)
    run = doctor()
    fix = single_failure(run, "service account")
    assert f"no service account 'aksrun' in {healthy.namespace}: pods can't start" in \
        run.lines["service account"]
    assert fix == (f"ask your admin to run `aksrun admin add-user tester` to create service "
                   f"account aksrun in {healthy.namespace}.")


def test_missing_annotation(healthy: DoctorSetup):
    healthy.annotate(None)
    run = doctor()
    fix = single_failure(run, "service account")
    assert "has no azure.workload.identity/client-id annotation" in run.lines["service account"]
    assert fix == ("ask your admin to run `aksrun admin add-user tester`, or annotate it: "
                   f"`kubectl annotate serviceaccount aksrun -n {healthy.namespace} "
                   "azure.workload.identity/client-id=<client id of your identity>`.")


def test_missing_verb(healthy: DoctorSetup):
    role = healthy.rbac().read_namespaced_role("aksrun-user", healthy.namespace)
    role.rules[0].verbs = [v for v in role.rules[0].verbs if v != "watch"]  # batch/jobs
    healthy.rbac().replace_namespaced_role("aksrun-user", healthy.namespace, role)
    run = doctor()
    fix = single_failure(run, "Kubernetes permissions")
    assert f"in {healthy.namespace} you may not: watch jobs.batch" in \
        run.lines["Kubernetes permissions"]
    assert fix == ("ask your admin to run `aksrun admin add-user tester` again to restore "
                   "Role aksrun-user (it grants watch jobs.batch).")


def test_missing_container(healthy: DoctorSetup):
    healthy.oauth.service_client().delete_container(healthy.container)
    run = doctor()
    fix = single_failure(run, "store")
    assert f"container '{healthy.container}' does not exist" in run.lines["store"]
    assert fix == ("ask your admin to run `aksrun admin add-user tester`, which creates "
                   f"container {healthy.container}, or set AKSRUN_STORE to yours.")
    # doctor reports, it does not repair
    assert not healthy.oauth.service_client().get_container_client(healthy.container).exists()


def test_container_refuses_writes(healthy: DoctorSetup):
    """A 403 from Storage: a SAS that may read and list but not write, as a role without
    Storage Blob Data Contributor may."""
    import datetime as dt

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    server = healthy.oauth.server
    sas = generate_container_sas(server.account, healthy.container,
                                 account_key=server.account_key,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    healthy.setenv("AKSRUN_STORAGE_CONNECTION_STRING",
                   f"BlobEndpoint={server.account_url};SharedAccessSignature={sas}")
    run = doctor()
    fix = single_failure(run, "store")
    assert "you may not write to container" in run.lines["store"]
    assert "AuthorizationPermissionMismatch" in run.lines["store"]
    assert fix == (f"ask your admin for Storage Blob Data Contributor on container "
                   f"{healthy.container} (`aksrun admin add-user tester` grants it; it takes "
                   "a few minutes to apply).")


def test_missing_runner_image(healthy: DoctorSetup):
    healthy.setenv("AKSRUN_BASE_IMAGE", "aksrun-test/python:3.11-never-built")
    run = doctor()
    fix = single_failure(run, "runner image")
    assert "(for Python 3.11, aksrun 0.1.0) is not in the registry" in run.lines["runner image"]
    assert run.marks["Python and cloudpickle"] == "-"
    assert fix == "build it with `aksrun image build` (once per aksrun version and Python)."


def test_version_skew(healthy: DoctorSetup, skewed_image: str):
    healthy.setenv("AKSRUN_IMAGE", skewed_image)
    run = doctor()
    fix = single_failure(run, "Python and cloudpickle")
    assert "the image has Python 3.10 (here 3.11) and aksrun 0.0.9 (here 0.1.0)" in \
        run.lines["Python and cloudpickle"]
    assert fix.startswith("unset AKSRUN_IMAGE to run in the runner image built for this "
                          "client (`aksrun image build`)")


def test_no_credential(healthy: DoctorSetup):
    healthy.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")  # and no `az` here
    healthy.setenv("PATH", "/usr/bin:/bin")
    run = doctor()
    fix = single_failure(run, "Azure credential")
    assert ("DefaultAzureCredential found no credential to use (AZURE_TOKEN_CREDENTIALS="
            "AzureCliCredential allows only that)") in run.lines["Azure credential"]
    assert fix.startswith("sign in with what AZURE_TOKEN_CREDENTIALS=AzureCliCredential allows")
    for title in ("store", "container registry"):
        assert run.marks[title] == "-" and "needs Azure credential" in run.lines[title]
    assert run.marks["Kubernetes permissions"] == "✓"  # the cluster needs no Azure here


def test_cluster_unreachable(healthy: DoctorSetup, tmp_path: Path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    document = yaml.safe_load(healthy.k8s.kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    closed = tmp_path / "closed.kubeconfig"
    closed.write_text(yaml.safe_dump(document))
    healthy.setenv("KUBECONFIG", str(closed))
    run = doctor()
    fix = single_failure(run, "Kubernetes API")
    assert f"cannot reach the API server at https://127.0.0.1:{port}" in \
        run.lines["Kubernetes API"]
    assert fix.startswith("start the cluster or fix KUBECONFIG")
    for title in ("namespace", "service account", "Kubernetes permissions"):
        assert run.marks[title] == "-"


def test_registry_refuses_you(healthy: DoctorSetup):
    front, you = healthy.acr.front, healthy.oauth.entra.client_id
    front.revoke(you, "AcrPull")
    try:
        run = doctor()
    finally:
        front.grant(you, "AcrPull")
    fix = single_failure(run, "container registry")
    assert f"registry {front.login_server} refused you" in run.lines["container registry"]
    assert fix == ("ask your admin for AcrPull on registry aksrunacr (AcrPush and Container "
                   "Registry Tasks Contributor to build images).")


def test_an_api_server_that_never_answers_fails_at_the_deadline(healthy: DoctorSetup,
                                                                 tmp_path: Path):
    """A listener that accepts and stays silent (a black-holed load balancer): the check
    ends at its deadline and the others still report."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        document = yaml.safe_load(healthy.k8s.kubeconfig.read_text())
        document["clusters"][0]["cluster"]["server"] = \
            f"https://127.0.0.1:{silent.getsockname()[1]}"
        path = tmp_path / "silent.kubeconfig"
        path.write_text(yaml.safe_dump(document))
        healthy.setenv("KUBECONFIG", str(path))
        run = doctor("--timeout", "2")
    assert run.seconds < 20  # bounded: not the client's retries times its timeouts
    fix = single_failure(run, "Kubernetes API")
    assert fix.startswith("check the cluster is running and reachable from here") or \
        fix.startswith("start the cluster or fix KUBECONFIG"), fix
    assert run.marks["store"] == "✓"
