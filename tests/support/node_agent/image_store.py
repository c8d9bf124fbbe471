"""The node's image store: pulls images from the test registry the way containerd does and
keeps them as layer snapshots, which a container's overlay root stacks as its lower layers
(containerd's overlayfs snapshotter).

`pull(image)` resolves the reference against the registry (a tag or an `@sha256:` digest),
fetches the config and every layer not already unpacked (digests verified), and returns the
image: its digest reference (the pod's imageID), its config (Env, WorkingDir, User,
Entrypoint, Cmd) and its lower directories, top first. A reference the registry lacks, or a
registry this node cannot reach, is a PullError whose message is containerd's.

Layers are unpacked once per blob digest into `root/layers/<hex>/` (shared by every node and
every agent using the same root, under a file lock), with OCI whiteouts turned into overlay
whiteouts (a 0/0 character device; `trusted.overlay.opaque=y` for an opaque directory).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.images.buildah import ImageConfig
from tests.support.images.distribution import (
    NotFound,
    Reference,
    RegistryClient,
    RegistryError,
)

from . import images

log = logging.getLogger(__name__)
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class PullError(Exception):
    """The image could not be pulled; `str()` is the CRI error the kubelet reports."""


@dataclass
class Image:
    """A pulled image, ready to run."""

    reference: str  # as the pod names it
    image_id: str  # <repository>@sha256:<manifest digest>, the pod's imageID
    digest: str
    config: ImageConfig
    lowers: list[Path]  # overlay lower directories, top layer first
    size: int
    labels: dict[str, str] = field(default_factory=dict)

    def read(self, path: str) -> str | None:
        """A text file of the image (the topmost layer that has it), e.g. /etc/passwd."""
        rel = path.lstrip("/")
        for layer in self.lowers:
            candidate = layer / rel
            if candidate.is_file() and not candidate.is_symlink():
                return candidate.read_text(errors="replace")
            if candidate.exists() and stat.S_ISCHR(candidate.lstat().st_mode):
                return None  # whited out above
        return None


class ImageStore:
    """Images of the registries this node may pull from (login server -> client)."""

    def __init__(self, root: Path, registries: list[RegistryClient]) -> None:
        self.root = Path(root)
        self.registries = {r.login_server: r for r in registries}
        self._lock = threading.Lock()
        self._layer_locks: dict[str, threading.Lock] = {}
        self._pulled: dict[str, Image] = {}
        (self.root / "layers").mkdir(parents=True, exist_ok=True)

    def known(self, image: str) -> Image | None:
        """The image as last pulled under this exact reference (no registry call)."""
        with self._lock:
            return self._pulled.get(image)

    def pull(self, image: str) -> Image:
        """Resolve and fetch `image` now (always asks the registry, as a pull does)."""
        ref = Reference.parse(image)
        normalized = images.normalize(image)
        client = self.registries.get(ref.host)
        if client is None:
            raise PullError(images.unreachable_error(image, ref.host, ref.repository,
                                                     ref.reference))
        try:
            manifest = client.manifest(ref.repository, ref.reference)
            config_doc = client.config(ref.repository, manifest)
        except NotFound:
            raise PullError(images.pull_error(image)) from None
        except RegistryError as exc:
            raise PullError(f'rpc error: code = Unknown desc = failed to pull and unpack image '
                            f'"{normalized}": {exc}') from None
        lowers = []
        try:
            for layer in manifest.layers:
                lowers.append(self._layer(client, ref.repository, layer))
        except (RegistryError, OSError, tarfile.TarError) as exc:
            raise PullError(f'rpc error: code = Unknown desc = failed to pull and unpack image '
                            f'"{normalized}": failed to extract layer: {exc}') from None
        lowers.reverse()  # overlay wants the top layer first
        config = ImageConfig.from_oci(config_doc)
        repo = normalized.split("@", 1)[0]
        if "@" not in normalized:
            repo = repo.rsplit(":", 1)[0]
        pulled = Image(reference=image, image_id=f"{repo}@{manifest.digest}",
                       digest=manifest.digest, config=config, lowers=lowers,
                       size=manifest.size, labels=config.labels)
        with self._lock:
            self._pulled[image] = pulled
        return pulled

    # ------------------------------------------------------------------ layers
    def _layer(self, client: RegistryClient, repository: str, descriptor: dict) -> Path:
        digest = descriptor["digest"]
        target = self.root / "layers" / digest.split(":", 1)[1]
        done = target.with_name(target.name + ".done")
        with self._lock:
            lock = self._layer_locks.setdefault(digest, threading.Lock())
        with lock:
            if done.exists():
                return target
            with open(target.with_name(target.name + ".lock"), "w") as flock:
                fcntl.flock(flock, fcntl.LOCK_EX)  # another agent may be unpacking it
                if done.exists():
                    return target
                started = time.monotonic()
                with tempfile.TemporaryDirectory(dir=self.root / "layers") as tmp:
                    blob = Path(tmp) / "blob"
                    client.download(repository, digest, blob)
                    shutil.rmtree(target, ignore_errors=True)
                    target.mkdir(mode=0o755)
                    unpack_layer(blob, target)
                done.write_text(json.dumps({"digest": digest,
                                            "seconds": round(time.monotonic() - started, 1)}))
                return target


def _safe_parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise tarfile.TarError(f"layer entry {name!r} leaves the layer")
    return parts


def _check_parents(root: Path, parts: list[str]) -> None:
    """Refuse to write through a symlinked directory of the layer (could leave it)."""
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise tarfile.TarError(f"layer entry {'/'.join(parts)!r} goes through the symlink "
                                   f"{current.relative_to(root)}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def unpack_layer(blob: Path, target: Path) -> None:
    """Extract one layer (gzip or plain tar) into `target` as an overlay snapshot."""
    with tarfile.open(blob, mode="r|*") as tar:
        for member in tar:
            parts = _safe_parts(member.name)
            if not parts:  # the layer's root directory
                os.chmod(target, member.mode & 0o7777)
                continue
            _check_parents(target, parts)
            parent = target.joinpath(*parts[:-1])
            parent.mkdir(parents=True, exist_ok=True)
            base = parts[-1]
            if base == OPAQUE:
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(WHITEOUT):
                path = parent / base[len(WHITEOUT):]
                _remove(path)
                os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
                continue
            path = parent / base
            existing = path.is_symlink() or path.exists()
            if existing and not (member.isdir() and path.is_dir() and not path.is_symlink()):
                _remove(path)
            member.name = "/".join(parts)
            if member.islnk():
                link_parts = _safe_parts(member.linkname)
                _check_parents(target, link_parts)
                member.linkname = "/".join(link_parts)
            tar.extract(member, target, set_attrs=True, numeric_owner=True,
                        filter="fully_trusted")


def usable(root: Path) -> tuple[bool, str]:
    """Whether layers can be unpacked as overlay snapshots under `root` (root: mknod, xattrs
    in the trusted namespace, on that file system)."""
    if os.geteuid() != 0:
        return False, "not root: layers cannot keep their owners or overlay whiteouts"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        try:
            os.mknod(Path(tmp) / "w", stat.S_IFCHR, os.makedev(0, 0))
            os.setxattr(tmp, "trusted.overlay.opaque", b"y")
        except OSError as exc:
            return False, f"cannot make overlay whiteouts here: {exc.strerror}"
    return True, ""
