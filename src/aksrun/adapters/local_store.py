"""LocalStore: a directory as the object store (the embedded default, and the test double
that is not a double: the same contract suite runs on it and on BlobStore)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import ObjectNotFoundError, StoreError
from ..ports.store import Buffer

_COPY_BLOCK = 8 * 1024 * 1024


class LocalStore:
    """Objects are files under `root`; writes go to a temp file then `os.replace` (atomic)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise StoreError(f"{url!r} is not a local store URL; use file:///absolute/dir.")
        return cls(unquote(parsed.path))

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or "\\" in key or any(
            part in ("", ".", "..") for part in key.rstrip("/").split("/")
        ):
            raise StoreError(f"{key!r} is not a valid store key (relative, '/'-separated).")
        return self.root / key.rstrip("/")

    def put(self, key: str, data: Buffer | Iterable[Buffer]) -> None:
        path = self._path(key)
        parts = [data] if isinstance(data, bytes | bytearray | memoryview) else data
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    out.write(part)
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as src:
                return src.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}") from None

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as src:
                src.seek(offset)
                return src.read() if length is None else src.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}") from None

    def put_file(self, key: str, path: str) -> None:
        with open(path, "rb") as src:
            self.put(key, iter(lambda: src.read(_COPY_BLOCK), b""))

    def get_file(self, key: str, path: str) -> None:
        source = self._path(key)
        if not source.is_file():
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}")
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            _unlink(tmp)
            raise

    def append(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as out:
            out.write(data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}") from None

    def modified(self, key: str) -> float:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}") from None

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root
        start = base / prefix.rpartition("/")[0] if "/" in prefix else base
        keys = []
        for folder, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(folder, name), base).replace(os.sep, "/")
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, prefix: str) -> int:
        path = self._path(prefix)
        if path.is_file():
            path.unlink()
            return 1
        if path.is_dir():
            count = sum(len(files) for _d, _s, files in os.walk(path))
            shutil.rmtree(path, ignore_errors=True)
            return count
        return 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
