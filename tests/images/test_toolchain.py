"""The image toolchain for real: buildah builds Dockerfiles FROM the test base in the test
registry, pip inside a build reads the local index, and the ACR Tasks executor streams every
line, reports pip's and buildah's own errors, and stops a build it is told to cancel."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.images.acr_executor import BuildJob, BuildResult, error_line, split_name
from tests.support.images.session import TestImages


def run_build(images: TestImages, context: Path, dockerfile: str, names: list[str],
              build_args: dict[str, str] | None = None, timeout: float = 300.0,
              cancelled: threading.Event | None = None,
              on_line=None) -> tuple[BuildResult, list[str]]:
    """One fake ACR Tasks run through the executor; its result and every log line."""
    (context / "Dockerfile").write_text(dockerfile)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if on_line is not None:
            on_line(line)

    job = BuildJob(run_id="ca1", context_dir=context, dockerfile="Dockerfile",
                   image_names=names, build_args=build_args or {}, no_cache=False, push=True,
                   login_server=images.login_server, timeout=timeout, log=log,
                   cancelled=cancelled or threading.Event())
    return images.executor(job), lines


def test_a_build_pulls_its_base_from_the_registry_and_pushes_by_digest(
        test_images: TestImages, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from the context\n")
    result, lines = run_build(test_images, tmp_path, (
        "ARG BASE\nFROM ${BASE}\nCOPY hello.txt /srv/hello.txt\n"
        "RUN python3 -c \"print('built with', __import__('sys').version.split()[0])\"\n"
        "LABEL io.aksrun.test=yes\n"), ["toolchain/hello:v1", "toolchain/hello:latest"],
        {"BASE": test_images.base_ref})
    assert result.succeeded, result.error
    client = test_images.registry.client()
    digests = {tag: digest for _repo, tag, digest in result.images}
    assert set(digests) == {"v1", "latest"} and digests["v1"] == digests["latest"]
    assert client.exists("toolchain/hello", "v1") == digests["v1"]
    assert any(line.startswith("STEP 1/") and test_images.base_ref in line for line in lines)
    assert any(line.startswith("built with 3.11.") for line in lines)  # RUN output streamed
    config = client.config("toolchain/hello", client.manifest("toolchain/hello", "v1"))
    assert config["config"]["Labels"]["io.aksrun.test"] == "yes"


def test_a_failing_pip_step_reaches_the_result_with_pips_error(
        test_images: TestImages, tmp_path: Path) -> None:
    result, lines = run_build(test_images, tmp_path, (
        "ARG BASE\nFROM ${BASE}\nARG PIP_INDEX_URL\n"
        "RUN python3 -m venv /opt/v && /opt/v/bin/pip install no-such-package-aksrun==1.0\n"),
        ["toolchain/broken:v1"],
        {"BASE": test_images.base_ref, "PIP_INDEX_URL": test_images.index.index_url})
    assert not result.succeeded and result.images == []
    assert "No matching distribution found for no-such-package-aksrun==1.0" in result.error
    assert 'Error: building at STEP "RUN python3 -m venv' in result.error  # buildah's verdict
    assert any("Looking in indexes: " + test_images.index.index_url in line for line in lines)
    assert any("/simple/no-such-package-aksrun/" in r and " 404 " in r
               for r in test_images.index.requests)
    assert test_images.registry.client().exists("toolchain/broken", "v1") is None


def test_a_missing_base_image_fails_with_buildahs_error(
        test_images: TestImages, tmp_path: Path) -> None:
    missing = f"{test_images.login_server}/library/python:0.0-missing"
    result, lines = run_build(test_images, tmp_path, "ARG BASE\nFROM ${BASE}\n",
                              ["toolchain/orphan:v1"], {"BASE": missing})
    assert not result.succeeded
    text = "\n".join(lines)
    assert "manifest unknown" in text and missing in text
    assert "manifest unknown" in result.error


def test_a_base_on_an_unreachable_registry_fails_fast_without_leaving_the_machine(
        test_images: TestImages, tmp_path: Path) -> None:
    started = time.monotonic()
    result, _lines = run_build(test_images, tmp_path, "FROM mcr.microsoft.com/mirror/x:1\n",
                               ["toolchain/far:v1"])
    assert not result.succeeded and "127.0.0.1:9" in result.error  # the dead proxy
    assert time.monotonic() - started < 60


def test_cancel_kills_the_build_and_its_run_step(
        test_images: TestImages, tmp_path: Path) -> None:
    cancelled = threading.Event()
    marker = "aksrun-cancel-test-sleeping"

    def on_line(line: str) -> None:
        if line == marker:
            cancelled.set()

    started = time.monotonic()
    result, _lines = run_build(
        test_images, tmp_path,
        f"ARG BASE\nFROM ${{BASE}}\nRUN echo {marker} && sleep 600\n",
        ["toolchain/slow:v1"], {"BASE": test_images.base_ref}, cancelled=cancelled,
        on_line=on_line)
    assert cancelled.is_set() and not result.succeeded and result.error == "canceled"
    assert time.monotonic() - started < 60
    ps = Path("/proc")
    sleepers = [p for p in ps.iterdir() if p.name.isdigit() and (p / "cmdline").exists()
                and b"sleep\x00600" in (p / "cmdline").read_bytes()]
    assert not sleepers


def test_the_runner_image_has_the_config_aksrun_pods_rely_on(test_images: TestImages) -> None:
    import aksrun

    runner = test_images.runner
    client = test_images.registry.client()
    config = client.config(runner.repository, client.manifest(runner.repository, runner.digest))
    c = config["config"]
    env = dict(item.split("=", 1) for item in c["Env"])
    assert env["PATH"].startswith("/opt/aksrun/bin:")
    assert (c["WorkingDir"], c["User"]) == ("/work", "1000:1000")
    assert c["Entrypoint"] == ["python", "-m", "aksrun.runner"]
    assert c["Labels"]["io.aksrun.python"] == "3.11"
    assert c["Labels"]["io.aksrun.version"] == aksrun.__version__
    assert runner.tag.startswith(f"py3.11-{aksrun.__version__}-")


def test_an_env_image_builds_from_the_runner_by_digest(
        test_images: TestImages, tmp_path: Path) -> None:
    from aksrun.images.context import env_context

    runner = test_images.runner
    ctx = env_context(["requests"], runner.reference, runner.tag, python="3.11",
                      pip_args={"PIP_INDEX_URL": test_images.index.index_url})
    ctx.write(tmp_path)
    lines: list[str] = []
    job = BuildJob(run_id="ca2", context_dir=tmp_path, dockerfile=ctx.dockerfile,
                   image_names=[ctx.image_name], build_args=dict(ctx.build_args),
                   no_cache=False, push=True, login_server=test_images.login_server,
                   timeout=300, log=lines.append, cancelled=threading.Event())
    result = test_images.executor(job)
    assert result.succeeded, result.error
    [(repository, tag, digest)] = result.images
    assert (repository, tag) == (ctx.repository, ctx.tag)
    config = test_images.registry.client().config(
        repository, test_images.registry.client().manifest(repository, digest))
    assert config["config"]["User"] == "1000:1000"
    assert config["config"]["Labels"]["io.aksrun.requirements"] == '["requests"]'


def test_the_index_is_pep_503(test_images: TestImages) -> None:
    url = test_images.index.index_url
    with urllib.request.urlopen(url + "cloudpickle/", timeout=10) as page:
        body = page.read().decode()
    assert "cloudpickle-" in body and "#sha256=" in body
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url + "no-such-project/", timeout=10)
    assert err.value.code == 404


def test_error_lines_prefer_the_tools_own_words() -> None:
    lines = ["STEP 2/2: RUN pip install x", "ERROR: No matching distribution found for x",
             'Error: building at STEP "RUN pip install x": exit status 1']
    assert error_line(lines) == ('ERROR: No matching distribution found for x (Error: building '
                                 'at STEP "RUN pip install x": exit status 1)')
    assert error_line(["just output"]) == "just output"
    assert split_name("a/b:c") == ("a/b", "c") and split_name("a/b") == ("a/b", "latest")
    assert split_name("127.0.0.1:5000/a") == ("127.0.0.1:5000/a", "latest")
