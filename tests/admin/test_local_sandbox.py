"""The README's local sandbox, as a person types it: `make cluster-up`'s supervisor, then in
shells that source its env files, `aksrun admin bootstrap`, `aksrun admin add-user alice`,
and as alice `aksrun init` (the command add-user printed), `aksrun doctor` (all ✓) and a first
call, computed in a pod that reaches alice's container with her workload identity (no key).
Bob, not added, gets doctor's fixes instead; `down` stops everything."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.k8s.build import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.azurite, pytest.mark.timeout(900)]
KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "GOPATH", "GOCACHE", "GOMODCACHE",
        "XDG_CACHE_HOME", "AKSRUN_K8S_CACHE", "AKSRUN_IMAGES_CACHE", "CI")


def shell(env_file: Path, command: str, cwd: Path, timeout: float = 600
          ) -> subprocess.CompletedProcess[str]:
    """`. env_file && command` in a login-like shell: none of this test process's settings."""
    env = {k: os.environ[k] for k in KEEP if k in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["AKSRUN_HOME"] = str(cwd / ".aksrun-home")
    script = f"set -a; . {shlex.quote(str(env_file))}; set +a; {command}"
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("sandbox")
    up = subprocess.run([sys.executable, "-m", "tests.support.k8s", "up", "--dir",
                         str(directory)], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=600)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield directory
    finally:
        down = subprocess.run([sys.executable, "-m", "tests.support.k8s", "down", "--dir",
                               str(directory)], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert not (directory / "env.sh").exists()


def test_bootstrap_add_user_init_doctor_and_a_first_call_as_on_azure(sandbox, tmp_path):
    admin, alice, bob = (sandbox / f"{n}.env.sh" for n in ("admin", "alice", "bob"))
    home = tmp_path / "alice"
    home.mkdir()

    boot = shell(admin, "aksrun admin bootstrap --resource-group rg-aksrun-admin "
                        "--cluster aks-aksrun", tmp_path)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert re.search(r"\+ created\s+storage account", boot.stdout), boot.stdout
    assert re.search(r"\+ created\s+container registry", boot.stdout), boot.stdout
    assert re.search(r"(\+ created|✓ found)\s+runner image", boot.stdout), boot.stdout

    added = shell(admin, "aksrun admin add-user alice --principal alice@contoso.com", tmp_path)
    assert added.returncode == 0, added.stdout + added.stderr
    assert re.search(r"\+ created\s+role assignment\s+AcrPull for alice@contoso.com",
                     added.stdout), added.stdout
    assert re.search(r"✓ ready\s+access check\s+alice", added.stdout), added.stdout
    [init] = re.findall(r"run `(aksrun init [^`]+)`", added.stderr)
    assert "ClientAssertionCredential.get_token failed" not in added.stderr  # no SDK noise

    bob_home = tmp_path / "bob"
    bob_home.mkdir()
    not_added = shell(bob, "AKSRUN_USER=bob AZURE_AKS_CLUSTER_NAME=aks-aksrun aksrun doctor",
                      bob_home)
    assert not_added.returncode == 1, not_added.stdout  # bob was never added
    failed = {line.split(":")[0][2:] for line in not_added.stdout.splitlines()
              if line.startswith("✗")}
    assert {"AKS cluster", "namespace", "store"} <= failed, not_added.stdout
    assert failed & {"container registry", "runner image"}, not_added.stdout  # no AcrPull
    assert "`aksrun admin add-user bob`" in not_added.stdout

    initialised = shell(alice, init, home)
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr
    assert (home / "aksrun.toml").exists()
    assert "all checks passed" in initialised.stdout, initialised.stdout

    doctor = shell(alice, "aksrun doctor", home)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "✗" not in doctor.stdout

    call = shell(alice, "python -c 'import aksrun; print(aksrun.function()(pow)(2, 10))'",
                 home)
    assert call.returncode == 0, call.stdout + call.stderr
    assert call.stdout.strip().splitlines()[-1] == "1024"
    # ... in a pod that signed in as alice's identity: the webhook gave it the token file.
    pods = shell(admin, "python -c \"from kubernetes import client, config; api = "
                        "client.CoreV1Api(config.new_client_from_config("
                        f"'{sandbox}/state/control-plane/admin.kubeconfig')); "
                        "[print(e.name) for p in api.list_namespaced_pod('aksrun-alice').items "
                        "for e in p.spec.containers[0].env]\"", tmp_path)
    assert pods.returncode == 0, pods.stderr
    assert "AZURE_FEDERATED_TOKEN_FILE" in pods.stdout.split()
    assert "AKSRUN_STORAGE_CONNECTION_STRING" not in pods.stdout.split()

