"""Start and stop Azurite (Microsoft's blob emulator) for a test session or a benchmark.

The binary comes from the project's own `package.json` (`npm ci` installs
`node_modules/.bin/azurite-blob`, pinned to 3.35.0: 3.36+ need node >= 21). Two modes:

- plain HTTP with the well-known `devstoreaccount1` key (connection-string mode), enough for
  most store tests;
- HTTPS + `--oauth basic` (a self-signed certificate made with `openssl`), so bearer tokens
  from `DefaultAzureCredential` are accepted — Azurite decodes the JWT without checking its
  signature, which lets `tests/support/fake_entra.py` stand in for Entra ID offline.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .processes import terminate_group as _terminate

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
# The emulator's published development key (not a secret: it is in Microsoft's docs).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
FIX = "run `make test`, which runs `npm ci` (or run `npm ci` in the repository root)"


class AzuriteError(RuntimeError):
    """Azurite is not installed or did not start; the message says why and how to fix it."""


@dataclass
class Azurite:
    """A running Azurite blob service: where it listens and how to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    location: Path
    log_path: Path
    https: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    _owned_dirs: list[Path] = field(default_factory=list, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def account(self) -> str:
        return ACCOUNT

    @property
    def account_key(self) -> str:
        return ACCOUNT_KEY

    @property
    def account_url(self) -> str:
        """The blob endpoint, path-style as Azurite serves it."""
        return f"{self.scheme}://{HOST}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.account_url};"
        )

    def connection_string_with_key(self, key: str) -> str:
        """The same endpoint with another account key (to provoke authentication failures)."""
        return self.connection_string.replace(ACCOUNT_KEY, key)

    def blob_url_for(self, container: str) -> str:
        return f"{self.account_url}/{container}"

    def service_client(self, **kwargs: object):  # -> azure.storage.blob.BlobServiceClient
        """A raw SDK client with the account key (test set-up and inspection, not the store)."""
        from azure.storage.blob import BlobServiceClient

        if self.https and self.cert_file is not None:
            kwargs.setdefault("connection_verify", str(self.cert_file))
        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)

    def env(self) -> dict[str, str]:
        """Variables that point aksrun (and its subprocesses) at this emulator."""
        return {"AKSRUN_STORAGE_CONNECTION_STRING": self.connection_string}

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the emulator (its own process group only) and remove its files."""
        _terminate(self.process)
        for folder in self._owned_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._owned_dirs.clear()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_binary(repo_root: Path = REPO_ROOT) -> Path:
    """`node_modules/.bin/azurite-blob` of this repository, or AzuriteError with the fix."""
    binary = repo_root / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise AzuriteError(f"Azurite is not installed ({binary} is missing); {FIX}.")
    if shutil.which("node") is None:
        raise AzuriteError(f"Azurite needs node (>= 18, < 21) on PATH; install it, then {FIX}.")
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def make_self_signed_cert(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1/localhost (Azurite's OAuth mode needs HTTPS)."""
    if shutil.which("openssl") is None:
        raise AzuriteError("openssl is needed to make Azurite's HTTPS certificate; install it.")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    result = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(key), "-out", str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AzuriteError(f"openssl could not make a certificate: {result.stderr.strip()}")
    return cert, key


def start_azurite(
    location: str | os.PathLike[str] | None = None,
    *,
    oauth: bool = False,
    in_memory: bool = False,
    access_log: bool = False,
    timeout: float = START_TIMEOUT,
    repo_root: Path = REPO_ROOT,
) -> Azurite:
    """Start `azurite-blob` on a free loopback port and wait until it accepts connections.

    `oauth=True` serves HTTPS with a fresh self-signed certificate and `--oauth basic`.
    `in_memory=True` keeps blobs in RAM (benchmarks: no disk in the measurement).
    `access_log=True` logs one line per request to `log_path` (benchmarks count them).
    """
    binary = find_binary(repo_root)
    owned: list[Path] = []
    if location is None:
        location = Path(tempfile.mkdtemp(prefix="azurite-"))
        owned.append(location)
    folder = Path(location)
    folder.mkdir(parents=True, exist_ok=True)
    cert = key = None
    if oauth:
        cert, key = make_self_signed_cert(folder / "tls")
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = free_port()
        log_path = folder / f"azurite-{port}.log"
        command = [
            str(binary), "--blobHost", HOST, "--blobPort", str(port),
            "--disableTelemetry", "--skipApiVersionCheck",
        ]
        if not access_log:
            command.append("--silent")
        # (Azurite refuses --location together with --inMemoryPersistence)
        command += ["--inMemoryPersistence"] if in_memory else ["--location", str(folder)]
        if oauth:
            command += ["--oauth", "basic", "--cert", str(cert), "--key", str(key)]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=folder,
            )
        server = Azurite(process, port, folder, log_path, oauth, cert, key, owned)
        atexit.register(_terminate, process)
        if _wait_listening(server, timeout):
            return server
        last_error = server.log_tail() or f"exit code {process.poll()}"
        _terminate(process)
        if "EADDRINUSE" not in last_error:
            break
    for path in owned:
        shutil.rmtree(path, ignore_errors=True)
    raise AzuriteError(
        f"Azurite ({binary}) did not accept connections on {HOST} within {timeout:.0f} s: "
        f"{last_error.strip()[:2000]}"
    )


def _wait_listening(server: Azurite, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), 0.5):
            return True
        time.sleep(0.05)
    return False




def system_ca_bundle() -> Path | None:
    """The CA bundle requests would use now (REQUESTS_CA_BUNDLE, certifi or OpenSSL's)."""
    for candidate in (
        os.environ.get("REQUESTS_CA_BUNDLE"),
        _certifi_where(),
        __import__("ssl").get_default_verify_paths().cafile,
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def write_ca_bundle(cert_file: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """System roots plus our self-signed cert, for REQUESTS_CA_BUNDLE (SSL_CERT_FILE is not
    read by requests)."""
    system = system_ca_bundle()
    text = system.read_text() if system else ""
    if text and not text.endswith("\n"):
        text += "\n"
    out = Path(target)
    out.write_text(text + Path(cert_file).read_text())
    return out


def _certifi_where() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


class RestartableAzurite:
    """An Azurite on a fixed port and data folder, so it can be stopped and started again
    as the same endpoint with the same blobs (an outage)."""

    def __init__(self, location: Path) -> None:
        self.binary, self.location, self.port = find_binary(), location, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey="
                f"{ACCOUNT_KEY};BlobEndpoint=http://{HOST}:{self.port}/{ACCOUNT};")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.binary), "--blobHost", HOST, "--blobPort", str(self.port),
             "--disableTelemetry", "--skipApiVersionCheck", "--silent",
             "--location", str(self.location)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.location,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Azurite did not come back on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # it saves its blob index on SIGTERM
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
