"""Pod volumes on the host, set up as the kubelet's volume plugins do, before any container
starts: emptyDir (a directory, or a tmpfs for medium Memory), hostPath, and the file-backed
sources (configMap, secret, downwardAPI, projected incl. serviceAccountToken) written with the
kubelet's atomic-writer layout (`..data` -> timestamped dir, one symlink per entry).

A volume that cannot be set up (a missing ConfigMap, say) raises VolumeError; the pod then
stays ContainerCreating with a FailedMount event, as on a real node.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .envvars import field_ref, resource_ref
from .quantity import quantity_bytes

log = logging.getLogger(__name__)
_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


class VolumeError(Exception):
    """MountVolume.SetUp failed: the message is the kubelet's FailedMount text."""


@dataclass
class Volume:
    name: str
    path: Path
    read_only: bool = False  # configMap/secret/downwardAPI/projected are always read-only
    tmpfs: bool = False


# get(path) -> object dict; raises LookupError when the object does not exist
Getter = Callable[[str], dict]
# token(namespace, serviceaccount, audience, expiration_seconds, pod) -> JWT
TokenIssuer = Callable[[str, str, str, int, dict], str]


def _mount_tmpfs(path: Path, size: int) -> bool:
    res = _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", ctypes.c_ulong(0),
                      f"size={size},mode=0777".encode())
    if res != 0:
        log.info("tmpfs for %s not mounted (%s): a plain directory instead", path,
                 os.strerror(ctypes.get_errno()))
        return False
    return True


def unmount(path: Path) -> None:
    _libc.umount2(str(path).encode(), MNT_DETACH)


def _atomic_write(target: Path, files: dict[str, tuple[bytes, int]],
                  fs_group: int | None) -> None:
    """The kubelet's AtomicWriter: the data in a timestamped dir, `..data` pointing at it,
    and a symlink per top-level entry through `..data`."""
    target.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9}"
    data_dir = target / stamp
    data_dir.mkdir()
    for rel, (content, mode) in files.items():
        path = data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if fs_group is not None:
            os.chown(path, -1, fs_group)
            mode |= 0o440
        os.chmod(path, mode)
    tmp_link = target / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    tmp_link.symlink_to(stamp)
    tmp_link.rename(target / "..data")
    for top in {rel.split("/", 1)[0] for rel in files}:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for old in target.glob("..2*"):
        if old.name != stamp:
            shutil.rmtree(old, ignore_errors=True)
    if fs_group is not None:
        os.chown(target, -1, fs_group)
    os.chmod(target, 0o755 if fs_group is None else 0o2755)


def _items(data: dict[str, bytes], items: list[dict] | None, default_mode: int,
           what: str, optional: bool) -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeError(f"configmap references non-existent config key: {item['key']}"
                              if what == "configmap" else
                              f"references non-existent secret key: {item['key']}")
        out[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return out


class VolumeSetup:
    """Creates a pod's volumes under `pod_dir/volumes` (idempotent: a retry after a
    FailedMount redoes only what failed)."""

    def __init__(self, pod: dict, pod_dir: Path, get: Getter, token: TokenIssuer,
                 pod_ip: str, host_ip: str, allocatable: dict[str, str]) -> None:
        self.pod = pod
        self.dir = pod_dir / "volumes"
        self.get = get
        self.token = token
        self.pod_ip, self.host_ip = pod_ip, host_ip
        self.allocatable = allocatable
        sc = pod["spec"].get("securityContext") or {}
        self.fs_group: int | None = sc.get("fsGroup")
        self.volumes: dict[str, Volume] = {}

    def setup_all(self) -> dict[str, Volume]:
        for vol in self.pod["spec"].get("volumes") or []:
            if vol["name"] in self.volumes:
                continue
            try:
                self.volumes[vol["name"]] = self._setup(vol)
            except VolumeError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{vol["name"]}" : '
                                  f"{exc}") from None
        return self.volumes

    def _setup(self, vol: dict) -> Volume:
        name = vol["name"]
        path = self.dir / name
        if "emptyDir" in vol:
            spec = vol["emptyDir"] or {}
            path.mkdir(parents=True, exist_ok=True)
            tmpfs = False
            if spec.get("medium") == "Memory":
                tmpfs = _mount_tmpfs(path, self._memory_size(spec.get("sizeLimit")))
            os.chmod(path, 0o777)
            if self.fs_group is not None:
                os.chown(path, -1, self.fs_group)
                os.chmod(path, 0o2777)
            return Volume(name, path, tmpfs=tmpfs)
        if "hostPath" in vol:
            spec = vol["hostPath"]
            host = Path(spec["path"])
            kind = spec.get("type") or ""
            if kind == "DirectoryOrCreate":
                host.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not host.exists():
                host.parent.mkdir(parents=True, exist_ok=True)
                host.touch()
            elif kind in ("Directory", "File") and not host.exists():
                raise VolumeError(f"hostPath type check failed: {host} is not a "
                                  f"{kind.lower()}")
            return Volume(name, host)
        files: dict[str, tuple[bytes, int]]
        if "configMap" in vol or "secret" in vol:
            files = self._object_files(vol.get("configMap") or vol.get("secret"),
                                       "configmap" if "configMap" in vol else "secret")
        elif "downwardAPI" in vol:
            files = self._downward_files(vol["downwardAPI"])
        elif "projected" in vol:
            files = self._projected_files(vol["projected"])
        else:
            kinds = sorted(k for k in vol if k != "name")
            raise VolumeError(f"volume type {kinds} is not supported by this node agent")
        _atomic_write(path, files, self.fs_group)
        return Volume(name, path, read_only=True)

    def _memory_size(self, size_limit: str | None) -> int:
        node = quantity_bytes(self.allocatable.get("memory", "1Gi"))
        limits = [quantity_bytes(((c.get("resources") or {}).get("limits") or {})["memory"])
                  for c in self.pod["spec"].get("containers") or []
                  if ((c.get("resources") or {}).get("limits") or {}).get("memory")]
        pod_limit = sum(limits) if len(limits) == len(self.pod["spec"]["containers"]) else node
        size = min(node, pod_limit)
        if size_limit:
            size = min(size, quantity_bytes(size_limit))
        return max(size, 4096)

    def _fetch(self, kind: str, name: str) -> dict[str, bytes] | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        ns = self.pod["metadata"]["namespace"]
        try:
            obj: Any = self.get(f"/api/v1/namespaces/{ns}/{plural}/{name}")
        except LookupError:
            return None
        if kind == "secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def _object_files(self, spec: dict, kind: str) -> dict[str, tuple[bytes, int]]:
        name = spec.get("name") or spec.get("secretName", "")
        data = self._fetch(kind, name)
        optional = bool(spec.get("optional"))
        if data is None:
            if optional:
                return {}
            raise VolumeError(f'{kind} "{name}" not found')
        return _items(data, spec.get("items"), spec.get("defaultMode", 0o644), kind, optional)

    def _downward_files(self, spec: dict) -> dict[str, tuple[bytes, int]]:
        meta = self.pod["metadata"]
        out: dict[str, tuple[bytes, int]] = {}
        for item in spec.get("items") or []:
            mode = item.get("mode", spec.get("defaultMode", 0o644))
            if "fieldRef" in item:
                path = item["fieldRef"]["fieldPath"]
                if path in ("metadata.labels", "metadata.annotations"):
                    data = meta.get(path.split(".")[1]) or {}
                    text = "\n".join(f'{k}="{v}"' for k, v in sorted(data.items()))
                else:
                    text = field_ref(self.pod, path, self.pod_ip, self.host_ip)
            else:
                ref = item["resourceFieldRef"]
                container = next(c for c in self.pod["spec"]["containers"]
                                 if c["name"] == ref.get("containerName",
                                                         self.pod["spec"]["containers"][0]
                                                         ["name"]))
                text = resource_ref(self.pod, ref, container, self.allocatable)
            out[item["path"]] = (text.encode(), mode)
        return out

    def _projected_files(self, spec: dict) -> dict[str, tuple[bytes, int]]:
        default_mode = spec.get("defaultMode", 0o644)
        out: dict[str, tuple[bytes, int]] = {}
        for source in spec.get("sources") or []:
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                jwt = self.token(self.pod["metadata"]["namespace"],
                                 self.pod["spec"].get("serviceAccountName") or "default",
                                 sat.get("audience", ""), sat.get("expirationSeconds", 3600),
                                 self.pod)
                out[sat["path"]] = (jwt.encode(), default_mode)
            elif "configMap" in source or "secret" in source:
                kind = "configmap" if "configMap" in source else "secret"
                sub = dict(source.get("configMap") or source.get("secret"))
                sub.setdefault("defaultMode", default_mode)
                out.update(self._object_files(sub, kind))
            elif "downwardAPI" in source:
                out.update(self._downward_files({**source["downwardAPI"],
                                                 "defaultMode": default_mode}))
            else:
                raise VolumeError(f"projected source {sorted(source)} is not supported by "
                                  "this node agent")
        return out

    def teardown(self) -> None:
        for vol in self.volumes.values():
            if vol.tmpfs:
                unmount(vol.path)
