"""`make cluster-up` / `make cluster-down`: the test cluster for a person at a terminal.

    python -m tests.support.k8s build          # build the control plane (cached)
    python -m tests.support.k8s up [--dir D]   # start it in the background, print exports
    python -m tests.support.k8s down [--dir D] # stop everything `up` started

`up` starts one detached supervisor (`serve`) that runs the Azure sandbox
(tests/support/azure_sandbox.py): the control plane and node agent (pods run in real images
pulled from a local registry) as the subscription's AKS cluster, the fake ARM with ACR Tasks
building by buildah, the ACR data-plane stand-in, Azurite behind Storage's RBAC, the fake
Entra ID, and Azure Workload Identity's webhook. It writes one file of exports per shell:
`admin.env.sh` (the subscription's Owner: `aksrun admin bootstrap`, `add-user`),
`alice.env.sh` and `bob.env.sh` (people to add: `aksrun init`, `doctor`, calls), and
`env.sh`, a namespace `aksrun-<you>` made directly, for `aksrun image build` and calls
without the admin steps. `down` signals that supervisor, which stops all it started. The test
fixtures use the same classes.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .build import REPO_ROOT, ControlPlaneBuildError, build
from .control_plane import ControlPlaneError

DEFAULT_DIR = REPO_ROOT / ".aksrun" / "cluster"
ENV_FILES = ("env.sh", "admin.env.sh", "alice.env.sh", "bob.env.sh")
UP_TIMEOUT = 300.0


def _user() -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", getpass.getuser().lower()).strip("-")
    return name or "dev"


def serve(directory: Path) -> int:
    """Run the sandbox in the foreground until SIGTERM/SIGINT; write the env files when
    ready (env.sh last)."""
    from tests.support.azure_sandbox import AzureSandbox
    from tests.support.azurite import AzuriteError
    from tests.support.images.steps import ImageToolError

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sandbox = None
    try:
        sandbox = AzureSandbox.start(directory, say=lambda text: print(text, flush=True),
                                     user=_user())
        sandbox.write_env_files()
        stop.wait()
    except (ControlPlaneBuildError, ControlPlaneError, ImageToolError, AzuriteError) as exc:
        (directory / "error.txt").write_text(str(exc))
        return 1
    finally:
        if sandbox is not None:
            sandbox.stop()
        for name in ENV_FILES:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
    return 0


def up(directory: Path) -> int:
    pid_file = directory / "serve.pid"
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        env = directory / "env.sh"
        print(f"aksrun: a test cluster already runs (pid {pid_file.read_text().strip()}); "
              "`make cluster-down` stops it.", file=sys.stderr)
        if env.exists():
            print(env.read_text(), end="")
        return 0
    try:
        build()  # in the foreground, so a first build shows its progress and errors
    except ControlPlaneBuildError as exc:
        print(f"aksrun: {exc}", file=sys.stderr)
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*ENV_FILES, "error.txt"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    log = directory / "serve.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.k8s", "serve", "--dir", str(directory)],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        if (directory / "env.sh").exists():
            print((directory / "env.sh").read_text(), end="")
            print(f"# eval \"$(cat {directory / 'env.sh'})\" to use it; "
                  "`make cluster-down` stops it.")
            print(f"# the Azure sandbox (README, Local sandbox): . {directory / 'admin.env.sh'}"
                  f" for the admin, . {directory / 'alice.env.sh'} for alice")
            return 0
        if process.poll() is not None:
            error = directory / "error.txt"
            reason = error.read_text() if error.exists() else f"see {log}"
            print(f"aksrun: the test cluster did not start: {reason}", file=sys.stderr)
            return 1
        time.sleep(0.3)
    print(f"aksrun: the test cluster was not ready after {UP_TIMEOUT:.0f} s; log: {log}",
          file=sys.stderr)
    _stop(process.pid)
    return 1


def down(directory: Path) -> int:
    pid_file = directory / "serve.pid"
    if not pid_file.exists() or not _alive(int(pid_file.read_text())):
        print("aksrun: no test cluster is running.", file=sys.stderr)
        pid_file.unlink(missing_ok=True)
        return 0
    pid = int(pid_file.read_text())
    _stop(pid)
    pid_file.unlink(missing_ok=True)
    print(f"aksrun: stopped the test cluster (pid {pid}) and everything it started.",
          file=sys.stderr)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a recycled pid is not ours
        return "tests.support.k8s" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return True


def _stop(pid: int, timeout: float = 30.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.k8s")
    parser.add_argument("command", choices=("build", "up", "down", "serve"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"state, kubeconfigs and logs (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    if args.command == "build":
        try:
            print(build())
        except ControlPlaneBuildError as exc:
            print(f"aksrun: {exc}", file=sys.stderr)
            return 1
        return 0
    return {"up": up, "down": down, "serve": serve}[args.command](directory)


if __name__ == "__main__":
    sys.exit(main())
