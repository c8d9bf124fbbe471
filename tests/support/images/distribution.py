"""A client of the registry HTTP API v2 (the OCI distribution spec): what the node agent
needs to pull an image the way containerd does (resolve a tag or digest to a manifest, fetch
its config and layers, digests verified) and what a test needs to ask whether a tag exists.

Only loopback registries: the connection is refused for any other host.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[2:]
LOOPBACK = ("127.", "localhost", "[::1]")


class RegistryError(Exception):
    """The registry could not be asked, or answered with an error (status, code, message)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotFound(RegistryError):
    """MANIFEST_UNKNOWN / NAME_UNKNOWN / BLOB_UNKNOWN: the registry does not have it."""


@dataclass
class Reference:
    """An image reference split the way the registry API wants it."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @classmethod
    def parse(cls, image: str) -> Reference:
        name, _, digest = image.partition("@")
        host, _, rest = name.partition("/")
        if not rest or not ("." in host or ":" in host or host == "localhost"):
            host, rest = "docker.io", name if "/" in name else f"library/{name}"
        tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, tag = rest.rsplit(":", 1)
        return cls(host, rest, tag, digest or None)


@dataclass
class Manifest:
    """A resolved manifest: the digest the reference names, and the image manifest itself
    (for an index, the linux/amd64 entry's)."""

    digest: str
    media_type: str
    body: dict
    index_digest: str | None = None
    layers: list[dict] = field(default_factory=list)

    @property
    def config(self) -> dict:
        return self.body["config"]

    @property
    def size(self) -> int:
        """Config plus compressed layers: what containerd reports as the image's size."""
        return int(self.config.get("size", 0)) + sum(int(x.get("size", 0)) for x in self.layers)


class RegistryClient:
    """The registry at `login_server` (https, trusting `ca_file`)."""

    def __init__(self, login_server: str, ca_file: Path | None = None,
                 timeout: float = 60.0, address: str | None = None) -> None:
        """`address`: where to connect when it isn't the login server (a node pulling what
        an ACR front names with the kubelet identity's access: straight from its storage)."""
        if not (address or login_server).startswith(LOOPBACK):
            raise RegistryError(f"{address or login_server} is not a loopback registry")
        self.login_server = login_server
        self.address = address or login_server
        self.ca_file = ca_file
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None
                 ) -> tuple[int, dict[str, str], bytes]:
        host, _, port = self.address.rpartition(":")
        conn = http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=self.timeout,
                                           context=self._context)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"{method} https://{self.login_server}{path}: {exc}") from exc
        finally:
            conn.close()

    def _check(self, method: str, path: str, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            return
        code, message = "", body.decode("utf-8", "replace").strip()
        try:
            errors = json.loads(body).get("errors") or []
            if errors:
                code, message = errors[0].get("code", ""), errors[0].get("message", message)
        except ValueError:
            pass
        kind = NotFound if status == 404 else RegistryError
        raise kind(f"{method} {path}: {status} {code}: {message}", status, code)

    def ping(self) -> bool:
        try:
            return self._request("GET", "/v2/")[0] == 200
        except RegistryError:
            return False

    def manifest(self, repository: str, reference: str) -> Manifest:
        """Resolve a tag or digest; NotFound when the registry lacks it."""
        top = self._manifest(repository, reference)
        if top.media_type in INDEX_TYPES:
            entries = top.body.get("manifests") or []
            pick = next((m for m in entries if (m.get("platform") or {}).get("os") == "linux"
                         and m["platform"].get("architecture") == "amd64"), None)
            if pick is None:
                raise NotFound(f"{repository}@{top.digest}: no linux/amd64 manifest", 404,
                               "MANIFEST_UNKNOWN")
            inner = self._manifest(repository, pick["digest"])
            inner.index_digest = top.digest
            inner.digest = top.digest
            return inner
        return top

    def _manifest(self, repository: str, reference: str) -> Manifest:
        path = f"/v2/{repository}/manifests/{reference}"
        status, headers, body = self._request("GET", path, {"Accept": ", ".join(MANIFEST_TYPES)})
        self._check("GET", path, status, body)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        named = headers.get("docker-content-digest")
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest {reference} of {repository} has digest {digest}")
        data = json.loads(body)
        media_type = data.get("mediaType") or headers.get("content-type", "")
        return Manifest(named or digest, media_type, data, layers=list(data.get("layers") or []))

    def exists(self, repository: str, reference: str) -> str | None:
        """The manifest digest if the registry has `repository:reference`, else None."""
        try:
            return self.manifest(repository, reference).digest
        except NotFound:
            return None

    def blob(self, repository: str, digest: str) -> bytes:
        path = f"/v2/{repository}/blobs/{digest}"
        status, _headers, body = self._request("GET", path)
        self._check("GET", path, status, body)
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"blob {digest} of {repository}: digest mismatch")
        return body

    def download(self, repository: str, digest: str, target: Path) -> None:
        """Stream a blob to `target`, verifying its digest on the way."""
        path = f"/v2/{repository}/blobs/{digest}"
        host, _, port = self.address.rpartition(":")
        conn = http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=self.timeout,
                                           context=self._context)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            if resp.status != 200:
                self._check("GET", path, resp.status, resp.read())
            sha = hashlib.sha256()
            partial = target.with_name(target.name + ".partial")
            with open(partial, "wb") as out:
                while chunk := resp.read(1 << 20):
                    sha.update(chunk)
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"GET https://{self.login_server}{path}: {exc}") from exc
        finally:
            conn.close()
        if "sha256:" + sha.hexdigest() != digest:
            partial.unlink(missing_ok=True)
            raise RegistryError(f"blob {digest} of {repository}: digest mismatch")
        partial.replace(target)

    def config(self, repository: str, manifest: Manifest) -> dict:
        return json.loads(self.blob(repository, manifest.config["digest"]))

    def tags(self, repository: str) -> list[str]:
        path = f"/v2/{repository}/tags/list"
        status, _headers, body = self._request("GET", path)
        if status == 404:
            return []
        self._check("GET", path, status, body)
        return list(json.loads(body).get("tags") or [])

    def delete(self, repository: str, digest: str) -> None:
        path = f"/v2/{repository}/manifests/{digest}"
        status, _headers, body = self._request("DELETE", path)
        self._check("DELETE", path, status, body)


DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
