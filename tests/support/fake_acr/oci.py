"""Push tiny but real OCI/Docker images straight into a distribution registry's `/v2/` API.

Tests need images in the backend without buildah: one gzipped tar layer holding one file,
an image config whose `rootfs.diff_ids` matches it, and a manifest (or an index of several
platform images), uploaded the way any client does (POST an upload, PUT the blob with its
digest, PUT the manifest).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import ssl
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)


class PushError(RuntimeError):
    """The registry refused an upload; the message has its status and body."""


@dataclass(frozen=True)
class PushedImage:
    """What was pushed, so a test can compare the front's answers with the truth."""

    repository: str
    tag: str | None
    digest: str
    media_type: str
    manifest: bytes
    config_digest: str | None = None
    config: bytes = b""
    layer_digests: tuple[str, ...] = ()
    size: int = 0  # config + layers, as ACR reports `imageSize`
    children: tuple[PushedImage, ...] = field(default=())


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A reproducible gzipped tar of `files`, and the diff id (digest of the plain tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), digest_of(plain)


def push_blob(
    registry_url: str, repository: str, data: bytes, *, ca_file: str | Path | None = None
) -> str:
    """Monolithic upload: POST to open an upload, PUT the bytes with their digest."""
    digest = digest_of(data)
    status, headers, body = _call(
        registry_url, "POST", f"/v2/{repository}/blobs/uploads/", ca_file=ca_file
    )
    if status != 202:
        raise PushError(f"start upload to {repository}: {status} {body[:500]!r}")
    location = urlsplit(headers["location"])
    target = location.path + "?" + (location.query + "&" if location.query else "")
    status, _, body = _call(
        registry_url, "PUT", f"{target}digest={digest}", data,
        {"Content-Type": "application/octet-stream"}, ca_file=ca_file,
    )
    if status != 201:
        raise PushError(f"upload {digest} to {repository}: {status} {body[:500]!r}")
    return digest


def push_manifest(
    registry_url: str, repository: str, reference: str, manifest: bytes, media_type: str,
    *, ca_file: str | Path | None = None,
) -> str:
    status, headers, body = _call(
        registry_url, "PUT", f"/v2/{repository}/manifests/{reference}", manifest,
        {"Content-Type": media_type}, ca_file=ca_file,
    )
    if status != 201:
        raise PushError(f"manifest {repository}:{reference}: {status} {body[:500]!r}")
    return headers.get("docker-content-digest") or digest_of(manifest)


def push_image(
    registry_url: str,
    repository: str,
    tag: str | None = "latest",
    *,
    architecture: str = "amd64",
    os: str = "linux",
    files: dict[str, bytes] | None = None,
    docker: bool = False,
    ca_file: str | Path | None = None,
) -> PushedImage:
    """One single-platform image; `docker=True` uses Docker v2 media types instead of OCI.

    `tag=None` pushes by digest only, which leaves an untagged manifest.
    """
    layer, diff_id = make_layer(files or {"hello.txt": f"{repository} {tag}\n".encode()})
    config = json.dumps({
        "architecture": architecture,
        "os": os,
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "tests.support.fake_acr.oci"}],
    }, sort_keys=True).encode()
    config_digest = push_blob(registry_url, repository, config, ca_file=ca_file)
    layer_digest = push_blob(registry_url, repository, layer, ca_file=ca_file)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": config_digest, "size": len(config),
        },
        "layers": [{
            "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
            "digest": layer_digest, "size": len(layer),
        }],
    }, indent=3).encode()
    digest = push_manifest(
        registry_url, repository, tag or digest_of(manifest), manifest, media_type,
        ca_file=ca_file,
    )
    return PushedImage(
        repository, tag, digest, media_type, manifest, config_digest, config, (layer_digest,),
        len(config) + len(layer),
    )


def push_index(
    registry_url: str,
    repository: str,
    tag: str | None,
    platforms: list[tuple[str, str]],
    *,
    ca_file: str | Path | None = None,
) -> PushedImage:
    """A multi-platform OCI index over one untagged image per (os, architecture)."""
    children = tuple(
        push_image(registry_url, repository, None, architecture=arch, os=os_name,
                   files={"platform.txt": f"{os_name}/{arch}\n".encode()}, ca_file=ca_file)
        for os_name, arch in platforms
    )
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": child.media_type, "digest": child.digest, "size": len(child.manifest),
            "platform": {"architecture": arch, "os": os_name},
        } for child, (os_name, arch) in zip(children, platforms, strict=True)],
    }).encode()
    digest = push_manifest(
        registry_url, repository, tag or digest_of(index), index, OCI_INDEX, ca_file=ca_file
    )
    return PushedImage(
        repository, tag, digest, OCI_INDEX, index,
        size=sum(c.size for c in children), children=children,
    )


def _call(
    registry_url: str, method: str, target: str, body: bytes = b"",
    headers: dict[str, str] | None = None, *, ca_file: str | Path | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request over plain http.client (loopback only: no proxy settings apply)."""
    base = urlsplit(registry_url)
    if base.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            base.hostname, base.port, timeout=30, context=context
        )
    else:
        connection = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()
