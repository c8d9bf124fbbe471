"""The test cluster as a person uses it (`make cluster-up` / `make cluster-down`), and how its
start-up fails: always with the step, the log and the fix, never a silent fallback."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.k8s.build import REPO_ROOT, kubernetes_version
from tests.support.k8s.control_plane import ControlPlane, ControlPlaneError

pytestmark = pytest.mark.cluster


def _k8s_cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.support.k8s", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cluster_up_lets_a_person_run_aksrun_by_hand_and_down_stops_it(tmp_path):
    up = _k8s_cli("up", "--dir", str(tmp_path / "cluster"))
    try:
        assert up.returncode == 0, up.stderr
        exports = {k: shlex.split(v)[0] for k, v in
                   re.findall(r"^export (\w+)=(.*)$", up.stdout, re.M)}
        assert {"AKSRUN_BACKEND", "KUBECONFIG", "AKSRUN_NAMESPACE", "AKSRUN_STORE",
                "AKSRUN_STORAGE_CONNECTION_STRING", "AZURE_CONTAINER_REGISTRY",
                "AKSRUN_ARM_ENDPOINT", "AZURE_AUTHORITY_HOST"} <= set(exports)
        assert "AKSRUN_IMAGE" not in exports  # images come from the registry, as on Azure
        assert f"kube-apiserver {kubernetes_version()}" in up.stdout
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AKSRUN_", "AZURE_")) or k.startswith("AKSRUN_IMAGES_")}
        env.update(exports, AKSRUN_HOME=str(tmp_path / "home"), AKSRUN_DOTENV="0")
        # By hand, as the README says: build the runner image, then a call that needs a
        # package, which runs in a dependency image built for it.
        built = subprocess.run([sys.executable, "-m", "aksrun.cli", "image", "build"],
                               cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                               timeout=600)
        assert built.returncode == 0, built.stderr
        assert "aksrun-runner:py3.11-" in built.stdout
        script = ("import aksrun\n"
                  "@aksrun.function(requirements=['aksrun-testpkg==1.0'])\n"
                  "def value():\n"
                  "    import aksrun_testpkg\n"
                  "    return aksrun_testpkg.VALUE\n"
                  "print(value())\n")
        run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "imported inside the dependency image"
        run = subprocess.run([sys.executable, "-m", "aksrun.cli", "run", "tests.e2e.funcs:add",
                              "2", "b=3"], cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=180)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "5"
        # The person's kubeconfig is not the admin's: only aksrun's Role, in one namespace.
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(exports["KUBECONFIG"]))
        with pytest.raises(client.ApiException) as info:
            api.list_namespaced_pod("kube-system")
        assert info.value.status == 403
        again = _k8s_cli("up", "--dir", str(tmp_path / "cluster"))
        assert again.returncode == 0 and "already runs" in again.stderr
    finally:
        down = _k8s_cli("down", "--dir", str(tmp_path / "cluster"))
    assert down.returncode == 0, down.stderr
    port = int(re.search(r"https://127\.0\.0\.1:(\d+)", up.stdout).group(1))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the API server is gone
    assert "no test cluster is running" in _k8s_cli("down", "--dir",
                                                     str(tmp_path / "cluster")).stderr


def test_a_port_in_use_names_the_component_the_log_and_the_fix(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plane = ControlPlane(tmp_path / "cp", port=taken.getsockname()[1])
        with pytest.raises(ControlPlaneError) as info:
            plane.start()
    text = str(info.value)
    assert "step 'start kube-apiserver'" in text and "exited with code" in text
    assert "address already in use" in text
    assert f"Log: {tmp_path / 'cp' / 'logs' / 'kube-apiserver.log'}" in text
    assert "Fix:" in text and "never falls back to a fake" in text
    assert plane.components == []  # etcd, started first, was stopped again
