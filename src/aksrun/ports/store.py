"""Store: object storage for functions, inputs, outputs, logs and job records.

Keys are `/`-separated relative paths. Writes are atomic (an object is seen whole or not at
all), so a reader never unpickles half an upload.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

Buffer = bytes | bytearray | memoryview


@runtime_checkable
class Store(Protocol):
    url: str

    def put(self, key: str, data: Buffer | Iterable[Buffer]) -> None:
        """Write an object atomically; `data` may be a sequence of parts (no concatenation)."""

    def get(self, key: str) -> Buffer:
        """Read a whole object; raises ObjectNotFoundError."""

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read a byte range (logs are followed this way); past the end gives b''."""

    def put_file(self, key: str, path: str) -> None:
        """Upload a local file, streamed."""

    def get_file(self, key: str, path: str) -> None:
        """Download to a local file, streamed; the file appears only when complete."""

    def append(self, key: str, data: bytes) -> None:
        """Append to an object, creating it (live logs)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Size in bytes; raises ObjectNotFoundError."""

    def modified(self, key: str) -> float:
        """When the object was last written (epoch seconds); raises ObjectNotFoundError.
        `gc` keeps objects written recently: one may belong to a submission in flight."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under a prefix, sorted."""

    def delete(self, prefix: str) -> int:
        """Delete one key or everything under `prefix/`; returns how many objects went."""
