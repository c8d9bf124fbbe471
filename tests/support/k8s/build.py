"""Build the control plane of the cluster test tier from the pinned Go module, once.

`tests/k8s/` is a small Go module that requires `k8s.io/kubernetes` at one pinned release
(see its go.mod, written by tests/k8s/pin.py) and etcd's server, and links them into one
multi-call binary. It is built into a cache outside the repository, keyed by the module's
own files, so a later `make test` (or CI run on the same machine) reuses it and a new pin
rebuilds it. Concurrent builders wait for each other on a lock instead of building twice.

    python -m tests.support.k8s build      # prints the binary's path; builds if needed
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
MODULE_DIR = REPO_ROOT / "tests" / "k8s"
BINARY = "aksrun-k8s"
_MODULE_FILES = ("go.mod", "go.sum", "main.go")
_MIN_GO = (1, 26)


class ControlPlaneBuildError(RuntimeError):
    """The control plane could not be built; the message names the step, log and fix."""


def kubernetes_version() -> str:
    """The pinned `k8s.io/kubernetes` release, read from the module's go.mod."""
    go_mod = (MODULE_DIR / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", go_mod, re.M)
    if not match:
        raise ControlPlaneBuildError(
            f"{MODULE_DIR / 'go.mod'} does not require k8s.io/kubernetes: regenerate it with "
            "`python tests/k8s/pin.py v1.36.3`.")
    return match.group(1)


def cache_root() -> Path:
    """`AKSRUN_K8S_CACHE`, else ~/.cache/aksrun-k8s (XDG_CACHE_HOME respected)."""
    if os.environ.get("AKSRUN_K8S_CACHE"):
        return Path(os.environ["AKSRUN_K8S_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aksrun-k8s"


def build_dir() -> Path:
    """Where this pin's binary lives: version plus a digest of the module's own files."""
    digest = hashlib.sha256()
    for name in _MODULE_FILES:
        digest.update(name.encode() + b"\0" + (MODULE_DIR / name).read_bytes() + b"\0")
    return cache_root() / f"{kubernetes_version()}-{digest.hexdigest()[:12]}"


def binary_path() -> Path | None:
    """The built binary for the current pin, or None when it has not been built."""
    path = build_dir() / BINARY
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _check_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ControlPlaneBuildError(
            "step 'find Go': no `go` on PATH. The cluster test tier builds Kubernetes from its "
            "Go modules: install Go >= 1.26 (https://go.dev/dl) and run `make test` again.")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout
    found = re.match(r"go(\d+)\.(\d+)", out.strip())
    if not found or tuple(map(int, found.groups())) < _MIN_GO:
        raise ControlPlaneBuildError(
            f"step 'find Go': {go} is {out.strip() or 'unknown'}, Kubernetes "
            f"{kubernetes_version()} needs Go >= {'.'.join(map(str, _MIN_GO))}: install a "
            "newer Go and run `make test` again.")
    return go


def build(quiet: bool = False) -> Path:
    """The binary's path, building it first when this pin has not been built yet."""
    found = binary_path()
    if found is not None:
        return found
    target = build_dir()
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building this very pin
        found = binary_path()
        return found if found is not None else _build_locked(target, quiet)


def _build_locked(target: Path, quiet: bool) -> Path:
    go = _check_go()
    version = kubernetes_version()
    minor = version.split(".")[1]
    log_path = target / "build.log"
    say = (lambda *_: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"aksrun: building the Kubernetes {version} control plane (etcd, kube-apiserver, "
        f"kube-controller-manager, kube-scheduler) from Go modules, first time for this pin: "
        f"about 5-10 min on 2 cores; later runs reuse {target}. Log: {log_path}")
    ldflags = " ".join((
        "-s -w",
        f"-X k8s.io/component-base/version.gitVersion={version}",
        "-X k8s.io/component-base/version.gitMajor=1",
        f"-X k8s.io/component-base/version.gitMinor={minor}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
    ))
    partial = target / f"{BINARY}.partial"
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0",
           "GOFLAGS": " ".join(filter(None, (os.environ.get("GOFLAGS"), "-buildvcs=false")))}
    start = time.monotonic()
    with open(log_path, "w") as log:
        result = subprocess.run(
            [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), "."],
            cwd=MODULE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise ControlPlaneBuildError(
            f"step 'go build' of Kubernetes {version} failed (exit {result.returncode}) after "
            f"{elapsed:.0f} s. Log: {log_path}. Last lines:\n{tail}\nFix: check Go >= 1.26 and "
            "that the Go module proxy is reachable (`go env GOPROXY`), then run `make test` "
            "again; a changed pin is regenerated with `python tests/k8s/pin.py <version>`.")
    partial.replace(target / BINARY)
    (target / "build-stats.txt").write_text(
        f"version={version}\nseconds={elapsed:.0f}\npeak_rss_mib={peak_mib}\n")
    say(f"aksrun: built the control plane in {elapsed / 60:.1f} min "
        f"(peak memory of one build step {peak_mib} MiB): {target / BINARY}")
    return target / BINARY

