"""One Store contract, the same tests for every implementation (see conftest.py's set-ups)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from aksrun.core import envelope
from aksrun.errors import IntegrityError, ObjectNotFoundError, StoreError
from aksrun.ports.store import Store

from .conftest import SMALL_BLOCKS, StoreSetup

MiB = 1024 * 1024


def test_store_satisfies_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store.url, str) and store.url


@pytest.mark.parametrize(
    "data",
    [b"hello", bytearray(b"bytearray"), memoryview(b"memoryview"), b"", bytes(range(256)) * 99],
    ids=["bytes", "bytearray", "memoryview", "empty", "binary"],
)
def test_put_get_roundtrip(store: Store, data: bytes) -> None:
    store.put("obj/one", data)
    got = store.get("obj/one")
    assert bytes(got) == bytes(data)
    assert store.size("obj/one") == len(data)


def test_put_multipart_parts_are_concatenated(store: Store) -> None:
    floats = np.linspace(0, 1, 1000)
    parts = [b"head", bytearray(b"-mid-"), memoryview(b"view"), b"", memoryview(floats)]
    expected = b"head-mid-view" + floats.tobytes()
    store.put("parts/list", parts)
    store.put("parts/tuple", tuple(parts))
    store.put("parts/generator", (p for p in parts))
    for key in ("parts/list", "parts/tuple", "parts/generator"):
        assert bytes(store.get(key)) == expected, key


def test_put_long_iterator_of_unknown_size(store_setup: StoreSetup) -> None:
    store = store_setup.open(**SMALL_BLOCKS) if store_setup.is_blob else store_setup.open()
    chunk = os.urandom(100_000)
    store.put("stream/big", (chunk for _ in range(12)))  # 1.2 MB, over the single-put size
    assert bytes(store.get("stream/big")) == chunk * 12
    assert store_setup.committed_blocks("stream/big") in (None, 5)


def test_overwrite_replaces_content(store: Store) -> None:
    store.put("k", b"first version, longer")
    store.put("k", b"second")
    assert bytes(store.get("k")) == b"second"
    assert store.size("k") == 6


def test_writes_are_atomic(store_setup: StoreSetup) -> None:
    """A reader sees the old object or the whole new one, never a mix or a prefix.

    The writer goes through parallel blocks. The reader reads each object in one request:
    a chunked download relies on If-Match, which Azurite 3.35 does not honour reliably when a
    commit races the chunk requests (it can serve new blocks under the old ETag); the Azure
    service does. The If-Match retry itself is tested in test_blob_store.py.
    """
    store = store_setup.open(**SMALL_BLOCKS) if store_setup.is_blob else store_setup.open()
    reading = (
        store_setup.open(**{**SMALL_BLOCKS, "max_single_get_size": 4 * MiB})
        if store_setup.is_blob else store
    )
    size = 2 * MiB + 17
    versions = [bytes([v]) * size for v in range(4)]
    store.put("atomic", versions[0])
    assert not store.exists("fresh")
    seen: set[int] = set()
    errors: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            data = bytes(reading.get("atomic"))
            if len(data) != size or data.count(data[:1]) != size:
                errors.append(f"torn read: {len(data)} bytes, starts {data[:1]!r}")
                return
            seen.add(data[0])
            if reading.exists("fresh") and reading.size("fresh") != size:
                errors.append("partial new object visible")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:]:
            store.put("atomic", version)
        store.put("fresh", versions[1])
    finally:
        done.set()
        thread.join(60)
    assert not errors, errors
    assert bytes(store.get("atomic")) == versions[-1]
    assert seen  # the reader really ran
    if store_setup.is_blob:
        assert store_setup.committed_blocks("atomic") == 9  # the parallel block path


def test_missing_key_raises_object_not_found(store: Store, tmp_path: Path) -> None:
    for call in (
        lambda: store.get("no/such/key"),
        lambda: store.read("no/such/key"),
        lambda: store.read("no/such/key", 0, 0),
        lambda: store.size("no/such/key"),
        lambda: store.get_file("no/such/key", str(tmp_path / "out.bin")),
    ):
        with pytest.raises(ObjectNotFoundError) as excinfo:
            call()
        assert "no/such/key" in str(excinfo.value)
        assert isinstance(excinfo.value, KeyError) and isinstance(excinfo.value, StoreError)
    assert not store.exists("no/such/key")
    assert not (tmp_path / "out.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    assert store.delete("no/such/key") == 0


def test_read_ranges(store: Store) -> None:
    store.put("r", b"0123456789")
    assert store.read("r") == b"0123456789"
    assert store.read("r", 3) == b"3456789"
    assert store.read("r", 3, 4) == b"3456"
    assert store.read("r", 8, 100) == b"89"
    assert store.read("r", 0, 0) == b""
    assert store.read("r", 10) == b""
    assert store.read("r", 11) == b""
    assert store.read("r", 1000, 5) == b""
    store.put("empty", b"")
    assert store.read("empty") == b""
    assert store.read("empty", 5) == b""


def test_put_file_get_file_parallel_blocks(store_setup: StoreSetup, tmp_path: Path) -> None:
    store = store_setup.open(**SMALL_BLOCKS) if store_setup.is_blob else store_setup.open()
    source = tmp_path / "source.bin"
    data = os.urandom(3 * MiB + 123)
    source.write_bytes(data)
    store.put_file("files/big.bin", str(source))
    assert store.size("files/big.bin") == len(data)
    assert store_setup.committed_blocks("files/big.bin") in (None, 13)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "big.bin"
    target.write_bytes(b"stale")
    store.get_file("files/big.bin", str(target))
    assert target.read_bytes() == data
    assert sorted(p.name for p in out_dir.iterdir()) == ["big.bin"]  # no temp left behind
    assert bytes(store.get("files/big.bin")) == data  # chunked parallel get, too


def test_append_then_follow_by_offset(store: Store) -> None:
    store.append("logs/0.log", b"line 1\n")
    offset = 0
    followed = b""
    for line in (b"line 2\n", b"", b"line 3 is longer\n"):
        chunk = store.read("logs/0.log", offset)
        followed += chunk
        offset += len(chunk)
        store.append("logs/0.log", line)
    assert store.read("logs/0.log", offset) == b"line 3 is longer\n"
    assert store.read("logs/0.log", offset + 100) == b""
    assert followed == b"line 1\nline 2\n"
    assert bytes(store.get("logs/0.log")) == b"line 1\nline 2\nline 3 is longer\n"
    store.append("logs/empty.log", b"")
    assert store.exists("logs/empty.log") and store.size("logs/empty.log") == 0


def test_append_larger_than_one_append_block(store_setup: StoreSetup) -> None:
    tuned = {"append_block_limit": 1000} if store_setup.is_blob else {}
    store = store_setup.open(**tuned)
    data = os.urandom(10_500)
    store.append("logs/big.log", data[:300])
    store.append("logs/big.log", data[300:])
    assert bytes(store.get("logs/big.log")) == data
    assert store.read("logs/big.log", 9000, 1000) == data[9000:10000]
    big = os.urandom(5 * MiB)  # over the service's 4 MiB Append Block limit
    plain = store_setup.open()
    plain.append("logs/huge.log", big)
    assert plain.size("logs/huge.log") == len(big)
    assert bytes(plain.get("logs/huge.log")) == big


def test_put_and_append_on_the_same_key(store: Store) -> None:
    store.put("mixed", b"put ")
    store.append("mixed", b"then append")
    assert bytes(store.get("mixed")) == b"put then append"
    store.put("mixed", b"put again")
    assert bytes(store.get("mixed")) == b"put again"
    store.append("mixed", b"!")
    assert bytes(store.get("mixed")) == b"put again!"


def test_exists_and_size(store: Store) -> None:
    assert not store.exists("sz/a")
    store.put("sz/a", b"12345")
    assert store.exists("sz/a")
    assert store.size("sz/a") == 5
    assert not store.exists("sz")  # a "directory" is not an object


def test_list_sorted_prefix_stripped_no_neighbour_leak(store_setup: StoreSetup) -> None:
    store = store_setup.open()
    keys = ["jobs/b/job.json", "jobs/a/x", "jobs/ab/z", "jobs/a/y", "top", "jobs/a/sub/deep"]
    for key in keys:
        store.put(key, b"x")
    assert list(store.list()) == sorted(keys)
    assert list(store.list("jobs/a/")) == ["jobs/a/sub/deep", "jobs/a/x", "jobs/a/y"]
    assert list(store.list("jobs/ab/")) == ["jobs/ab/z"]
    assert list(store.list("jobs/")) == sorted(k for k in keys if k.startswith("jobs/"))
    assert list(store.list("nothing/")) == []
    # Two stores whose prefixes are neighbours ("p/a" vs "p/ab") never see each other.
    left, right = store_setup.open("iso/a"), store_setup.open("iso/ab")
    left.put("k1", b"l")
    right.put("k2", b"r")
    assert list(left.list()) == ["k1"]
    assert list(right.list()) == ["k2"]
    assert not left.exists("k2") and not right.exists("k1")


def test_list_of_empty_store(store: Store) -> None:
    assert list(store.list()) == []
    assert list(store.list("jobs/")) == []


def test_delete_key_and_prefix(store: Store) -> None:
    for key in ("jobs/a/1", "jobs/a/2", "jobs/a/sub/3", "jobs/ab/4", "jobs/b"):
        store.put(key, b"x")
    assert store.delete("jobs/a/1") == 1
    assert not store.exists("jobs/a/1")
    assert store.delete("jobs/a") == 2  # a prefix, without the slash
    assert list(store.list("jobs/")) == ["jobs/ab/4", "jobs/b"]  # neighbour untouched
    assert store.delete("jobs/") == 2
    assert list(store.list()) == []
    assert store.delete("jobs/") == 0


def test_delete_many(store: Store) -> None:
    keys = [f"many/{i:04d}" for i in range(300)]  # more than one delete batch (256)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put(k, b"."), keys))
    store.put("other", b"keep")
    assert store.delete("many/") == 300
    assert list(store.list()) == ["other"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", ".."])
def test_invalid_keys_are_rejected(store: Store, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.read(key),
        lambda: store.append(key, b"x"),
        lambda: store.exists(key),
        lambda: store.size(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(StoreError) as excinfo:
            call()
        assert not isinstance(excinfo.value, ObjectNotFoundError)
        assert "not a valid store key" in str(excinfo.value)
    assert list(store.list()) == []


def test_numpy_envelope_roundtrip_zero_copy(store: Store) -> None:
    array = np.random.default_rng(0).random((512, 1024))  # 4 MiB
    payload = envelope.dumps({"weights": array, "name": "w"}, what="argument")
    assert any(isinstance(p, memoryview) and p.nbytes == array.nbytes for p in payload.parts)
    store.put("jobs/j/inputs/0.pkl", payload.parts)
    assert store.size("jobs/j/inputs/0.pkl") == payload.size
    buffer = store.get("jobs/j/inputs/0.pkl")
    value = envelope.loads(buffer, payload.sha256, "input 0")
    assert value["name"] == "w"
    np.testing.assert_array_equal(value["weights"], array)
    # Zero copy: the array lives inside the downloaded buffer.
    start = np.frombuffer(buffer, dtype=np.uint8).ctypes.data
    address = value["weights"].ctypes.data
    assert start <= address and address + array.nbytes <= start + len(buffer)


def test_tampered_envelope_raises_integrity_error(store: Store) -> None:
    payload = envelope.dumps(np.arange(1000), what="output")
    store.put("jobs/j/outputs/0.pkl", payload.parts)
    data = bytearray(store.get("jobs/j/outputs/0.pkl"))
    data[-5] ^= 0xFF
    store.put("jobs/j/outputs/0.pkl", data)
    with pytest.raises(IntegrityError, match="sha256"):
        envelope.loads(store.get("jobs/j/outputs/0.pkl"), payload.sha256, "output 0")


def test_modified_is_when_the_object_was_written(store: Store) -> None:
    import time

    from aksrun.errors import ObjectNotFoundError

    before = time.time()
    store.put("when/obj", b"x")
    written = store.modified("when/obj")
    # Azurite and Blob Storage keep whole seconds: allow the second the write began in.
    assert before - 1 <= written <= time.time() + 1
    with pytest.raises(ObjectNotFoundError):
        store.modified("when/missing")
