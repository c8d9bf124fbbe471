"""Image contexts and tags: computed locally, by content, and stable."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from aksrun.errors import ConfigError
from aksrun.images import context as ctx


def test_runner_tag_names_python_version_and_content():
    from aksrun import __version__

    c = ctx.runner_context("3.11")
    prefix, digest = c.tag.rsplit("-", 1)
    assert prefix == f"py3.11-{__version__}"
    assert len(digest) == ctx.SHORT_HASH and int(digest, 16) >= 0
    assert c.repository == "aksrun-runner" and c.image_name == f"aksrun-runner:{c.tag}"
    assert ctx.runner_context("3.11").tag == c.tag  # stable


def test_runner_tag_changes_with_what_the_image_holds(monkeypatch):
    before = ctx.runner_context("3.11").tag
    assert ctx.runner_context("3.12").tag != before
    assert ctx.runner_context("3.11", base="example.io/python:3.11").tag != before
    # Where pip finds packages is not what the image is: no new tag for a mirror.
    assert ctx.runner_context("3.11", pip_args={"PIP_INDEX_URL": "https://m/simple"}).tag == before

    files = ctx._package_files()
    monkeypatch.setattr(ctx, "_package_files",
                        lambda: [*files[:-1], (files[-1][0], files[-1][1] + b"\n# changed")])
    assert ctx.runner_context("3.11").tag != before
    monkeypatch.undo()
    monkeypatch.setattr(ctx, "_constraints", lambda: "cloudpickle==0.0.1\ntblib==1.0\n")
    assert ctx.runner_context("3.11").tag != before


def test_runner_context_files_install_this_aksrun_with_pins():
    import cloudpickle

    c = ctx.runner_context("3.11", pip_args={"PIP_INDEX_URL": "http://127.0.0.1:1/simple/"})
    assert c.build_args["BASE"] == "mcr.microsoft.com/mirror/docker/library/python:3.11-slim"
    assert c.build_args["PIP_INDEX_URL"] == "http://127.0.0.1:1/simple/"
    files = dict(c.files)
    assert b"FROM ${BASE}" in files["Dockerfile"]
    assert b'ENTRYPOINT ["python", "-m", "aksrun.runner"]' in files["Dockerfile"]
    assert f"cloudpickle=={cloudpickle.__version__}".encode() in files["wheels/constraints.txt"]
    wheel_name = next(n for n in files if n.endswith(".whl"))
    with zipfile.ZipFile(io.BytesIO(files[wheel_name])) as whl:
        names = whl.namelist()
        assert "aksrun/runner/main.py" in names and "aksrun/images/runner.Dockerfile" in names
        assert not any("__pycache__" in n for n in names)
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "Provides-Extra: runner" in meta
        assert any(n.endswith(".dist-info/RECORD") for n in names)
    # The upload is byte-for-byte reproducible, and nothing else rides along.
    assert c.tar_gz() == ctx.runner_context("3.11", pip_args={
        "PIP_INDEX_URL": "http://127.0.0.1:1/simple/"}).tar_gz()
    with tarfile.open(fileobj=io.BytesIO(c.tar_gz())) as tar:
        assert sorted(tar.getnames()) == sorted(files)


def test_env_tag_is_one_per_need_whatever_the_spelling():
    runner = ctx.runner_context("3.11").tag
    a = ctx.env_tag(["pandas>=2.0,<3", "NumPy==1.26.4"], runner, "3.11")
    b = ctx.env_tag(["numpy==1.26.4", "pandas<3,>=2.0", "numpy == 1.26.4", "# note"], runner,
                    "3.11")
    assert a == b and len(a) == 64
    assert ctx.env_tag(["numpy==1.26.4"], runner, "3.11") != a
    assert ctx.env_tag(["pandas>=2.0,<3", "numpy==1.26.4"], runner + "x", "3.11") != a
    assert ctx.env_tag(["pandas>=2.0,<3", "numpy==1.26.4"], runner, "3.12") != a


def test_env_context_files_and_labels():
    c = ctx.env_context(["Requests[socks]>=2"], "r.io/aksrun-runner@sha256:" + "a" * 64, "t",
                        "3.11")
    assert c.repository == "aksrun-env"
    assert c.files["requirements.txt"] == b"requests[socks]>=2\n"
    assert c.build_args["RUNNER"].endswith("a" * 64)
    assert json.loads(c.build_args["AKSRUN_REQUIREMENTS"]) == ["requests[socks]>=2"]
    assert b"FROM ${RUNNER}" in c.files["Dockerfile"]


@pytest.mark.parametrize("bad, says", [
    (["--index-url https://x"], "AKSRUN_PIP_INDEX_URL"),
    (["numpy=>1"], "not a valid pip requirement"),
])
def test_bad_requirements_are_refused_with_the_fix(bad, says):
    with pytest.raises(ConfigError) as info:
        ctx.env_tag(bad, "t", "3.11")
    assert says in str(info.value)


def test_python_version_is_checked():
    with pytest.raises(ConfigError, match=r"--python 3\.11"):
        ctx.runner_context("python3")
