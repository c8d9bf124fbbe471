"""Azure Workload Identity's mutating admission webhook, as AKS runs it when workload identity
is on, registered with the REAL test API server.

    webhook = WorkloadIdentityWebhook(cluster, cert, key, tenant_id, authority_host).start()
    ...  # pods labelled azure.workload.identity/use=true now get the identity's token
    webhook.stop()

The API server calls it for every pod created with the label `azure.workload.identity/use:
"true"` (objectSelector, failurePolicy Fail, as the add-on registers it), and it mutates the
pod as the upstream webhook (Azure/azure-workload-identity, pkg/webhook) does:
- reads the pod's service account (404: the pod is refused with 400 `serviceaccounts "x" not
  found`);
- to each container not named in `azure.workload.identity/skip-containers`, adds
  AZURE_CLIENT_ID (the account's `azure.workload.identity/client-id` annotation),
  AZURE_TENANT_ID (its `.../tenant-id` annotation, else the cluster's tenant),
  AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST, each only when the container does not
  set it already and the value is not empty, and mounts the token volume read-only at
  /var/run/secrets/azure/tokens;
- adds the projected volume `azure-identity-token`: a service-account token for audience
  `api://AzureADTokenExchange`, valid 3600 s unless the pod's or account's
  `.../service-account-token-expiration` annotation says otherwise (3600-86400, else 400).
The node agent then asks the API server for that token (TokenRequest), which is what Entra's
federation (tests/support/fake_entra.py) checks against the identity's federated credential.

A stand-in because the upstream webhook is a controller-runtime program whose authority host
comes from a cloud name only; the mutation is what matters to aksrun and is modelled here.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .https_server import start_https

USE_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
EXPIRY_ANNOTATION = "azure.workload.identity/service-account-token-expiration"
SKIP_ANNOTATION = "azure.workload.identity/skip-containers"
VOLUME = "azure-identity-token"
TOKEN_DIR = "/var/run/secrets/azure/tokens"
TOKEN_FILE = "azure-identity-token"
AUDIENCE = "api://AzureADTokenExchange"
DEFAULT_EXPIRY, MIN_EXPIRY, MAX_EXPIRY = 3600, 3600, 86400
CONFIGURATION = "azure-wi-webhook-mutating-webhook-configuration"
WEBHOOK = "mutation.azure-workload-identity.io"
PATH = "/mutate-v1-pod"


class Refused(Exception):
    """admission.Errored(code, err): the pod is not created, the API server says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class WorkloadIdentityWebhook:
    """`read_service_account(namespace, name)` returns the account as a dict or None; by
    default, through `cluster`'s admin client."""

    def __init__(self, cluster: Any, cert_file: Path, key_file: Path, tenant_id: str,
                 authority_host: str,
                 read_service_account: Callable[[str, str], dict | None] | None = None) -> None:
        self.cluster = cluster
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.tenant_id = tenant_id
        self.authority_host = authority_host.rstrip("/") + "/"
        self.read_service_account = read_service_account or self._read_service_account
        self.mutated: list[tuple[str, str]] = []  # (namespace, pod name or generateName)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def start(self) -> WorkloadIdentityWebhook:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                review = json.loads(self.rfile.read(length) or b"{}")
                body = json.dumps(owner.review(review)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server, _ = start_https(Handler, self.cert_file, self.key_file,
                                      "workload-identity-webhook")
        try:
            self._register()
        except BaseException:
            self._stop_server()
            raise
        return self

    def stop(self) -> None:
        """Unregister first: with failurePolicy Fail, a registered webhook that no longer
        answers refuses every labelled pod."""
        from kubernetes import client

        with contextlib.suppress(client.ApiException):
            client.AdmissionregistrationV1Api(self.cluster.admin_client()) \
                .delete_mutating_webhook_configuration(CONFIGURATION)
        self._stop_server()

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _register(self) -> None:
        from kubernetes import client

        api = client.AdmissionregistrationV1Api(self.cluster.admin_client())
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": CONFIGURATION},
            "webhooks": [{
                "name": WEBHOOK,
                "admissionReviewVersions": ["v1", "v1beta1"],
                "clientConfig": {"url": self.url, "caBundle": base64.b64encode(
                    self.cert_file.read_bytes()).decode()},
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "objectSelector": {"matchLabels": {USE_LABEL: "true"}},
                "reinvocationPolicy": "IfNeeded",
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["pods"]}],
                "sideEffects": "None",
                "timeoutSeconds": 10,
            }],
        }
        try:
            api.create_mutating_webhook_configuration(body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            api.replace_mutating_webhook_configuration(CONFIGURATION, body)

    def _read_service_account(self, namespace: str, name: str) -> dict | None:
        from kubernetes import client

        api = client.CoreV1Api(self.cluster.admin_client())
        try:
            account = api.read_namespaced_service_account(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {"metadata": {"annotations": dict(account.metadata.annotations or {})}}

    # ---- the admission review ---------------------------------------------------------------

    def review(self, review: dict) -> dict:
        request = review.get("request") or {}
        answer: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
        try:
            patch = self.mutate(request)
        except Refused as exc:
            answer.update(allowed=False, status={"code": exc.code, "message": str(exc)})
        else:
            if patch:
                answer.update(patchType="JSONPatch",
                              patch=base64.b64encode(json.dumps(patch).encode()).decode())
        return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                "kind": "AdmissionReview", "response": answer}

    def mutate(self, request: dict) -> list[dict]:
        pod = request.get("object") or {}
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        namespace = request.get("namespace") or meta.get("namespace") or "default"
        name = spec.get("serviceAccountName") or "default"
        account = self.read_service_account(namespace, name)
        if account is None:
            raise Refused(400, f'serviceaccounts "{name}" not found')
        annotations = (account.get("metadata") or {}).get("annotations") or {}
        pod_annotations = meta.get("annotations") or {}
        expiry = _expiry(pod_annotations.get(EXPIRY_ANNOTATION)
                         or annotations.get(EXPIRY_ANNOTATION))
        env = {
            "AZURE_CLIENT_ID": annotations.get(CLIENT_ID_ANNOTATION, ""),
            "AZURE_TENANT_ID": annotations.get(TENANT_ID_ANNOTATION, self.tenant_id),
            "AZURE_FEDERATED_TOKEN_FILE": f"{TOKEN_DIR}/{TOKEN_FILE}",
            "AZURE_AUTHORITY_HOST": self.authority_host,
        }
        skip = {s.strip() for s in (pod_annotations.get(SKIP_ANNOTATION) or "").split(";")
                if s.strip()}
        patch: list[dict] = []
        for field in ("initContainers", "containers"):
            if spec.get(field):
                containers = [c if c.get("name") in skip else _mutated(c, env)
                              for c in spec[field]]
                patch.append({"op": "replace", "path": f"/spec/{field}", "value": containers})
        volume = {"name": VOLUME, "projected": {"sources": [{"serviceAccountToken": {
            "path": TOKEN_FILE, "expirationSeconds": expiry, "audience": AUDIENCE}}]}}
        volumes = [v for v in spec.get("volumes") or [] if v.get("name") != VOLUME] + [volume]
        patch.append({"op": "replace" if "volumes" in spec else "add", "path": "/spec/volumes",
                      "value": volumes})
        self.mutated.append((namespace, meta.get("name") or meta.get("generateName") or ""))
        return patch


def _expiry(value: str | None) -> int:
    if not value:
        return DEFAULT_EXPIRY
    try:
        seconds = int(value)
    except ValueError:
        raise Refused(400, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    if not MIN_EXPIRY <= seconds <= MAX_EXPIRY:
        raise Refused(400, f"token expiration {seconds} not valid. Expected value to be "
                           f"between {MIN_EXPIRY} and {MAX_EXPIRY}")
    return seconds


def _mutated(container: dict, env: dict[str, str]) -> dict:
    container = dict(container)
    present = {e.get("name") for e in container.get("env") or []}
    container["env"] = list(container.get("env") or []) + [
        {"name": k, "value": v} for k, v in env.items() if k not in present and v]
    mount = {"name": VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") != VOLUME]
    container["volumeMounts"] = [*mounts, mount]
    return container
