"""`aksrun image build|ls` end to end, as a user runs them: ACR Tasks on the strict fake ARM,
builds by buildah, images in a real registry read through the ACR data plane."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.acr_stack import TEST_PACKAGE
from tests.support.clirun import aksrun_cli

pytestmark = pytest.mark.timeout(900)


def build(*args: str) -> subprocess.CompletedProcess[str]:
    return aksrun_cli("image", "build", *args, timeout=600)


def test_runner_image_is_built_once_then_found(acr_env):
    runs_before = acr_env.schedule_runs()
    first = build("--json")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    server = acr_env.front.login_server
    assert result["reference"].startswith(f"{server}/aksrun-runner@sha256:")
    assert result["tag"].startswith("py3.11-0.1.0-")
    if result["built"]:  # this session's base image is new: a real build ran, its log streamed
        assert acr_env.schedule_runs() == runs_before + 1
        assert "STEP 1/" in first.stderr and "was successful after" in first.stderr
    # Asked again (another process): found by tag, nothing scheduled.
    again = build()
    assert again.returncode == 0, again.stderr
    assert "already in the registry" in again.stdout
    assert result["reference"] in again.stdout
    assert acr_env.schedule_runs() == runs_before + (1 if result["built"] else 0)


def test_dependency_image_and_listing(acr_env):
    done = build(f"{TEST_PACKAGE}==1.0", "--json")
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    assert env["repository"] == "aksrun-env" and len(env["tag"]) == 64
    assert "@sha256:" in env["reference"]

    listed = aksrun_cli("image", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    images = {(i["repository"], i["tag"]): i for i in json.loads(listed.stdout)}
    mine = images[("aksrun-env", env["tag"])]
    assert mine["requirements"] == [f"{TEST_PACKAGE}==1.0"]
    assert mine["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert mine["aksrun"] == "0.1.0"
    assert any(r == "aksrun-runner" for r, _ in images)


def test_two_processes_needing_the_same_image_start_one_build(acr_env):
    # A version no other test asks for: the image is surely missing at first.
    need = f"{TEST_PACKAGE}>=1.0,<2"
    assert build().returncode == 0  # the runner image exists, so only the env image is missing
    before = acr_env.schedule_runs()
    procs = [subprocess.Popen([sys.executable, "-m", "aksrun.cli", "image", "build", need,
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]
    assert results[0]["reference"] == results[1]["reference"]
    assert sorted(r["built"] for r in results) == [False, True]
    assert acr_env.schedule_runs() - before == 1


def test_a_requirement_that_does_not_exist_fails_with_pips_words(acr_env):
    failed = build("aksrun-no-such-package==9.9")
    assert failed.returncode == 1
    assert "pip could not install" in failed.stderr
    assert "No matching distribution found for aksrun-no-such-package==9.9" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_base_image_the_registry_lacks_is_named(acr_env, monkeypatch):
    missing = acr_env.images.base_ref.rsplit("/", 1)[0] + "/no-such-base:3.11"
    failed = build("--base", missing)
    assert failed.returncode == 1, failed.stdout
    assert f"the base image {missing} could not be pulled" in failed.stderr
    assert "AKSRUN_BASE_IMAGE" in failed.stderr


def test_a_registry_that_does_not_exist(acr_env, monkeypatch):
    # Its login server doesn't answer (a closed loopback port stands in for a name that
    # doesn't resolve); ARM then names the missing registry.
    monkeypatch.setenv("AKSRUN_REGISTRY_LOGIN_SERVER", "127.0.0.1:9")
    # With no role above the registry, ARM answers 403 for it, existing or not: say both.
    failed = build("--registry", "nosuchregistry")
    assert failed.returncode == 1
    assert "registry 'nosuchregistry'" in failed.stderr
    assert "or it does not exist" in failed.stderr
    # With Reader on the resource group, ARM can say that it doesn't exist.
    scope = acr_env.registry_scope.rsplit("/providers/", 1)[0]
    acr_env.arm.grant(acr_env.principal, "Reader", scope)
    try:
        failed = build("--registry", "nosuchregistry")
    finally:
        acr_env.arm.revoke(acr_env.principal, "Reader", scope)
    assert failed.returncode == 1
    assert "registry 'nosuchregistry'" in failed.stderr and "was not found" in failed.stderr


def test_without_the_tasks_role_the_role_is_named(acr_env):
    removed = acr_env.arm.revoke(acr_env.principal, "Container Registry Tasks Contributor")
    try:
        acr_env.arm.grant(acr_env.principal, "AcrPush", acr_env.registry_scope)
        failed = build(f"{TEST_PACKAGE}==1.0", "--python", "3.11", "--base",
                       acr_env.images.base_ref + "-unbuilt")
        assert failed.returncode == 1
        assert "Container Registry Tasks Contributor" in failed.stderr
    finally:
        acr_env.arm.revoke(acr_env.principal, "AcrPush")
        if removed:
            acr_env.arm.grant(acr_env.principal, "Container Registry Tasks Contributor",
                              acr_env.registry_scope)
