"""Start a throw-away CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1.

It is the storage behind `FakeAcrFront`: filesystem storage in a folder we own (the front
reads that folder for what distribution's API cannot tell: untagged manifests, tag times,
and tag deletion, which distribution 2.8 does not offer), deletes enabled, no auth (the
front does auth, as ACR does), listening only on loopback.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..processes import terminate_group as _terminate

HOST = "127.0.0.1"
FIX = "install Debian's registry: `apt-get install docker-registry`"
CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {host}:{port}
"""
TLS = """\
  tls:
    certificate: {cert}
    key: {key}
"""


class RegistryUnavailable(RuntimeError):
    """No registry binary, or it did not start; the message says why and how to fix it."""


@dataclass
class DistributionRegistry:
    """A running registry process: its URL and the storage folder the front may read."""

    process: subprocess.Popen[bytes]
    port: int
    root: Path
    log_path: Path
    ca_file: Path | None = None  # set when it serves TLS: the certificate to trust

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://{HOST}:{self.port}"

    @property
    def repositories_dir(self) -> Path:
        """Where distribution keeps each repository's links (tags, revisions, layers)."""
        return self.root / "docker" / "registry" / "v2" / "repositories"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""

    def stop(self) -> None:
        _terminate(self.process)

    def __enter__(self) -> DistributionRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_binary() -> Path | None:
    """`docker-registry` (Debian) or `registry` (upstream), whichever is on PATH."""
    for name in ("docker-registry", "registry"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def start_registry(
    directory: str | os.PathLike[str],
    timeout: float = 15.0,
    *,
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
) -> DistributionRegistry:
    """Start a registry storing under `directory` and wait until `/v2/` answers.

    Plain HTTP on loopback by default; with `cert_file`/`key_file` it serves TLS, like the
    image tests' registry (tests/support/images/registry.py), so the front's https path
    is exercised too.
    """
    binary = find_binary()
    if binary is None:
        raise RegistryUnavailable(f"no docker-registry binary on PATH ({FIX})")
    folder = Path(directory)
    root = folder / "storage"
    root.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = _free_port()
        config = folder / f"config-{port}.yml"
        text = CONFIG.format(root=root, host=HOST, port=port)
        if cert_file and key_file:
            text += TLS.format(cert=cert_file, key=key_file)
        config.write_text(text)
        log_path = folder / f"registry-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(binary), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=folder,
            )
        atexit.register(_terminate, process)
        registry = DistributionRegistry(
            process, port, root, log_path, Path(cert_file) if cert_file and key_file else None
        )
        if _wait_ready(registry, timeout):
            return registry
        last_error = registry.log_tail() or f"exit code {process.poll()}"
        _terminate(process)
        if "address already in use" not in last_error:
            break
    raise RegistryUnavailable(
        f"{binary} did not answer on {HOST} within {timeout:.0f} s: {last_error.strip()[:2000]}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_ready(registry: DistributionRegistry, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not registry.alive():
            return False
        connection = _connection(registry.url, registry.ca_file, timeout=1)
        try:
            connection.request("GET", "/v2/")
            if connection.getresponse().status == 200:
                return True
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.02)
    return False


def _connection(
    url: str, ca_file: str | os.PathLike[str] | None, timeout: float
) -> http.client.HTTPConnection:
    """http.client on loopback (no proxy settings apply), TLS for https URLs."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


