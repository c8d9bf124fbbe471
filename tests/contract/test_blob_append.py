"""BlobStore logs and retries on Azurite: a log rolls over to new segments before an Append
Blob's 50,000-block limit and reads back as one stream; an append lands once even when its
answer is lost; append failures are logged, not swallowed; and a store outage of ~20 s is
ridden out (issue 11, items 6 and 12).

Azurite enforces the limit as Azure does (measured: 50,000 appends of 1 byte took 127 s, the
50,001st got 409 BlockCountExceedsLimit), too slow for a test: these lower
`blob_store.SEGMENT_BLOCKS`, and a sealed blob stands in for a full one (same refusal path).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aksrun.adapters import blob_store
from aksrun.adapters.blob_store import BlobStore
from aksrun.core.lifecycle import follow_object
from aksrun.errors import StoreError
from aksrun.runner.logtee import LogSink
from tests.support.azurite import (
    ACCOUNT,
    ACCOUNT_KEY,
    HOST,
    Azurite,
    RestartableAzurite,
    free_port,
)

pytestmark = pytest.mark.azurite

KEY = "jobs/j-1/logs/00000.log"


def _store(server: Azurite, container: str, **tuning) -> BlobStore:
    return BlobStore(container, "p", connection_string=server.connection_string, **tuning)


def _blob_names(server: Azurite, container: str) -> list[str]:
    return sorted(server.service_client().get_container_client(container).list_blob_names())


# ---- roll-over -------------------------------------------------------------------------------


def test_log_rolls_over_before_the_block_limit_and_reads_as_one_stream(
    azurite: Azurite, new_container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_store, "SEGMENT_BLOCKS", 3, raising=False)
    container = new_container(azurite, create=True)
    writer = _store(azurite, container, append_block_limit=8)
    follower = _store(azurite, container)  # another process: knows nothing of the writer
    pieces = [f"line {i:02d} {'x' * (i % 13)}\n".encode() for i in range(20)]
    followed, offset = [], 0
    for piece in pieces:
        writer.append(KEY, piece)
        data = follower.read(KEY, offset)  # what `follow_object` does, one poll per append
        offset += len(data)
        followed.append(data)
    whole = b"".join(pieces)
    assert b"".join(followed) == whole  # every byte, in order, none twice

    names = _blob_names(azurite, container)
    segments = [n for n in names if "~seg-" in n]
    assert len(segments) >= 5, names  # pieces over 8 bytes went in several blocks
    service = azurite.service_client().get_container_client(container)
    for name in [f"p/{KEY}", *segments]:
        props = service.get_blob_client(name).get_blob_properties()
        assert props.blob_type == "AppendBlob"
        assert props.append_blob_committed_block_count <= 3, name

    fresh = _store(azurite, container)
    assert fresh.read(KEY) == whole
    assert bytes(fresh.get(KEY)) == whole
    assert fresh.size(KEY) == len(whole)
    for start, length in [(0, 5), (7, 40), (len(whole) - 9, 100), (len(whole), None)]:
        assert fresh.read(KEY, start, length) == whole[start : start + (length or len(whole))]
    fresh.get_file(KEY, str(tmp_path / "log.txt"))
    assert (tmp_path / "log.txt").read_bytes() == whole
    assert list(fresh.list("jobs/")) == [KEY]  # segments are part of the log, not keys

    later = _store(azurite, container)  # a retried task appends to the same log
    later.append(KEY, b"after a restart\n")
    assert writer.read(KEY) == whole + b"after a restart\n"
    assert list(follow_object(fresh, KEY, lambda: False)) == [whole + b"after a restart\n"]

    assert fresh.delete("jobs/j-1/") == 1
    assert _blob_names(azurite, container) == []


def test_a_full_segment_is_continued_in_a_new_one(azurite: Azurite, new_container) -> None:
    """A segment the service refuses (sealed here; 409 BlockCountExceedsLimit at 50,000
    blocks goes the same way) no longer stops the log: before, every later append failed."""
    container = new_container(azurite, create=True)
    store = _store(azurite, container)
    store.append(KEY, b"before\n")
    azurite.service_client().get_blob_client(container, f"p/{KEY}").seal_append_blob()
    store.append(KEY, b"after\n")
    assert _store(azurite, container).read(KEY) == b"before\nafter\n"
    assert _blob_names(azurite, container) == [f"p/{KEY}", f"p/{KEY}~seg-000001"]


def test_follower_sees_bytes_appended_just_before_a_roll_over(
    azurite: Azurite, new_container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower reads the end of segment 0; the writer adds to it, then rolls over: the
    follower must still get the bytes added in between (the sealed size is read afresh)."""
    monkeypatch.setattr(blob_store, "SEGMENT_BLOCKS", 2, raising=False)
    container = new_container(azurite, create=True)
    writer, follower = _store(azurite, container), _store(azurite, container)
    writer.append(KEY, b"a")
    assert follower.read(KEY, 0) == b"a"
    writer.append(KEY, b"b")  # the second block: segment 0 is full
    writer.append(KEY, b"c")  # rolls over
    assert follower.read(KEY, 1) == b"bc"


# ---- exactly once ----------------------------------------------------------------------------


class DropFirstAppendAnswer:
    """A TCP proxy to Azurite that forwards every request but, for the first `drops` Append
    Block requests, closes the connection instead of passing the answer back: the server
    applied the append, the client never hears so (a lost response)."""

    def __init__(self, upstream_port: int, drops: int = 1) -> None:
        self.upstream_port, self.drops = upstream_port, drops
        self.dropped = 0
        self.positions: list[str | None] = []
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        import http.client

        with client, client.makefile("rb") as reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (header := reader.readline().decode()) not in ("\r\n", ""):
                    name, _, value = header.partition(":")
                    headers[name.strip()] = value.strip()
                body = reader.read(int(headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(HOST, self.upstream_port, timeout=30)
                upstream.request(method, path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if "comp=appendblock" in path:
                    lowered = {k.lower(): v for k, v in headers.items()}
                    self.positions.append(lowered.get("x-ms-blob-condition-appendpos"))
                    if self.dropped < self.drops and answer.status == 201:
                        self.dropped += 1
                        return  # applied upstream; the client gets a closed connection
                out = [f"HTTP/1.1 {answer.status} {answer.reason}"]
                out += [f"{k}: {v}" for k, v in answer.getheaders()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                length = answer.getheader("Content-Length") if method == "HEAD" else None
                out.append(f"Content-Length: {length or len(data)}")
                client.sendall(("\r\n".join(out) + "\r\n\r\n").encode()
                               + (b"" if method == "HEAD" else data))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def drop_proxy(azurite: Azurite) -> Iterator[DropFirstAppendAnswer]:
    proxy = DropFirstAppendAnswer(azurite.port)
    yield proxy
    proxy.close()


def _via(server: Azurite, port: int, container: str, **tuning) -> BlobStore:
    connection = server.connection_string.replace(f":{server.port}/", f":{port}/")
    return BlobStore(container, "p", connection_string=connection, retry_backoff=0, **tuning)


def test_sdk_retry_after_a_lost_answer_does_not_duplicate(
    azurite: Azurite, new_container, drop_proxy: DropFirstAppendAnswer
) -> None:
    container = new_container(azurite, create=True)
    store = _via(azurite, drop_proxy.port, container)
    store.append(KEY, b"one\n")  # applied, answer lost, retried by the SDK (412 there)
    store.append(KEY, b"two\n")
    assert drop_proxy.dropped == 1
    assert _store(azurite, container).read(KEY) == b"one\ntwo\n"
    assert drop_proxy.positions == ["0", "0", "4"]  # every append says where it must land


def test_caller_retry_after_a_lost_answer_does_not_duplicate(
    azurite: Azurite, new_container, drop_proxy: DropFirstAppendAnswer
) -> None:
    """The SDK gives up (no retries left) though the append landed; the caller appends the
    same text again: it is found in place, not written twice."""
    container = new_container(azurite, create=True)
    store = _via(azurite, drop_proxy.port, container, retry_total=0)
    with pytest.raises(StoreError):
        store.append(KEY, b"one\n")
    store.append(KEY, b"one\n")
    store.append(KEY, b"two\n")
    assert _store(azurite, container).read(KEY) == b"one\ntwo\n"


def test_another_writer_in_between_loses_nothing(azurite: Azurite, new_container) -> None:
    container = new_container(azurite, create=True)
    first, second = _store(azurite, container), _store(azurite, container)
    first.append(KEY, b"1\n")
    second.append(KEY, b"2\n")
    first.append(KEY, b"3\n")  # its position is stale: 412, then appended at the real end
    assert first.read(KEY) == b"1\n2\n3\n"


# ---- errors are not swallowed ----------------------------------------------------------------


def test_append_failure_is_logged_raised_and_reported_by_the_log_tee(
    azurite: Azurite, new_container, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    container = new_container(azurite, create=True)
    port = free_port()  # nothing listens there
    store = _via(azurite, port, container, retry_total=1)
    caplog.set_level(logging.WARNING, logger="aksrun.store")
    with pytest.raises(StoreError, match="could not reach"):
        store.append(KEY, b"lost\n")
    warnings = [r.getMessage() for r in caplog.records if r.name == "aksrun.store"]
    assert any("could not append 5 bytes to " + KEY in m for m in warnings), warnings

    sink = LogSink(store, KEY, interval=0.05)
    sink.write("also lost\n")
    sink.close()
    assert f"output could not be appended to {KEY}" in capfd.readouterr().err


# ---- retries ---------------------------------------------------------------------------------


def test_retry_policy_counts_agree_and_the_window_binds() -> None:
    policy = blob_store._retry_policy(blob_store.RETRY_TOTAL, blob_store.RETRY_BACKOFF)
    total = blob_store.RETRY_TOTAL
    assert (policy.total_retries, policy.connect_retries, policy.read_retries,
            policy.status_retries) == (total, total, total, total)
    assert policy.window == blob_store.RETRY_WINDOW >= 6 * 60
    shortest = sum(
        0.8 * min(blob_store.RETRY_BACKOFF * 2 ** (n - 1), blob_store.RETRY_BACKOFF_MAX)
        for n in range(1, total + 1)
    )
    assert shortest >= blob_store.RETRY_WINDOW  # the count never ends retries before the window


def test_retries_against_a_refused_port_last_the_window() -> None:
    """Before: 3 connect retries whatever retry_total said (6 s with 1+2+4 s of back-off)."""
    port = free_port()
    connection = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey="
                  f"{ACCOUNT_KEY};BlobEndpoint=http://{HOST}:{port}/{ACCOUNT};")
    store = BlobStore("refused", connection_string=connection, retry_backoff=0.25,
                      retry_window=4.0)
    started = time.monotonic()
    with pytest.raises(StoreError, match="could not reach"):
        store.get("x")
    assert 4.0 <= time.monotonic() - started < 12


def test_unresolvable_host_is_not_retried() -> None:
    from azure.core.exceptions import ServiceRequestError

    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise ConnectionError("Max retries exceeded") from exc
    except ConnectionError as wrapped:
        error = ServiceRequestError(str(wrapped), error=wrapped)
    assert blob_store._unresolvable(error)
    assert not blob_store._unresolvable(ServiceRequestError("Connection refused"))
    transient = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert not blob_store._unresolvable(ServiceRequestError("x", error=transient))


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[RestartableAzurite]:
    server = RestartableAzurite(tmp_path / "azurite")
    server.location.mkdir()
    server.start()
    yield server
    server.stop()


OUTAGE = 20.0


def test_store_outage_of_20_seconds_is_ridden_out(own_azurite: RestartableAzurite) -> None:
    """Azurite is stopped for 20 s, then started again on the same port with the same data:
    a get, a put and an append issued during the outage all complete once it is back."""
    store = BlobStore("outage", connection_string=own_azurite.connection_string)
    store.put("inputs/0", b"payload")
    store.append(KEY, b"before\n")
    own_azurite.stop()
    stopped = time.monotonic()
    threading.Timer(OUTAGE, own_azurite.start).start()
    assert bytes(store.get("inputs/0")) == b"payload"
    assert time.monotonic() - stopped >= OUTAGE - 1
    store.put("outputs/0", b"result")
    store.append(KEY, b"after\n")
    assert store.read(KEY) == b"before\nafter\n"
    assert bytes(store.get("outputs/0")) == b"result"
