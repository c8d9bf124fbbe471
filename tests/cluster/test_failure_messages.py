"""Issue 11, item 21: what a person at a shell sees when a job can't run, on the real control
plane. Each failure reaches them as one `Error:` line that names what went wrong and what to
do, exit code 1, and never a traceback."""

from __future__ import annotations

import pytest

from tests.support.clirun import aksrun_cli

pytestmark = pytest.mark.cluster


def one_error_line(out) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_an_image_that_does_not_exist(k8s, monkeypatch):
    monkeypatch.setenv("AKSRUN_IMAGE", "aksrunacr.azurecr.io/does-not-exist:1")
    line = one_error_line(aksrun_cli("run", "tests.e2e.funcs:square", "3"))
    assert "aksrunacr.azurecr.io/does-not-exist:1" in line
    assert "ErrImagePull" in line or "ImagePullBackOff" in line


def test_pods_that_cannot_be_created(k8s):
    k8s.admin_api().delete_namespaced_service_account("aksrun", k8s.namespace)
    line = one_error_line(aksrun_cli("run", "tests.e2e.funcs:square", "3"))
    assert "service account 'aksrun'" in line and "aksrun admin add-user" in line


def test_a_namespace_that_is_not_yours(k8s, monkeypatch):
    monkeypatch.setenv("AKSRUN_NAMESPACE", "kube-system")
    line = one_error_line(aksrun_cli("run", "tests.e2e.funcs:square", "3"))
    assert "may not create jobs.batch in namespace 'kube-system'" in line
    assert "aksrun admin add-user" in line


def test_a_call_over_its_memory_limit(k8s):
    line = one_error_line(aksrun_cli("run", "tests.e2e.funcs:hog_memory", "--memory",
                                     "128Mi"))
    assert "memory limit" in line and "memory='128Mi'" in line and "raise memory=" in line


def test_a_request_that_fits_no_node(k8s):
    line = one_error_line(aksrun_cli("run", "tests.e2e.funcs:square", "3", "--cpu", "64"))
    assert "Unschedulable" in line and "Insufficient cpu" in line and "cpu=64" in line
