"""`make cluster-up` / `make cluster-down`: the test cluster for a person at a terminal.

    python -m tests.support.k8s build          # build the control plane (cached)
    python -m tests.support.k8s up [--dir D]   # start it in the background, print exports
    python -m tests.support.k8s down [--dir D] # stop everything `up` started

`up` starts one detached supervisor (`serve`) that runs the control plane, the node agent
(pods run in real images pulled from a local registry), Azurite, and the image-building path
of a subscription: the fake ARM with ACR Tasks building by buildah, the ACR data-plane
stand-in, the fake Entra ID. It provisions the namespace `aksrun-<you>` for a non-admin user
holding only aksrun's Role and writes `env.sh` with the variables that point aksrun at all of
it, so `aksrun image build` and a call with `requirements=` run by hand as they would on
Azure. `down` signals that supervisor, which stops all it started. The test fixtures use the
same classes.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .build import REPO_ROOT, ControlPlaneBuildError, build
from .control_plane import ControlPlaneError

DEFAULT_DIR = REPO_ROOT / ".aksrun" / "cluster"
UP_TIMEOUT = 300.0


def _user() -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", getpass.getuser().lower()).strip("-")
    return name or "dev"


def serve(directory: Path) -> int:
    """Run the cluster in the foreground until SIGTERM/SIGINT; write env.sh when ready."""
    from tests.support.acr_stack import AcrStack
    from tests.support.azurite import make_self_signed_cert, start_azurite, write_ca_bundle
    from tests.support.fake_entra import FakeEntra
    from tests.support.images.session import TestImages
    from tests.support.images.steps import ImageToolError

    from .cluster import TestCluster

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    user = _user()
    namespace = f"aksrun-{user}"
    parts: list = []  # stopped in reverse order
    try:
        images = TestImages(directory / "images").start(
            say=lambda text: print(text, flush=True))
        parts.append(images)
        cluster = TestCluster(directory / "state", registries=images.registry_clients(),
                              image_cache=images.layer_cache)
        parts.append(cluster)
        cluster.start()
        azurite = start_azurite(directory / "azurite")
        parts.append(azurite)
        cert, key = make_self_signed_cert(directory / "tls")
        ca_bundle = write_ca_bundle(cert, directory / "ca-bundle.pem")
        entra = FakeEntra(cert, key).start()
        parts.append(entra)
        token = directory / "federated-token"
        token.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJkZXZlbG9wZXIifQ.")
        stack = AcrStack.start(images, cert, key, entra, azurite, directory / "acr")
        parts.append(stack)
        cluster.agent.image_store.registries[stack.front.login_server] = stack.node_registry()
        person = cluster.add_user_namespace(namespace, user, directory / "user.kubeconfig")
        exports = {
            "AKSRUN_BACKEND": "kubernetes",
            "KUBECONFIG": str(person.kubeconfig),
            "AKSRUN_NAMESPACE": namespace,
            "AKSRUN_STORE": f"az://{namespace}/aksrun",
            "AKSRUN_STORAGE_CONNECTION_STRING": azurite.connection_string,
            # DefaultAzureCredential's workload-identity path, against the fake Entra ID
            **entra.workload_identity_env(token, ca_bundle),
            "SSL_CERT_FILE": str(ca_bundle),
            **stack.env,
        }
        lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
        lines.insert(0, f"# aksrun test cluster: kube-apiserver {cluster.version} at "
                     f"{cluster.url}; admin kubeconfig: {cluster.admin_kubeconfig}; fake ARM "
                     f"at {stack.arm.endpoint}; registry {stack.front.login_server} "
                     f"(ACR data plane) over {images.login_server}")
        (directory / "env.sh").write_text("\n".join(lines) + "\n")
        stop.wait()
    except (ControlPlaneBuildError, ControlPlaneError, ImageToolError) as exc:
        (directory / "error.txt").write_text(str(exc))
        return 1
    finally:
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                part.stop()
        with contextlib.suppress(FileNotFoundError):
            (directory / "env.sh").unlink()
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
    for name in ("env.sh", "error.txt"):
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
