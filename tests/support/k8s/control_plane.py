"""The real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler from the binary `build.py` makes, each a child process with its own log.

Start-up follows kubernetes' hack/local-up-cluster.sh and controller-runtime's envtest: fresh
certificates and service-account keys per cluster (pki.py), RBAC authorization with
client-certificate and static-token authentication, the default admission plugins
(ServiceAccount included: a pod whose service account is missing is refused, and the Job
controller reports it as FailedCreate), the controllers aksrun's jobs meet (job,
ttl-after-finished, pod GC, garbage collector, namespace, service-account and token,
resource quota, root CA publisher) with per-controller service-account credentials, and the
real scheduler. The node-lifecycle controller stays off, so Nodes need no heartbeats.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .build import build, kubernetes_version
from .pki import CertPair, ClusterPKI

HOST = "127.0.0.1"
SERVICE_CIDR = "10.0.0.0/16"  # AKS's default service CIDR
CONTROLLERS = ",".join((
    "job-controller", "ttl-after-finished-controller", "pod-garbage-collector-controller",
    "garbage-collector-controller", "namespace-controller", "serviceaccount-controller",
    "serviceaccount-token-controller", "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
))
ADMIN_USER = "aksrun-admin"
# Requests of people (not of the controllers) are audited: the tests and the control-plane
# benchmark count aksrun's own API requests from the API server's audit log.
AUDITED_GROUP = "aksrun-users"
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["{AUDITED_GROUP}"]
- level: None
"""
START_TIMEOUT = 90.0


class ControlPlaneError(RuntimeError):
    """A component did not start; the message names it, its log and the fix."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class ControlPlane:
    """One running control plane; `root` holds its certificates, data, kubeconfigs and logs."""

    root: Path
    binary: Path = field(default_factory=build)
    components: list[Component] = field(default_factory=list)
    port: int = 0
    etcd_port: int = 0
    tokens: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    version: str = ""

    # ------------------------------------------------------------------ start / stop
    def start(self) -> ControlPlane:
        """Start etcd, the API server, then the controller manager and scheduler; wait ready."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.pki = ClusterPKI(self.root / "pki")
        self.port = self.port or free_port()
        self.etcd_port = self.etcd_port or free_port()
        try:
            self._start_etcd()
            self._start_apiserver()
            self.admin_kubeconfig = self.write_kubeconfig(
                self.root / "admin.kubeconfig", self.pki.client(ADMIN_USER, ("system:masters",)))
            self._wait_ready()
            self._start("kube-controller-manager", [
                f"--kubeconfig={self._component_kubeconfig('system:kube-controller-manager')}",
                f"--authentication-kubeconfig={self.admin_kubeconfig}",
                f"--authorization-kubeconfig={self.admin_kubeconfig}",
                f"--controllers={CONTROLLERS}", "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki.sa_key}",
                f"--root-ca-file={self.pki.ca_cert}", f"--bind-address={HOST}",
                f"--secure-port={free_port()}", f"--cert-dir={self.root / 'kcm-certs'}",
                "--concurrent-job-syncs=10", "--v=1",
            ])
            self._start("kube-scheduler", [
                f"--kubeconfig={self._component_kubeconfig('system:kube-scheduler')}",
                f"--authentication-kubeconfig={self.admin_kubeconfig}",
                f"--authorization-kubeconfig={self.admin_kubeconfig}",
                "--leader-elect=false", f"--bind-address={HOST}",
                f"--secure-port={free_port()}", f"--cert-dir={self.root / 'sched-certs'}",
                "--v=1",
            ])
            self._wait_controllers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every component, last started first (SIGTERM, then SIGKILL after 10 s)."""
        for comp in reversed(self.components):
            if comp.process.poll() is None:
                comp.process.send_signal(signal.SIGTERM)
        for comp in reversed(self.components):
            try:
                comp.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                comp.process.kill()
                comp.process.wait()
        self.components.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def alive(self) -> list[str]:
        """Names of components that have exited (empty when all run)."""
        return [c.name for c in self.components if c.process.poll() is not None]

    # ------------------------------------------------------------------ components
    def _start(self, name: str, args: list[str]) -> Component:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [str(self.binary), name, *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)})
        comp = Component(name, process, log)
        self.components.append(comp)
        return comp

    def _start_etcd(self) -> None:
        peer = free_port()
        url = f"http://{HOST}:{self.etcd_port}"
        self._start("etcd", [
            f"--data-dir={self.root / 'etcd'}", f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}", f"--listen-peer-urls=http://{HOST}:{peer}",
            f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=default=http://{HOST}:{peer}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        self._wait_port("etcd", self.etcd_port)

    def _start_apiserver(self) -> None:
        policy = self.root / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.audit_log = self.root / "logs" / "audit.log"
        serving = self.pki.serving("kube-apiserver", [
            "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"], [HOST, "10.0.0.1"])
        token_file = self.root / "tokens.csv"
        token_file.write_text("".join(
            f'{token},{user},{user},"{",".join(groups)}"\n'
            for token, (user, groups) in self.tokens.items()) or "\n")
        self._start("kube-apiserver", [
            f"--etcd-servers=http://{HOST}:{self.etcd_port}",
            f"--bind-address={HOST}", f"--advertise-address={HOST}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.pki.ca_cert}",
            f"--token-auth-file={token_file}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={self.pki.sa_pub}",
            f"--service-account-signing-key-file={self.pki.sa_key}",
            "--authorization-mode=RBAC",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true", "--profiling=false",
            f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=0", "--audit-log-mode=blocking",
            "--shutdown-delay-duration=0s", "--v=1",
        ])

    def restart_apiserver(self) -> None:
        """Kill and start kube-apiserver on the same port and etcd, as when a control-plane
        instance dies and is replaced: clients lose their connections, and its watch cache
        starts afresh, so a watch resuming from an older resourceVersion gets 410 Gone.
        (Killed, not stopped: a graceful stop waits for open watches to drain.)"""
        old = next(c for c in self.components if c.name == "kube-apiserver")
        old.process.kill()
        old.process.wait(timeout=30)
        self.components.remove(old)
        new = self._start("kube-apiserver", old.process.args[2:])  # type: ignore[index]
        self.components.remove(new)
        self.components.insert(1, new)  # stopped before etcd, after the controllers
        self._wait_ready()

    def audit_events(self, namespace: str | None = None) -> list[dict]:
        """The audited requests of people (group aksrun-users), optionally in one namespace:
        one dict per request (verb, objectRef, user, responseStatus, ...)."""
        events: dict[str, dict] = {}
        with contextlib.suppress(FileNotFoundError), open(self.audit_log) as log:
            for line in log:
                event = json.loads(line)
                if namespace and (event.get("objectRef") or {}).get("namespace") != namespace:
                    continue
                events.setdefault(event["auditID"], event)  # a watch logs two stages
        return list(events.values())

    def _component_kubeconfig(self, user: str) -> Path:
        return self.write_kubeconfig(self.root / f"{user.split(':')[-1]}.kubeconfig",
                                     self.pki.client(user))

    # ------------------------------------------------------------------ kubeconfigs
    def write_kubeconfig(self, path: Path, credentials: CertPair | str,
                         namespace: str | None = None) -> Path:
        """A kubeconfig for this cluster: a client certificate, or a bearer token."""
        if isinstance(credentials, CertPair):
            user = {"client-certificate": str(credentials.cert),
                    "client-key": str(credentials.key)}
        else:
            user = {"token": credentials}
        context: dict[str, str] = {"cluster": "aksrun-test", "user": "user"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "aksrun-test", "cluster": {
                "server": self.url, "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "aksrun-test", "context": context}],
            "current-context": "aksrun-test",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def user_kubeconfig(self, path: Path, user: str, groups: tuple[str, ...] = (),
                        namespace: str | None = None) -> Path:
        """A kubeconfig signing in as `user` (a client certificate the CA just issued)."""
        return self.write_kubeconfig(path, self.pki.client(user, groups), namespace)

    # ------------------------------------------------------------------ readiness
    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        admin = self.root / "pki" / f"{ADMIN_USER}.crt"
        context.load_cert_chain(str(admin), str(admin.with_suffix(".key")))
        return context

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        """GET `path` from the API server as the admin (e.g. /version, /metrics)."""
        with urllib.request.urlopen(self.url + path, timeout=timeout,
                                    context=self._ssl()) as response:
            return response.read()

    def _failed(self, name: str, what: str) -> ControlPlaneError:
        comp = next((c for c in self.components if c.name == name), None)
        tail = comp.tail() if comp else ""
        log = comp.log if comp else self.root / "logs"
        return ControlPlaneError(
            f"step 'start {name}': {what}. Log: {log}. Last lines:\n{tail}\nFix: free the "
            "port or stop a stale cluster (`make cluster-down`), and check the log above; "
            "`make test` never falls back to a fake cluster.")

    def _wait_port(self, name: str, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive(name)
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
                return
            time.sleep(0.1)
        raise self._failed(name, f"not listening on {HOST}:{port} after {START_TIMEOUT:.0f} s")

    def _check_alive(self, name: str) -> None:
        for comp in self.components:
            if comp.process.poll() is not None:
                raise self._failed(comp.name, f"exited with code {comp.process.returncode}"
                                   + ("" if comp.name == name else f" while starting {name}"))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_alive("kube-apiserver")
            try:
                if self.get("/readyz", timeout=2) == b"ok":
                    self.version = json.loads(self.get("/version"))["gitVersion"]
                    return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise self._failed("kube-apiserver", f"/readyz not ok after {START_TIMEOUT:.0f} s "
                           f"({last})")

    def _wait_controllers(self) -> None:
        """The serviceaccount controller has made `default` in `default`: controllers run."""
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.admin_kubeconfig)))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive("kube-controller-manager")
            with contextlib.suppress(client.ApiException):
                api.read_namespaced_service_account("default", "default")
                return
            time.sleep(0.2)
        raise self._failed("kube-controller-manager", "no `default` service account after "
                           f"{START_TIMEOUT:.0f} s (the serviceaccount controller is not running)")


def expected_version() -> str:
    return kubernetes_version()
