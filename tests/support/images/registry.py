"""The test's container registry: Debian's `docker-registry` (the CNCF distribution registry
v2, what ACR speaks) on 127.0.0.1 with TLS, so builds pull their base image from a registry
and pods are pulled from one, as on AKS.

    registry = start_registry(storage_dir)      # storage survives: images stay cached
    registry.login_server                        # "127.0.0.1:PORT"
    registry.client().resolve("aksrun-runner", "py3.11-...")
    registry.stop()
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..processes import terminate_group as _terminate
from .distribution import RegistryClient
from .steps import ImageToolError

HOST = "127.0.0.1"
BINARY = "docker-registry"
FIX = "install Debian's registry (`apt-get install docker-registry`)"


@dataclass
class Registry:
    """A running registry and how to reach it."""

    process: subprocess.Popen
    port: int
    storage: Path
    cert_file: Path
    key_file: Path
    log_path: Path
    _owned: list[Path] = field(default_factory=list, repr=False)

    @property
    def login_server(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.login_server}"

    @property
    def cert_dir(self) -> Path:
        """A directory with the CA as `ca.crt`: what buildah's `--cert-dir` expects."""
        folder = self.cert_file.parent / "cert-dir"
        folder.mkdir(exist_ok=True)
        target = folder / "ca.crt"
        if not target.exists():
            shutil.copyfile(self.cert_file, target)
        return folder

    def client(self) -> RegistryClient:
        return RegistryClient(self.login_server, self.cert_file)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        _terminate(self.process)
        for path in self._owned:
            shutil.rmtree(path, ignore_errors=True)
        self._owned.clear()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _config(storage: Path, port: int, cert: Path, key: Path) -> str:
    return f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: {HOST}:{port}
  tls:
    certificate: {cert}
    key: {key}
  headers:
    X-Content-Type-Options: [nosniff]
"""


def start_registry(storage: str | os.PathLike[str], *, cert: Path | None = None,
                   key: Path | None = None, workdir: Path | None = None,
                   timeout: float = 20.0) -> Registry:
    """Start the registry on a free loopback port with its blobs in `storage` (kept after
    stop, so a second session finds its images), and wait until `/v2/` answers."""
    if shutil.which(BINARY) is None:
        raise ImageToolError(f"step 'start registry': {BINARY} is not installed. Fix: {FIX}.")
    owned: list[Path] = []
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="registry-"))
        owned.append(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    storage = Path(storage)
    storage.mkdir(parents=True, exist_ok=True)
    if cert is None or key is None:
        from tests.support.azurite import make_self_signed_cert

        cert, key = make_self_signed_cert(workdir / "tls")
    last = ""
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = _free_port()
        config = workdir / f"config-{port}.yml"
        config.write_text(_config(storage, port, Path(cert), Path(key)))
        log_path = workdir / f"registry-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([BINARY, "serve", str(config)], stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=workdir)
        atexit.register(_terminate, process)
        registry = Registry(process, port, storage, Path(cert), Path(key), log_path, owned)
        if _wait_ready(registry, timeout):
            return registry
        last = registry.log_tail() or f"exit code {process.poll()}"
        _terminate(process)
        if "address already in use" not in last:
            break
    for path in owned:
        shutil.rmtree(path, ignore_errors=True)
    raise ImageToolError(f"step 'start registry': {BINARY} did not answer on {HOST} within "
                         f"{timeout:.0f} s: {last.strip()[-2000:]}. Fix: {FIX}; check the log.")


def _wait_ready(registry: Registry, timeout: float) -> bool:
    client = RegistryClient(registry.login_server, registry.cert_file, timeout=2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not registry.alive():
            return False
        if client.ping():
            return True
        time.sleep(0.05)
    return False


