"""The node agent's image handling without a cluster: layers unpacked as overlay snapshots
(OCI whiteouts become overlay whiteouts), and an image's config applied to a container as
the kubelet and containerd do (ENTRYPOINT/CMD vs command/args, USER vs runAsUser, the
runAsNonRoot check against the image's USER, names from the image's own /etc/passwd)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tests.support.images.buildah import ImageConfig
from tests.support.node_agent import image_config
from tests.support.node_agent.envvars import ConfigError
from tests.support.node_agent.image_store import Image, unpack_layer

PASSWD = "root:x:0:0:root:/root:/bin/bash\naksrun:x:1000:1000::/home/aksrun:/usr/sbin/nologin\n"
GROUP = "root:x:0:\naksrun:x:1000:\nshared:x:2000:aksrun\n"


def layer(path: Path, entries: list[tuple[str, bytes | None, int]]) -> Path:
    """A gzip'd layer tar: (name, file bytes or None for a directory, mode)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, 0, 0
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="overlay whiteouts need root (mknod, xattrs)")
def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    blob = layer(tmp_path / "l.tar.gz", [
        ("./", None, 0o755), ("etc/", None, 0o755), ("etc/.wh.motd", b"", 0o644),
        ("opt/app/", None, 0o755), ("opt/app/.wh..wh..opq", b"", 0o644),
        ("opt/app/new.py", b"print(1)\n", 0o644), ("usr/bin/tool", b"#!/bin/sh\n", 0o4755),
    ])
    out = tmp_path / "snapshot"
    out.mkdir()
    unpack_layer(blob, out)
    motd = (out / "etc" / "motd").lstat()
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == os.makedev(0, 0)
    assert os.getxattr(out / "opt" / "app", "trusted.overlay.opaque") == b"y"
    assert (out / "opt" / "app" / "new.py").read_text() == "print(1)\n"
    assert stat.S_IMODE((out / "usr" / "bin" / "tool").stat().st_mode) == 0o4755
    assert not (out / "etc" / ".wh.motd").exists()


def test_an_entry_leaving_the_layer_is_refused(tmp_path: Path) -> None:
    blob = layer(tmp_path / "bad.tar.gz", [("../escape", b"x", 0o644)])
    (tmp_path / "snap").mkdir()
    with pytest.raises(tarfile.TarError):
        unpack_layer(blob, tmp_path / "snap")
    assert not (tmp_path / "escape").exists()


def image(tmp_path: Path, user: str = "1000:1000", entrypoint: list[str] | None = None,
          cmd: list[str] | None = None) -> Image:
    root = tmp_path / "layer"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    config = ImageConfig(env=["PATH=/opt/aksrun/bin:/usr/bin", "HOME=/home/aksrun"],
                         working_dir="/work", user=user,
                         entrypoint=entrypoint if entrypoint is not None
                         else ["python", "-m", "aksrun.runner"], cmd=cmd)
    return Image("reg/x@sha256:0", "reg/x@sha256:0", "sha256:0", config, [root], 1)


def pod(run_as: dict | None = None, container_sc: dict | None = None) -> tuple[dict, dict]:
    container = {"name": "c", "securityContext": container_sc or {}}
    return {"spec": {"securityContext": run_as or {}}}, container


def test_command_replaces_the_entrypoint_and_args_the_cmd(tmp_path: Path) -> None:
    img = image(tmp_path, entrypoint=["tini", "--"], cmd=["serve"])
    env = {"X": "1"}
    assert image_config.command_line({}, env, img) == ["tini", "--", "serve"]
    assert image_config.command_line({"args": ["run", "$(X)"]}, env, img) == [
        "tini", "--", "run", "1"]
    assert image_config.command_line({"command": ["python"], "args": ["-V"]}, env, img) == [
        "python", "-V"]
    assert image_config.command_line({"command": ["python"]}, env, img) == ["python"]


def test_the_image_user_runs_unless_the_pod_says_otherwise(tmp_path: Path) -> None:
    img = image(tmp_path)
    spec, container = pod()
    ident = image_config.identity(spec, container, img, "p_ns(uid)")
    assert ident is not None and (ident.uid, ident.gid) == (1000, 1000)
    spec, container = pod({"runAsUser": 1000, "fsGroup": 3000})
    ident = image_config.identity(spec, container, img, "p_ns(uid)")
    assert ident is not None and ident.groups == [1000, 2000, 3000]  # /etc/group, fsGroup
    spec, container = pod({"runAsUser": 1234})
    ident = image_config.identity(spec, container, img, "p_ns(uid)")
    assert ident is not None and (ident.uid, ident.gid) == (1234, 0)  # not in the passwd
    assert image_config.home(img, 1000) == "/home/aksrun" and image_config.home(img, 7) == "/"


def test_run_as_non_root_is_checked_against_the_image_user(tmp_path: Path) -> None:
    spec, container = pod({"runAsNonRoot": True})
    with pytest.raises(ConfigError, match="image will run as root"):
        image_config.identity(spec, container, image(tmp_path, user=""), "p_ns(uid)")
    with pytest.raises(ConfigError, match=r"non-numeric user \(aksrun\)"):
        image_config.identity(spec, container, image(tmp_path, user="aksrun"), "p_ns(uid)")
    spec, container = pod({"runAsNonRoot": True}, {"runAsUser": 0})
    with pytest.raises(ConfigError, match="breaks non-root policy"):
        image_config.identity(spec, container, image(tmp_path), "p_ns(uid)")
    spec, container = pod({"runAsNonRoot": True})
    assert image_config.identity(spec, container, image(tmp_path), "p_ns(uid)") is not None


def test_a_named_user_is_looked_up_in_the_image(tmp_path: Path) -> None:
    spec, container = pod()
    ident = image_config.identity(spec, container, image(tmp_path, user="aksrun"), "k")
    assert ident is not None and (ident.uid, ident.gid) == (1000, 1000)
    with pytest.raises(ConfigError, match="unable to find user nobody2"):
        image_config.identity(spec, container, image(tmp_path, user="nobody2"), "k")
    assert image_config.identity(spec, container, image(tmp_path, user="root"), "k") is None


def test_references_split_as_the_registry_api_wants() -> None:
    from tests.support.images.distribution import Reference

    digest = "sha256:" + "a" * 64
    ref = Reference.parse(f"127.0.0.1:5000/aksrun-runner@{digest}")
    assert (ref.host, ref.repository, ref.reference) == ("127.0.0.1:5000", "aksrun-runner",
                                                         digest)
    ref = Reference.parse("127.0.0.1:5000/library/python:3.11-slim")
    assert (ref.host, ref.repository, ref.reference) == ("127.0.0.1:5000", "library/python",
                                                         "3.11-slim")
    assert Reference.parse("python").repository == "library/python"
    assert Reference.parse("python").reference == "latest"


def test_pull_times_are_printed_like_go_durations() -> None:
    from tests.support.node_agent.images import go_duration

    assert [go_duration(s) for s in (0.041, 1.2345, 60, 62.5)] == [
        "41ms", "1.234s", "1m0s", "1m2.5s"]


def test_an_unprepared_cache_is_said_with_the_fix(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.images.cache import ENV_VAR
    from tests.support.images.session import TestImages
    from tests.support.images.steps import ImageToolError

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty-cache"))
    with pytest.raises(ImageToolError) as err:
        TestImages(tmp_path / "work").start()
    text = str(err.value)
    assert "were not prepared" in text and "python -m tests.support.images prepare" in text
