"""The control-plane build of the cluster tier: its pin is generated, and every way it can fail
says which step failed, where the log is and what to do (never a silent fallback)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.k8s import pin
from tests.support.k8s import build

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

require (
\tgo.etcd.io/etcd/server/v3 v3.6.8 // indirect
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
\tk8s.io/streaming => ./staging/src/k8s.io/streaming
)
"""


def test_pin_replaces_every_staging_module_at_the_matching_version():
    text = pin.render("v1.36.3", UPSTREAM)
    assert "\tk8s.io/kubernetes v1.36.3" in text and "go.etcd.io/etcd/server/v3 v3.6.8" in text
    replaced = [line.split() for line in text.splitlines() if "=>" in line]
    assert replaced == [[m, "=>", m, "v0.36.3"]
                        for m in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/streaming")]
    assert "go 1.26.0" in text


def test_pin_refuses_a_version_that_is_not_a_release():
    with pytest.raises(SystemExit, match="not a Kubernetes release"):
        pin.render("1.36", UPSTREAM)


def test_committed_go_mod_is_what_pin_generates():
    """No hand-typed replace lines: the committed go.mod has exactly the replace block pin.py
    derives from the pinned release's own go.mod (read from the module cache the build used)."""
    version = build.kubernetes_version()
    out = subprocess.run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                         cwd=build.MODULE_DIR, capture_output=True, text=True,
                         env={**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"})
    assert out.returncode == 0, f"pinned release not in the module cache: {out.stderr}"
    upstream = Path(json.loads(out.stdout)["GoMod"]).read_text()

    def replaces(text: str) -> list[str]:
        return sorted(line.strip() for line in text.splitlines() if "=>" in line)

    committed = (build.MODULE_DIR / "go.mod").read_text()
    assert replaces(committed) == replaces(pin.render(version, upstream))
    assert len(replaces(committed)) > 25


def test_missing_go_names_the_step_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("AKSRUN_K8S_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no go here
    with pytest.raises(build.ControlPlaneBuildError, match=r"step 'find Go'.*install Go >= 1\.26"):
        build.build(quiet=True)


def test_a_failed_build_names_the_step_the_log_and_the_fix(monkeypatch, tmp_path):
    module = tmp_path / "module"
    module.mkdir()
    (module / "go.mod").write_text("module broken\n\ngo 1.26.0\n\n"
                                   "require k8s.io/kubernetes v1.36.3\n")
    (module / "go.sum").write_text("")
    (module / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    monkeypatch.setattr(build, "MODULE_DIR", module)
    monkeypatch.setenv("AKSRUN_K8S_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(build.ControlPlaneBuildError) as info:
        build.build(quiet=True)
    text = str(info.value)
    assert "step 'go build' of Kubernetes v1.36.3 failed" in text
    log = Path(text.split("Log: ")[1].split(".log")[0] + ".log")
    assert log.is_file() and log.parent.parent == tmp_path / "cache"
    assert "Fix:" in text
    assert build.binary_path() is None  # nothing half-written is taken for a build


def test_the_cache_is_keyed_by_the_pin_and_the_module_files(monkeypatch, tmp_path):
    monkeypatch.setenv("AKSRUN_K8S_CACHE", str(tmp_path))
    first = build.build_dir()
    assert first.parent == tmp_path and first.name.startswith(build.kubernetes_version() + "-")
    module = tmp_path / "module"
    module.mkdir()
    for name in ("go.mod", "go.sum", "main.go"):
        (module / name).write_bytes((build.MODULE_DIR / name).read_bytes())
    monkeypatch.setattr(build, "MODULE_DIR", module)
    assert build.build_dir() == first
    (module / "main.go").write_text((module / "main.go").read_text() + "\n// changed\n")
    assert build.build_dir() != first
