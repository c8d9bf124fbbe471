"""What the fake ACR front knows about the registry behind it, read from distribution.

Content (manifests, config blobs) and the tag list come from distribution's `/v2/` API.
Distribution's API cannot list untagged manifests, say when a tag or manifest was made, or
delete a tag (2.8 has no tag deletion), all of which ACR's `/acr/v1/` API does; for those
the view reads distribution's storage folder when it is given one (its `link` files and
their mtimes are the registry's own record), and otherwise falls back to what the front has
seen: first-seen times, digests that passed through it, and no tag deletion.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from .oci import DOCKER_CONFIG, MANIFEST_TYPES, OCI_CONFIG

MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
# distribution's reference grammar (repository path components, tags, digests)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


class Unsupported(RuntimeError):
    """The operation needs distribution's storage folder, which this view was not given."""


@dataclass
class ManifestInfo:
    """The facts ACR reports about one manifest, derived from its content."""

    digest: str
    media_type: str
    config_media_type: str | None = None
    architecture: str | None = None
    os: str | None = None
    image_size: int = 0
    references: list[dict] = field(default_factory=list)


class RegistryView:
    """Read (and delete) through distribution; `root` is its storage `rootdirectory`."""

    def __init__(
        self, backend_url: str, root: str | Path | None = None,
        ca_file: str | Path | None = None,
    ) -> None:
        parts = urlsplit(backend_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"backend_url must be http(s)://host:port, not {backend_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc
        self._tls = (
            ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if parts.scheme == "https" else None
        )
        self.repositories_dir = (
            Path(root) / "docker" / "registry" / "v2" / "repositories" if root else None
        )
        self._lock = threading.Lock()
        self._infos: dict[str, ManifestInfo] = {}  # by digest: content never changes
        self._first_seen: dict[tuple, float] = {}
        self._tag_state: dict[tuple[str, str], tuple[float, float, str]] = {}
        self._passed: dict[str, set[str]] = {}  # repo -> digests seen through the front

    # -- distribution's HTTP API --------------------------------------------------------

    def connect(self, timeout: float = 30) -> http.client.HTTPConnection:
        """A new connection to distribution (TLS when the backend URL is https)."""
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connect()
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            connection.close()

    def catalog(self) -> list[str]:
        """Every repository distribution knows, including emptied ones."""
        names: list[str] = []
        target: str | None = "/v2/_catalog?n=1000"
        while target:
            status, headers, body = self.call("GET", target)
            if status != 200:
                raise RuntimeError(f"backend catalog: {status} {body[:300]!r}")
            names += json.loads(body).get("repositories") or []
            link = headers.get("link", "")
            target = link[link.find("<") + 1:link.find(">")] if "rel=\"next\"" in link else None
        return sorted(set(names))

    def resolve(self, repo: str, reference: str) -> tuple[str, str] | None:
        """(digest, media type) of a tag or digest, or None if the registry has no such one."""
        status, headers, _ = self.call(
            "HEAD", f"/v2/{repo}/manifests/{quote(reference)}", {"Accept": MANIFEST_ACCEPT}
        )
        if status != 200:
            return None
        return headers["docker-content-digest"], headers.get("content-type", "")

    def info(self, repo: str, digest: str) -> ManifestInfo | None:
        """What ACR says about a manifest (cached by digest; existence is not checked here)."""
        with self._lock:
            cached = self._infos.get(digest)
        if cached is not None:
            return cached
        status, headers, body = self.call(
            "GET", f"/v2/{repo}/manifests/{digest}", {"Accept": MANIFEST_ACCEPT}
        )
        if status != 200:
            return None
        manifest = json.loads(body)
        media_type = manifest.get("mediaType") or headers.get("content-type", "")
        info = ManifestInfo(digest, media_type)
        config = manifest.get("config")
        if isinstance(config, dict):
            info.config_media_type = config.get("mediaType")
            layers = manifest.get("layers") or []
            info.image_size = int(config.get("size") or 0) + sum(
                int(layer.get("size") or 0) for layer in layers
            )
            if info.config_media_type in IMAGE_CONFIG_TYPES:
                status, _, blob = self.call("GET", f"/v2/{repo}/blobs/{config['digest']}")
                if status == 200:
                    image_config = json.loads(blob)
                    info.architecture = image_config.get("architecture")
                    info.os = image_config.get("os")
        for child in manifest.get("manifests") or []:
            platform = child.get("platform") or {}
            info.references.append({
                "digest": child.get("digest"),
                "architecture": platform.get("architecture"),
                "os": platform.get("os"),
            })
            child_info = self.info(repo, child.get("digest", ""))
            info.image_size += child_info.image_size if child_info else int(child.get("size", 0))
        with self._lock:
            self._infos[digest] = info
        return info

    def delete_manifest(self, repo: str, digest: str) -> int:
        status, _, _ = self.call("DELETE", f"/v2/{repo}/manifests/{digest}")
        if status == 202:
            with self._lock:
                self._passed.get(repo, set()).discard(digest)
                self._first_seen.pop((repo, digest), None)
                for key in [k for k, v in self._tag_state.items() if k[0] == repo
                            and v[2] == digest]:
                    del self._tag_state[key]
        return status

    # -- ACR's view: tags, manifests, times ---------------------------------------------

    def tags(self, repo: str) -> dict[str, str] | None:
        """Tag -> digest, or None when the repository does not exist (or was emptied)."""
        folder = self._repo_dir(repo)
        if folder is not None:
            tags_dir = folder / "_manifests" / "tags"
            if not (folder / "_manifests").is_dir():
                return None
            found = {}
            for entry in sorted(tags_dir.iterdir()) if tags_dir.is_dir() else []:
                link = entry / "current" / "link"
                if link.is_file():
                    found[entry.name] = link.read_text().strip()
            if not found and not self.manifest_digests(repo):
                return None
            return found
        status, _, body = self.call("GET", f"/v2/{repo}/tags/list")
        if status != 200:
            return None
        names = json.loads(body).get("tags") or []
        found = {}
        for name in sorted(names):
            resolved = self.resolve(repo, name)
            if resolved is not None:
                found[name] = resolved[0]
                self._note_tag(repo, name, resolved[0])
        if not found and not self._passed.get(repo):
            return None
        return found

    def manifest_digests(self, repo: str) -> list[str]:
        """Every manifest in the repository, tagged or not."""
        folder = self._repo_dir(repo)
        if folder is not None:
            revisions = folder / "_manifests" / "revisions"
            digests = []
            for algorithm in sorted(revisions.iterdir()) if revisions.is_dir() else []:
                for entry in sorted(algorithm.iterdir()):
                    if (entry / "link").is_file():
                        digests.append(f"{algorithm.name}:{entry.name}")
            return digests
        known = set(self._passed.get(repo, set()))
        status, _, body = self.call("GET", f"/v2/{repo}/tags/list")
        for name in (json.loads(body).get("tags") or []) if status == 200 else []:
            resolved = self.resolve(repo, name)
            if resolved is not None:
                known.add(resolved[0])
        return sorted(d for d in known if self.resolve(repo, d) is not None)

    def has_manifest(self, repo: str, digest: str) -> bool:
        folder = self._repo_dir(repo)
        if folder is not None:
            algorithm, _, hex_digest = digest.partition(":")
            link = folder / "_manifests" / "revisions" / algorithm / hex_digest / "link"
            return link.is_file()
        return self.resolve(repo, digest) is not None

    def manifest_times(self, repo: str, digest: str) -> tuple[float, float]:
        """(created, last updated) of a manifest in this repository."""
        folder = self._repo_dir(repo)
        now = time.time()
        if folder is not None:
            algorithm, _, hex_digest = digest.partition(":")
            link = folder / "_manifests" / "revisions" / algorithm / hex_digest / "link"
            try:
                now = link.stat().st_mtime
            except OSError:
                pass
        with self._lock:
            created = self._first_seen.setdefault((repo, digest), now)
        return created, max(created, now if folder is not None else created)

    def tag_times(self, repo: str, tag: str, digest: str) -> tuple[float, float]:
        """(created, last updated) of a tag: updated moves when the tag is re-pointed."""
        folder = self._repo_dir(repo)
        if folder is not None:
            tag_dir = folder / "_manifests" / "tags" / tag
            try:
                updated = (tag_dir / "current" / "link").stat().st_mtime
                indexed = [p.stat().st_mtime for p in tag_dir.glob("index/*/*/link")]
            except OSError:
                updated, indexed = time.time(), []
            return min([updated, *indexed]), updated
        return self._note_tag(repo, tag, digest)[:2]

    def delete_tag(self, repo: str, tag: str) -> bool:
        """Untag as distribution 3 does (remove the tag's folder); False if there is none."""
        folder = self._repo_dir(repo)
        if folder is None:
            raise Unsupported(
                "deleting a tag needs the backend's storage folder (FakeAcrFront(backend_root=)):"
                " distribution 2.8 has no tag deletion API"
            )
        tag_dir = folder / "_manifests" / "tags" / tag
        if not (tag_dir / "current" / "link").is_file():
            return False
        shutil.rmtree(tag_dir)
        with self._lock:
            self._tag_state.pop((repo, tag), None)
        return True

    def note_pushed(self, repo: str, reference: str, digest: str) -> None:
        """Remember a manifest that passed through the front (all we know without storage)."""
        with self._lock:
            self._passed.setdefault(repo, set()).add(digest)
            self._first_seen.setdefault((repo, digest), time.time())
        if not DIGEST_RE.match(reference):
            self._note_tag(repo, reference, digest)

    def _note_tag(self, repo: str, tag: str, digest: str) -> tuple[float, float, str]:
        now = time.time()
        with self._lock:
            state = self._tag_state.get((repo, tag))
            if state is None:
                state = (now, now, digest)
            elif state[2] != digest:
                state = (state[0], now, digest)
            self._tag_state[(repo, tag)] = state
            return state

    def _repo_dir(self, repo: str) -> Path | None:
        if self.repositories_dir is None:
            return None
        if not REPOSITORY_RE.match(repo):
            raise ValueError(f"invalid repository name {repo!r}")
        return self.repositories_dir / repo
