"""LocalStore: a directory as the object store (the embedded default, and the test double
that is not a double: the same contract suite runs on it and on BlobStore)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import AksrunError, ConfigError, ObjectNotFoundError, StoreError
from ..ports.store import Buffer

_COPY_BLOCK = 8 * 1024 * 1024
# A directory that can't take files until someone changes a setting or a permission.
_UNUSABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_FIX = ("set AKSRUN_HOME to a writable directory (the store defaults to $AKSRUN_HOME/store), "
        "or AKSRUN_STORE=file:///a/writable/dir")


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError as exc:
            raise self._write_error(exc, key) from exc
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    out.write(part)
            os.replace(tmp, path)
        except BaseException as exc:
            _unlink(tmp)  # the object appears whole or not at all
            if isinstance(exc, OSError):
                raise self._write_error(exc, key) from exc
            raise

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as src:
                return src.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}") from None
        except OSError as exc:
            raise self._read_error(exc, f"read {key!r} from") from exc

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as src:
                src.seek(offset)
                return src.read() if length is None else src.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in store {self.url}") from None
        except OSError as exc:
            raise self._read_error(exc, f"read {key!r} from") from exc

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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as out:
                out.write(data)
        except OSError as exc:
            raise self._write_error(exc, key) from exc

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
        for folder, _dirs, files in os.walk(start, onerror=self._list_error):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(folder, name), base).replace(os.sep, "/")
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, prefix: str) -> int:
        path = self._path(prefix)
        try:
            if path.is_file():
                path.unlink()
                return 1
            if path.is_dir():
                count = sum(len(files) for _d, _s, files in os.walk(path))
                shutil.rmtree(path, ignore_errors=True)
                return count
        except OSError as exc:
            raise self._write_error(exc, prefix) from exc
        return 0

    def check_readable(self) -> None:
        """Raise ConfigError when the store's directory can't be read, so that an empty
        listing means "no jobs" and not "a path that can't be opened"."""
        problem = directory_problem(self.root)
        if problem:
            raise ConfigError(f"the local store {self.root} can't be read: {problem}; {_FIX}.")

    def _write_error(self, exc: OSError, key: str) -> AksrunError:
        """The OS failure as aksrun's: the path, the OS's reason and what to change. An
        unusable directory is a setting to fix (ConfigError); a full disk or an I/O error is
        not (StoreError)."""
        where = os.fsdecode(exc.filename) if exc.filename is not None else self.root / key
        reason = exc.strerror or str(exc)
        if exc.errno in _FULL:
            return StoreError(
                f"could not write {key!r} to the local store {self.root}: {reason} ({where}); "
                "nothing was written. Free some space on that disk (`aksrun gc` removes "
                f"finished jobs), or {_FIX} on a disk with room."
            )
        if exc.errno in _UNUSABLE:
            blocker = _file_in_the_way(Path(where))
            problem = f"{blocker} is a file, not a directory" if blocker else f"{reason}: {where}"
            return ConfigError(f"the local store {self.root} is not writable ({problem}); "
                               f"{_FIX}.")
        return StoreError(f"could not write {key!r} to the local store {self.root}: {reason} "
                          f"({where}); nothing was written. Check that disk, or {_FIX}.")

    def _read_error(self, exc: OSError, action: str) -> AksrunError:
        where = os.fsdecode(exc.filename) if exc.filename is not None else self.root
        reason = exc.strerror or str(exc)
        if exc.errno in _UNUSABLE:
            return ConfigError(f"the local store {self.root} can't be read ({reason}: {where}); "
                               f"{_FIX}.")
        return StoreError(f"could not {action} the local store {self.root}: {reason} "
                          f"({where}).")

    def _list_error(self, exc: OSError) -> None:
        # A folder that doesn't exist holds no keys; one that can't be read is not empty.
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise self._read_error(exc, "list") from exc


def directory_problem(path: Path) -> str | None:
    """Why aksrun can't read its files under `path`, or None. A directory that doesn't exist
    yet is fine (the first write makes it) unless a file stands where a parent should be."""
    try:
        info = path.stat()
    except FileNotFoundError:
        blocker = _file_in_the_way(path.parent)
        return f"{blocker} is a file, not a directory" if blocker else None
    except NotADirectoryError:
        return f"{_file_in_the_way(path) or path} is a file, not a directory"
    except OSError as exc:
        return f"{exc.strerror or exc}: {exc.filename or path}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is a file, not a directory"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"permission denied: {path}"
    return None


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` (or `path`), if it is not a directory."""
    for candidate in (path, *path.parents):
        try:
            info = candidate.stat()
        except OSError:
            continue
        return None if stat.S_ISDIR(info.st_mode) else candidate
    return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
