"""BlobStore: the Store protocol on Azure Blob Storage (azure-storage-blob, sync client).

Why it looks the way it does:

- Large objects are written as parallel Put Block + one Put Block List, so a reader sees the
  old object or the whole new one, never a torn one (the commit is atomic), and payload parts
  (pickle protocol-5 buffers pointing into NumPy arrays) are streamed straight from their
  memory: they are never concatenated.
- `get` downloads in parallel into ONE preallocated buffer, so a 1 GiB object costs 1 GiB of
  client memory, not the 2-3x of `readall()`.
- Logs are Append Blobs, so a follower reads by range from its last offset while the runner
  appends. An Append Blob takes 50,000 appends (about 7 hours at 2/s), so a log is a chain of
  segments `<key>`, `<key>~seg-000001`, ...: the writer seals a full segment, then creates the
  next; the next one existing means the previous one is complete, so every reader (`read`,
  `get`, `size`, hence `aksrun jobs logs -f` and the live log) sees one stream. Every append
  says where it must land (`appendpos_condition`): an SDK retry of an append whose answer was
  lost gets 412 instead of writing the text twice, and the store then checks whether the text
  is there.
- The only credential is `DefaultAzureCredential()` (environment in CI, Azure CLI on a laptop,
  workload identity in a pod: its own resolution). A connection string is the other way in,
  for Azurite and for accounts that use keys.
- Retries are the SDK's exponential retry policy, bounded by time (RETRY_WINDOW) rather than
  by the SDK's per-kind counts, so a store outage of up to ~7 minutes (connections refused,
  timeouts, 5xx) is ridden out by runners and clients alike; each retry is logged on
  `aksrun.store` at DEBUG (the SDK itself logs requests on `azure.core.pipeline.policies`).
- Azure is imported inside functions, so importing aksrun stays cheap for local runs.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import random
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, ObjectNotFoundError, StoreAccessError, StoreError
from ..ports.store import Buffer

if TYPE_CHECKING:
    from ..core.config import Config

log = logging.getLogger("aksrun.store")

MiB = 1024 * 1024
MAX_CONCURRENCY = 8  # parallel connections per put/get of a large object
MAX_SINGLE_PUT_SIZE = 16 * MiB  # at most this many bytes go up in one request
MAX_BLOCK_SIZE = 4 * MiB  # block size of parallel uploads (50,000 blocks -> 195 GiB max)
MAX_SINGLE_GET_SIZE = 16 * MiB  # the first GET of a download; the rest in chunks...
MAX_CHUNK_GET_SIZE = 4 * MiB  # ...of this size, in parallel
APPEND_BLOCK_LIMIT = 4 * MiB  # the service's limit for one Append Block (older API versions)
DELETE_BATCH = 256  # the service's limit of sub-requests in one blob batch
SEGMENT_BLOCKS = 50_000  # appends per log segment: the service's limit per Append Blob
SEGMENT_MARK = "~seg-"  # segment n >= 1 of the log `k` is the blob `k~seg-00000n`
APPEND_ATTEMPTS = 10  # rounds of one append (412 re-checks, roll-overs, re-creation)
# Retries. The SDK counts retries per kind (connect, read, status) with a default of 3 each
# whatever `retry_total` says: that made aksrun give up after 3 refused connections, 6.1 s
# measured (1+2+4 s of back-off), not the 63 s this comment used to claim. Now every kind has
# the same count and a time window bounds them all: a request is retried, with back-off
# 1, 2, 4, 8, 16, then 30 s (+-20%), until RETRY_WINDOW seconds have passed since its first
# attempt. Measured against a refused port: it gave up after 428.5 s (18 retries); with
# Azurite stopped for 20 s mid-request, the request completed once it was back (~32 s).
RETRY_WINDOW = 420.0  # a 6-minute store outage (the design's promise) plus a minute of margin
RETRY_BACKOFF = 1.0  # seconds before the first retry, doubling...
RETRY_BACKOFF_MAX = 30.0  # ...up to this
RETRY_TOTAL = 22  # enough that the window, not the count, ends retries: 0.8 x (31 + 17 x 30) s
CONSISTENT_READ_ATTEMPTS = 3  # re-read when the object is replaced during a download
ROLE = "Storage Blob Data Contributor"

_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_SEGMENT_RE = re.compile(re.escape(SEGMENT_MARK) + r"[0-9]{6}$")
_T = TypeVar("_T")


class BlobStore:
    """Objects are blobs `<prefix>/<key>` in one container of one storage account."""

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        account_url: str | None = None,
        connection_string: str | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        max_single_put_size: int = MAX_SINGLE_PUT_SIZE,
        max_block_size: int = MAX_BLOCK_SIZE,
        max_single_get_size: int = MAX_SINGLE_GET_SIZE,
        max_chunk_get_size: int = MAX_CHUNK_GET_SIZE,
        append_block_limit: int = APPEND_BLOCK_LIMIT,
        retry_total: int = RETRY_TOTAL,
        retry_backoff: float = RETRY_BACKOFF,
        retry_window: float | None = None,
        segment_blocks: int | None = None,
    ) -> None:
        """Connect lazily (no request is made here).

        Give `connection_string` (Azurite, key-based accounts) or `account_url` (then the
        credential is `DefaultAzureCredential()`). `subscription_id` and `resource_group` only
        make permission-error messages name the exact role-assignment scope. The size knobs
        exist so tests can exercise the parallel block path with small objects;
        `segment_blocks` (default SEGMENT_BLOCKS, read when the store is made) and
        `retry_window` (default RETRY_WINDOW) so they can reach a log roll-over and the end of
        the retry window in seconds.
        """
        if not _CONTAINER_RE.match(container):
            raise ConfigError(
                f"container name {container!r} is not valid for Azure Blob Storage; use 3-63 "
                "lowercase letters, digits and single '-' (e.g. az://aksrun-alice)."
            )
        if bool(account_url) == bool(connection_string):
            raise ConfigError("BlobStore needs exactly one of account_url or connection_string.")
        if max_concurrency < 1 or min(max_single_put_size, max_block_size) < 1:
            raise ConfigError("BlobStore sizes and max_concurrency must be positive.")
        self.container = container
        self.prefix = _clean_prefix(prefix)
        self.url = f"az://{container}/{self.prefix}" if self.prefix else f"az://{container}"
        self.max_concurrency = max_concurrency
        self.max_single_put_size = max_single_put_size
        self.append_block_limit = append_block_limit
        self.segment_blocks = SEGMENT_BLOCKS if segment_blocks is None else segment_blocks
        if self.segment_blocks < 1:
            raise ConfigError("BlobStore segment_blocks must be positive.")
        self._tails: dict[str, _Tail] = {}  # blob name -> where this process appends next
        self._complete: dict[str, list[int]] = {}  # blob name -> sizes of complete segments
        self._append_lock = threading.Lock()  # one append at a time: positions stay exact
        self._subscription_id = subscription_id
        self._resource_group = resource_group
        self._container_known = False

        from azure.storage.blob import BlobServiceClient

        options: dict[str, Any] = {
            "max_single_put_size": max_single_put_size,
            "max_block_size": max_block_size,
            # Above this block size the SDK re-buffers each block through small reads of a
            # sub-stream; keeping the "whole block as bytes" path is faster and as lean.
            "min_large_block_upload_threshold": max_block_size + 1,
            "max_single_get_size": max_single_get_size,
            "max_chunk_get_size": max_chunk_get_size,
            "retry_policy": _retry_policy(
                retry_total, retry_backoff,
                RETRY_WINDOW if retry_window is None else retry_window,
            ),
        }
        self._credential: Any = None
        if connection_string:
            self._service = BlobServiceClient.from_connection_string(connection_string, **options)
        else:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
            self._service = BlobServiceClient(account_url, credential=self._credential, **options)
        self.account_url = _redact(self._service.url).rstrip("/")  # no SAS in messages
        self.account_name: str = self._service.account_name or ""
        self._container = self._service.get_container_client(container)

    @classmethod
    def from_url(cls, url: str, config: Config | None = None, **tuning: Any) -> BlobStore:
        """`az://<container>[/<prefix>]`; the account and how to reach it come from config."""
        if config is None:
            from ..core.config import load_config

            config = load_config()
        parsed = urlsplit(url)
        if parsed.scheme != "az" or not parsed.netloc:
            raise ConfigError(f"{url!r} is not a blob store URL; use az://<container>[/<prefix>].")
        if config.storage_connection_string:
            return cls(
                parsed.netloc, parsed.path, connection_string=config.storage_connection_string,
                subscription_id=config.subscription_id, resource_group=config.resource_group,
                **tuning,
            )
        if config.storage_account_url:
            account_url = config.storage_account_url
        elif config.storage_account:
            account_url = f"https://{config.storage_account}.blob.core.windows.net"
        else:
            raise ConfigError(
                f"store {url!r} needs a storage account: set AZURE_STORAGE_ACCOUNT (the account "
                "name) or AKSRUN_STORAGE_ACCOUNT_URL (its blob endpoint), in the environment or "
                ".env (see .env.example), or AKSRUN_STORAGE_CONNECTION_STRING for Azurite."
            )
        return cls(
            parsed.netloc, parsed.path, account_url=account_url,
            subscription_id=config.subscription_id, resource_group=config.resource_group,
            **tuning,
        )

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r}, account_url={self.account_url!r})"

    # ---- writing -------------------------------------------------------------------------

    def put(self, key: str, data: Buffer | Iterable[Buffer]) -> None:
        """Write atomically; parts are streamed from their own memory, never joined."""
        name = self._name(key)
        parts, rest = _split_known(data, self.max_single_put_size)
        if rest is None:
            reader: io.RawIOBase = _PartsReader(parts)
            length: int | None = reader.size  # type: ignore[attr-defined]
        else:  # a long iterator of unknown total size: stream it, never materialize it
            reader, length = _IterReader(itertools.chain(parts, rest)), None
            self._probe_container(key)
        blob = self._container.get_blob_client(name)
        started = time.perf_counter()

        def upload() -> None:
            if reader.seekable():
                reader.seek(0)
            elif reader.tell() != 0:
                raise StoreError(f"could not write {key!r} to {self._where()}: the upload of a "
                                 "one-shot iterator failed part way and cannot be repeated.")
            blob.upload_blob(reader, length=length, overwrite=True,
                             max_concurrency=self.max_concurrency)

        self._write(key, upload, blob=blob, rewindable=reader.seekable())
        log.debug("put %s/%s: %s bytes in %.3f s", self.container, name,
                  length if length is not None else "?", time.perf_counter() - started)

    def put_file(self, key: str, path: str) -> None:
        """Upload a local file, streamed in parallel blocks."""
        name = self._name(key)
        blob = self._container.get_blob_client(name)
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size

            def upload() -> None:
                source.seek(0)
                blob.upload_blob(source, length=size, overwrite=True,
                                 max_concurrency=self.max_concurrency)

            self._write(key, upload, blob=blob, rewindable=True)

    def append(self, key: str, data: bytes) -> None:
        """Append to the log `key`, creating it; data over the block limit goes in pieces.

        Each piece lands exactly once at the end of the current segment (see the module
        docstring); a full segment is sealed and the log goes on in the next. A failure is
        logged here at WARNING (the caller may only keep it for later, as the runner's log tee
        does) and raised as StoreError; this process's idea of where the log ends is kept, so
        appending the same text again after an error cannot write it twice. An existing block
        blob at `key` is converted first (rare: only when something was `put` where a log is
        later appended; not atomic).
        """
        name = self._name(key)
        view = memoryview(data).cast("B")
        limit = self.append_block_limit
        try:
            with self._append_lock, self._errors(key, "append to"):
                if not len(view):  # appending nothing: only make sure the log exists
                    self._tail(key, name)
                for i in range(0, len(view), limit):
                    self._append_block(key, name, view[i : i + limit].tobytes())
        except StoreError as exc:
            log.warning("could not append %d bytes to %s: %s", len(view), key, exc)
            raise

    def _append_block(self, key: str, name: str, body: bytes) -> None:
        """One Append Block at the position this process knows to be the end of the log."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        for _attempt in range(APPEND_ATTEMPTS):
            tail = self._tail(key, name)
            if tail.blocks >= self.segment_blocks:
                tail = self._roll(key, name, tail)
            blob = self._container.get_blob_client(_segment_name(name, tail.segment))
            try:
                done = blob.append_block(body, length=len(body), appendpos_condition=tail.size)
            except ResourceNotFoundError:  # deleted under us (or no container): start again
                self._tails.pop(name, None)
                continue
            except HttpResponseError as exc:
                code = _code(exc)
                if code == "AppendPositionConditionNotMet":
                    if self._landed(blob, tail, body):
                        return
                    continue  # another writer appended: ours goes after, at the real end
                if code in ("BlockCountExceedsLimit", "BlobIsSealed"):
                    self._roll(key, name, tail)
                    continue
                if code == "InvalidBlobType" and tail.segment == 0:
                    self._tails.pop(name, None)  # a block blob was put there: convert it
                    continue
                raise
            tail.size = int(done["blob_append_offset"]) + len(body)
            tail.blocks = int(done["blob_committed_block_count"])
            return
        raise StoreError(
            f"could not append to {key!r} in {self._where()}: its end kept moving or it kept "
            f"being replaced through {APPEND_ATTEMPTS} attempts (another writer?)."
        )

    def _landed(self, blob: Any, tail: _Tail, body: bytes) -> bool:
        """After a 412 on the append position: did an earlier attempt of this very append
        (an SDK retry after a lost answer) already write `body` at `tail.size`? Either way
        `tail` moves to the blob's real end. (Only the same bytes written at that exact place
        by another writer at that moment could be taken for ours.)"""
        props = blob.get_blob_properties()
        end = tail.size + len(body)
        landed = props.size >= end and blob.download_blob(
            offset=tail.size, length=len(body)).readall() == body
        log.debug("append position %d of %s was taken: %s", tail.size, blob.blob_name,
                  "our earlier attempt had landed" if landed else "another writer appended")
        tail.size, tail.blocks = int(props.size), int(props.append_blob_committed_block_count or 0)
        return landed

    def _tail(self, key: str, name: str) -> _Tail:
        """Where this process appends next: the last segment, its size and block count (two
        requests the first time, then known from each append's answer)."""
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        tail = self._tails.get(name)
        if tail is not None:
            return tail
        segment = max(self._segments(name), default=0)
        blob = self._container.get_blob_client(_segment_name(name, segment))
        for attempt in range(3):
            try:
                props = blob.get_blob_properties()
            except ResourceNotFoundError:
                if attempt == 2:
                    raise
                self._create_append_blob(key, blob)
                continue
            if _blob_type(props) != "AppendBlob":
                if segment != 0 or attempt == 2:
                    raise ResourceExistsError(f"{blob.blob_name} is not an Append Blob")
                self._convert_to_append_blob(key, blob)
                continue
            tail = _Tail(segment, int(props.size),
                         int(props.append_blob_committed_block_count or 0))
            self._tails[name] = tail
            return tail
        raise AssertionError("unreachable")

    def _roll(self, key: str, name: str, tail: _Tail) -> _Tail:
        """Seal the full segment (no writer can add to it any more), then create the next: a
        reader that sees the next one may take the previous one as complete."""
        from azure.core.exceptions import HttpResponseError

        blob = self._container.get_blob_client(_segment_name(name, tail.segment))
        try:
            blob.seal_append_blob()
        except HttpResponseError as exc:  # already sealed is fine; anything else is logged
            if _code(exc) != "BlobIsSealed":
                log.debug("could not seal %s (%s); rolling over anyway", blob.blob_name,
                          _code(exc) or exc.status_code)
        self._tails.pop(name, None)
        following = self._container.get_blob_client(_segment_name(name, tail.segment + 1))
        self._create_append_blob(key, following)
        props = following.get_blob_properties()
        rolled = _Tail(tail.segment + 1, int(props.size),
                       int(props.append_blob_committed_block_count or 0))
        self._tails[name] = rolled
        log.info("log %s: segment %d is full; continuing in %s", key, tail.segment,
                 following.blob_name)
        return rolled

    def _segments(self, name: str) -> list[int]:
        """The numbers of the segments after the first (one listing)."""
        from azure.core.exceptions import ResourceNotFoundError

        start = name + SEGMENT_MARK
        try:
            names = list(self._container.list_blob_names(name_starts_with=start))
        except ResourceNotFoundError:
            return []
        return sorted(int(n[len(start) :]) for n in names if _SEGMENT_RE.fullmatch(n[len(name) :]))

    def _create_append_blob(self, key: str, blob: Any) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        for attempt in range(2):
            try:  # IfMissing: never clobber a log another writer created a moment ago
                blob.create_append_blob(match_condition=MatchConditions.IfMissing)
                return
            except (ResourceExistsError, ResourceModifiedError):
                return
            except ResourceNotFoundError as exc:
                if _code(exc) != "ContainerNotFound" or attempt == 1:
                    raise
                self._create_container(key)

    def _convert_to_append_blob(self, key: str, blob: Any) -> None:
        """Replace a block blob by an append blob with the same bytes."""
        old = memoryview(self._consistent_read(key, lambda: blob.download_blob().readall()))
        blob.create_append_blob()
        for i in range(0, len(old), self.append_block_limit):
            piece = old[i : i + self.append_block_limit].tobytes()
            blob.append_block(piece, length=len(piece), appendpos_condition=i)

    # ---- reading -------------------------------------------------------------------------

    def get(self, key: str) -> bytearray:
        """The whole object in one preallocated buffer (downloaded in parallel, one copy); a
        log in several segments comes back whole, as one stream."""
        name = self._name(key)
        blob = self._container.get_blob_client(name)
        started = time.perf_counter()
        kind: list[str] = []

        def download() -> bytearray:
            stream = blob.download_blob(max_concurrency=self.max_concurrency)
            kind[:] = [_blob_type(stream.properties)]
            writer = _BufferWriter(bytearray(stream.size))
            stream.readinto(writer)
            return writer.buffer

        buffer = self._consistent_read(key, download)
        if kind == ["AppendBlob"] and self._has_segment(key, name, 1):
            buffer = bytearray(self.read(key))
        log.debug("get %s/%s: %d bytes in %.3f s", self.container, name, len(buffer),
                  time.perf_counter() - started)
        return buffer

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """A byte range; an offset at or past the end gives b'' (how logs are followed).

        A log's segments read as one stream: offsets count from the start of the first. Where
        the bytes read end short (a follower caught up), one more request asks whether the
        log went on in a next segment.
        """
        name = self._name(key)
        if offset < 0 or (length is not None and length < 0):
            raise StoreError(f"read of {key!r}: offset and length must not be negative.")
        if length == 0:
            if not self.exists(key):
                raise self._not_found(key)
            return b""
        complete = self._complete.setdefault(name, [])
        segment, local = 0, offset
        while segment < len(complete) and local >= complete[segment]:
            local -= complete[segment]
            segment += 1
        out: list[bytes] = []
        want = length
        while True:
            data = self._read_range(key, _segment_name(name, segment), local, want)
            out.append(data)
            local += len(data)
            if want is not None:
                want -= len(data)
                if want == 0:
                    break
            if segment < len(complete):  # a complete segment: go on in the next
                if local >= complete[segment]:
                    segment, local = segment + 1, 0
                continue
            if not self._has_segment(key, name, segment + 1):
                break  # the end of the log, for now
            size = self._complete_size(key, name, segment)
            if size is None:
                break
            if len(complete) == segment:
                complete.append(size)
            if local >= size:
                segment, local = segment + 1, 0
            # else: bytes appended to this segment between our read and its roll-over
        return b"".join(out)

    def _read_range(self, key: str, name: str, offset: int, length: int | None) -> bytes:
        from azure.core.exceptions import HttpResponseError

        blob = self._container.get_blob_client(name)

        def download() -> bytes:
            try:
                return blob.download_blob(
                    offset=offset, length=length, max_concurrency=self.max_concurrency
                ).readall()
            except HttpResponseError as exc:
                if exc.status_code == 416:  # range starts past the end: the blob exists
                    return b""
                raise

        return self._consistent_read(key, download)

    def _has_segment(self, key: str, name: str, segment: int) -> bool:
        blob = self._container.get_blob_client(_segment_name(name, segment))
        with self._errors(key, "check"):
            return bool(blob.exists())

    def _complete_size(self, key: str, name: str, segment: int) -> int | None:
        """The final size of a segment that has a successor (the writer sealed it before
        creating that); None if the first "segment" is not a log (an object `put` over one)."""
        blob = self._container.get_blob_client(_segment_name(name, segment))
        with self._errors(key, "read the size of"):
            props = blob.get_blob_properties()
        if _blob_type(props) != "AppendBlob":
            return None
        return int(props.size)

    def get_file(self, key: str, path: str) -> None:
        """Download to `path`, through a temp file beside it, so it appears only when whole
        (a log in several segments as one stream)."""
        name = self._name(key)
        blob = self._container.get_blob_client(name)
        target = os.path.abspath(path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                kind: list[str] = []

                def download() -> None:
                    out.seek(0)
                    out.truncate()
                    stream = blob.download_blob(max_concurrency=self.max_concurrency)
                    kind[:] = [_blob_type(stream.properties)]
                    stream.readinto(out)

                self._consistent_read(key, download)
                if kind == ["AppendBlob"] and self._has_segment(key, name, 1):
                    out.seek(0)
                    out.truncate()
                    out.write(self.read(key))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def exists(self, key: str) -> bool:
        blob = self._container.get_blob_client(self._name(key))
        with self._errors(key, "check"):
            return bool(blob.exists())

    def modified(self, key: str) -> float:
        blob = self._container.get_blob_client(self._name(key))
        with self._errors(key, "read the time of"):
            return blob.get_blob_properties().last_modified.timestamp()

    def size(self, key: str) -> int:
        """Size in bytes; of a log, all its segments together."""
        name = self._name(key)
        blob = self._container.get_blob_client(name)
        with self._errors(key, "read the size of"):
            props = blob.get_blob_properties()
            if _blob_type(props) != "AppendBlob":
                return int(props.size)
            start = name + SEGMENT_MARK
            return int(props.size) + sum(
                int(b.size) for b in self._container.list_blobs(name_starts_with=start)
                if _SEGMENT_RE.fullmatch(b.name[len(name) :])
            )

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a plain string prefix, as LocalStore), sorted; the segments of
        a log are part of its key, not keys."""
        from azure.core.exceptions import ResourceNotFoundError

        start = self._full(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._errors(prefix or "/", "list"):
            try:
                names = [n[strip:] for n in self._container.list_blob_names(name_starts_with=start)
                         if not _SEGMENT_RE.search(n)]
            except ResourceNotFoundError:  # no container yet: nothing stored
                names = []
        return iter(sorted(names))

    # ---- deleting ------------------------------------------------------------------------

    def delete(self, prefix: str) -> int:
        """Delete one key (with its log segments), or every key under `prefix/`; returns how
        many objects went (a log counts once)."""
        from azure.core.exceptions import ResourceNotFoundError

        name = self._name(prefix)
        with self._append_lock:
            for known in (self._tails, self._complete):
                for cached in [n for n in known if n == name or n.startswith(name + "/")]:
                    del known[cached]
        if not prefix.endswith("/"):
            with self._errors(prefix, "delete"):
                try:
                    self._container.get_blob_client(name).delete_blob()
                    deleted = 1
                except ResourceNotFoundError:
                    deleted = 0
                segments = [_segment_name(name, n) for n in self._segments(name)]
                if deleted or segments:
                    self._delete_many(segments)
                    return 1
        with self._errors(prefix, "delete"):
            try:
                names = list(self._container.list_blob_names(name_starts_with=name + "/"))
            except ResourceNotFoundError:
                return 0
            return self._delete_many(names)

    def _delete_many(self, names: list[str]) -> int:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        count = 0
        for i in range(0, len(names), DELETE_BATCH):
            batch = names[i : i + DELETE_BATCH]
            try:
                responses = self._container.delete_blobs(*batch, raise_on_any_failure=False)
                count += sum(1 for n, r in zip(batch, responses, strict=False)
                             if r.status_code == 202 and not _SEGMENT_RE.search(n))
            except ClientAuthenticationError:
                raise
            except HttpResponseError as exc:  # no batch API here: one request per blob
                log.debug("blob batch delete refused (%s); deleting one by one", _code(exc))
                count += self._delete_each(batch)
        return count

    def _delete_each(self, names: list[str]) -> int:
        from concurrent.futures import ThreadPoolExecutor

        from azure.core.exceptions import ResourceNotFoundError

        def one(name: str) -> int:
            try:
                self._container.get_blob_client(name).delete_blob()
                return 0 if _SEGMENT_RE.search(name) else 1
            except ResourceNotFoundError:
                return 0

        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return sum(pool.map(one, names))

    def close(self) -> None:
        """Close connection pools (the store is unusable afterwards)."""
        self._service.close()
        if self._credential is not None:
            self._credential.close()

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers -------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        """The blob name of a key, with the same key rules as LocalStore."""
        if (
            not isinstance(key, str)
            or not key
            or key.startswith("/")
            or "\\" in key
            or any(part in ("", ".", "..") for part in key.rstrip("/").split("/"))
        ):
            raise StoreError(f"{key!r} is not a valid store key (relative, '/'-separated).")
        return self._full(key.rstrip("/"))

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return f"container {self.container!r} of {self.account_url} (store {self.url})"

    def _not_found(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"no object {key!r} in {self._where()}")

    def _write(self, key: str, operation: Callable[[], None], *, blob: Any,
               rewindable: bool) -> None:
        """Run a write; create the container if missing, replace an append blob in the way."""
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        with self._errors(key, "write"):
            for attempt in range(3):
                try:
                    operation()
                    self._container_known = True
                    return
                except ResourceNotFoundError as exc:
                    if _code(exc) != "ContainerNotFound" or attempt == 2:
                        raise
                    self._create_container(key)
                except ResourceExistsError as exc:  # block upload over an append blob
                    if _code(exc) != "InvalidBlobType" or attempt == 2 or not rewindable:
                        raise
                    with contextlib.suppress(ResourceNotFoundError):
                        blob.delete_blob()

    def _create_container(self, key: str) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        try:
            self._container.create_container()
            log.info("created container %r in %s", self.container, self.account_url)
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise StoreAccessError(
                    f"container {self.container!r} does not exist in {self.account_url} and "
                    f"this identity may not create it ({_code(exc)}). Ask your admin to run "
                    "`aksrun admin add-user <you>`, which creates it with access for you and "
                    "your pods only (check AKSRUN_STORE names your container), then retry."
                ) from None
            raise
        self._container_known = True

    def _probe_container(self, key: str) -> None:
        """Before streaming a one-shot iterator, make sure the container exists (a failed
        first block could not be sent again)."""
        if self._container_known:
            return
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        with self._errors(key, "write"):
            try:
                self._container.get_container_properties()
            except ResourceNotFoundError:
                self._create_container(key)
            except HttpResponseError as exc:
                if exc.status_code != 403:  # may write blobs but not read the container
                    raise
        self._container_known = True

    def _consistent_read(self, key: str, download: Callable[[], _T]) -> _T:
        """Run a download again if the object was replaced mid-way (the SDK pins the ETag)."""
        from azure.core.exceptions import ResourceModifiedError

        with self._errors(key, "read"):
            for attempt in range(CONSISTENT_READ_ATTEMPTS):
                try:
                    return download()
                except ResourceModifiedError:
                    if attempt == CONSISTENT_READ_ATTEMPTS - 1:
                        raise
                    log.debug("%s changed while being read; reading it again", key)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _errors(self, key: str, action: str) -> Iterator[None]:
        """Turn SDK exceptions into StoreErrors that say which object, why, and the fix."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        try:
            yield
        except StoreError:
            raise
        except ResourceNotFoundError as exc:
            if _code(exc) in ("BlobNotFound", "ContainerNotFound", None):
                raise self._not_found(key) from None
            raise self._failure(key, action, exc) from None
        except ClientAuthenticationError as exc:
            if getattr(exc, "response", None) is None:  # from the credential, not the service
                raise StoreAccessError(_credential_message(self.account_url, exc)) from None
            raise self._failure(key, action, exc) from None
        except HttpResponseError as exc:
            raise self._failure(key, action, exc) from None
        except ServiceRequestError as exc:
            raise StoreError(
                f"could not reach {self.account_url} to {action} {key!r}: {exc.message}. "
                "Check the account name/URL and the network (a private endpoint or firewall?)."
            ) from None
        except AzureError as exc:
            raise StoreError(f"could not {action} {key!r} in {self._where()}: {exc}") from None

    def _failure(self, key: str, action: str, exc: Any) -> StoreError:
        code = _code(exc)
        status = getattr(exc, "status_code", None)
        if code in ("AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"):
            return StoreAccessError(
                f"not allowed to {action} {key!r} in {self._where()} ({code}): the identity "
                f"(or SAS) in use lacks permission there. Grant it {ROLE} on "
                f"{self._container_scope()} (`aksrun admin add-user` does this), then retry; "
                "role assignments take a few minutes to apply."
            )
        if status == 403 and self._credential is None:
            return StoreAccessError(
                f"the storage account refused to {action} {key!r} in {self._where()} "
                f"({code or status}): the account key, SAS or connection string was rejected, "
                "or the account blocks this network or shared-key access. Check "
                "AKSRUN_STORAGE_CONNECTION_STRING, or unset it to use DefaultAzureCredential "
                f"(then {ROLE} on {self._container_scope()} is needed)."
            )
        if status in (401, 403):
            return StoreAccessError(
                f"the storage account refused the Azure token to {action} {key!r} in "
                f"{self._where()} ({code or status}): the account may block this network "
                "(firewall or private endpoint only), or the token is for another tenant "
                "(check `az account show`), or the identity lacks "
                f"{ROLE} on {self._container_scope()}."
            )
        reason = (getattr(exc, "reason", None) or "").strip()
        return StoreError(
            f"could not {action} {key!r} in {self._where()}: HTTP {status} {code or reason}: "
            f"{_first_line(getattr(exc, 'message', None) or str(exc))}"
        )

    def _account_scope(self) -> str:
        """The ARM id of the account, as `az role assignment create --scope` wants it."""
        return (
            f"/subscriptions/{self._subscription_id or '<subscription-id>'}"
            f"/resourceGroups/{self._resource_group or '<resource-group>'}"
            f"/providers/Microsoft.Storage/storageAccounts/{self.account_name or '<account>'}"
        )

    def _container_scope(self) -> str:
        return f"{self._account_scope()}/blobServices/default/containers/{self.container}"


class _Tail:
    """Where this process appends next to one log: segment number, its size, its blocks."""

    __slots__ = ("blocks", "segment", "size")

    def __init__(self, segment: int, size: int, blocks: int) -> None:
        self.segment, self.size, self.blocks = segment, size, blocks


def _segment_name(name: str, segment: int) -> str:
    return name if segment == 0 else f"{name}{SEGMENT_MARK}{segment:06d}"


def _blob_type(props: Any) -> str:
    kind = getattr(props, "blob_type", None)
    return str(getattr(kind, "value", kind))


# ---- streams -------------------------------------------------------------------------------


class _PartsReader(io.RawIOBase):
    """A seekable stream over buffers, read in place (seekable, so SDK retries can rewind)."""

    def __init__(self, parts: Iterable[Buffer]) -> None:
        super().__init__()
        self._views = [v for v in (_bytes_view(p) for p in parts) if len(v)]
        self._starts = list(itertools.accumulate((len(v) for v in self._views), initial=0))
        self.size = self._starts[-1]
        self._pos = 0
        self._index = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        self._index = 0
        return self._pos

    def __len__(self) -> int:
        return self.size

    def _pieces(self, count: int) -> Iterator[memoryview]:
        """Slices of the parts covering the next `count` bytes (advances the position)."""
        while count > 0 and self._pos < self.size:
            while self._starts[self._index + 1] <= self._pos:
                self._index += 1
            view = self._views[self._index]
            start = self._pos - self._starts[self._index]
            piece = view[start : start + count]
            self._pos += len(piece)
            count -= len(piece)
            yield piece

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        for piece in self._pieces(len(target)):
            target[filled : filled + len(piece)] = piece
            filled += len(piece)
        return filled

    def read(self, size: int | None = -1) -> bytes:
        """Bytes straight from the parts: one copy (RawIOBase.read would make two)."""
        if size is None or size < 0:
            size = self.size - self._pos
        pieces = list(self._pieces(size))
        return pieces[0].tobytes() if len(pieces) == 1 else b"".join(pieces)

    def readall(self) -> bytes:
        return self.read(-1)


class _IterReader(io.RawIOBase):
    """A one-way stream over an iterator of buffers (total size unknown)."""

    def __init__(self, parts: Iterator[Buffer]) -> None:
        super().__init__()
        self._parts = parts
        self._current = memoryview(b"")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        out: list[memoryview] = []
        want = float("inf") if size is None or size < 0 else size
        got = 0
        while got < want:
            if not len(self._current):
                part = next(self._parts, None)
                if part is None:
                    break
                self._current = _bytes_view(part)
                continue
            take = self._current[: int(min(want - got, len(self._current)))]
            self._current = self._current[len(take) :]
            out.append(take)
            got += len(take)
        self._pos += got
        return out[0].tobytes() if len(out) == 1 else b"".join(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class _BufferWriter(io.RawIOBase):
    """A seekable writer into a preallocated bytearray (parallel download target)."""

    def __init__(self, buffer: bytearray) -> None:
        super().__init__()
        self.buffer = buffer
        self._view = memoryview(buffer)
        self._pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self.buffer)}[whence]
        self._pos = base + offset
        return self._pos

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        end = self._pos + len(view)
        if end > len(self._view):
            raise StoreError("the object grew while it was being downloaded; read it again.")
        self._view[self._pos : end] = view
        self._pos = end
        return len(view)


# ---- module helpers -------------------------------------------------------------------------


def _bytes_view(part: Buffer) -> memoryview:
    view = memoryview(part)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _split_known(data: Buffer | Iterable[Buffer], limit: int) -> tuple[list[Buffer], Any]:
    """The parts, and None if that is all of them; or the parts read so far (over `limit`
    bytes) and the rest of the iterator."""
    if isinstance(data, bytes | bytearray | memoryview):
        return [data], None
    if isinstance(data, list | tuple):
        return list(data), None
    iterator = iter(data)
    parts: list[Buffer] = []
    total = 0
    for part in iterator:
        parts.append(part)
        total += memoryview(part).nbytes
        if total > limit:
            return parts, iterator
    return parts, None


def _clean_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix and any(p in ("", ".", "..") or "\\" in p for p in prefix.split("/")):
        raise ConfigError(f"store prefix {prefix!r} is not valid; use 'a/b' style names.")
    return prefix


def _code(exc: Any) -> str | None:
    code = getattr(exc, "error_code", None)
    return None if code is None else str(getattr(code, "value", code))


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _credential_message(account_url: str, exc: Exception) -> str:
    detail = " ".join(str(getattr(exc, "message", None) or exc).split())
    return (
        f"could not get a token for {account_url}: DefaultAzureCredential tried its sources "
        "in order - environment (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), "
        "workload identity (AZURE_FEDERATED_TOKEN_FILE, in an AKS pod), managed identity, "
        "Azure CLI, Azure PowerShell, Azure Developer CLI - and none gave a token. On a "
        "laptop run `az login`; in CI set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET; "
        "in a pod check the service account's workload identity. For Azurite set "
        f"AKSRUN_STORAGE_CONNECTION_STRING instead. Details: {detail}"
    )


_RETRY_CLASS: Any = None


def _retry_policy(total: int, backoff: float, window: float = RETRY_WINDOW) -> Any:
    """The SDK's ExponentialRetry, bounded by time, with each retry logged (it logs none).

    The SDK stops at the first of its counts to run out: total, and connect / read / status
    (each 3 unless given). Passing `total` alone left a refused connection 3 retries, 6 s.
    Here all four get `total`, and `window` (seconds since the request's first attempt) ends
    the retries whatever their kind: so the tolerated outage is a duration, the same for
    refused connections, time-outs and 5xx, and per-attempt time-outs can't stretch it much.
    """
    global _RETRY_CLASS
    if _RETRY_CLASS is None:
        from azure.core.exceptions import ClientAuthenticationError
        from azure.storage.blob import ExponentialRetry

        class LoggedExponentialRetry(ExponentialRetry):
            window: float = RETRY_WINDOW

            def configure_retries(self, request: Any) -> dict:
                settings = super().configure_retries(request)
                settings["started"] = time.monotonic()
                return settings

            def increment(self, settings: dict, request: Any, response: Any = None,
                          error: Any = None) -> bool:
                if isinstance(error, ClientAuthenticationError) and response is None:
                    return False  # no token: DefaultAzureCredential already tried every source
                if _unresolvable(error):
                    return False  # the host name does not exist: a wrong account, no outage
                if time.monotonic() - settings["started"] >= self.window:
                    return False
                again = super().increment(settings, request, response=response, error=error)
                if again:
                    if response is not None:
                        reason = f"HTTP {response.status_code}"
                    else:
                        reason = f"{type(error).__name__}: {error}"
                    log.debug(
                        "retry %d/%d of %s %s after %s (%.0f s of %.0f s spent)",
                        settings["count"], self.total_retries, request.method,
                        _redact(request.url), reason,
                        time.monotonic() - settings["started"], self.window,
                    )
                return again

            def get_backoff_time(self, settings: dict) -> float:
                """backoff x 1, 2, 4, 8... up to RETRY_BACKOFF_MAX, +-20% jitter (0: at once)."""
                base = min(self.initial_backoff * 2 ** max(0, settings["count"] - 1),
                           RETRY_BACKOFF_MAX)
                return random.uniform(0.8 * base, 1.2 * base) if base > 0 else 0.0

        _RETRY_CLASS = LoggedExponentialRetry
    policy = _RETRY_CLASS(
        initial_backoff=backoff, increment_base=2, retry_total=total,
        retry_connect=total, retry_read=total, retry_status=total,
    )
    policy.window = window
    return policy


def _unresolvable(error: Any) -> bool:
    """Whether a request failed because DNS says the host does not exist (a misspelt account
    name): retrying for the whole window would only delay the message that says so."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
        pending += [current.__cause__, current.__context__,
                    getattr(current, "inner_exception", None), getattr(current, "reason", None)]
        pending += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
    return False


def _redact(url: str) -> str:
    """A request URL without its query (which may hold a SAS signature)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
