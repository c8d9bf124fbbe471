"""Storage scenarios on `target.store` (the store aksrun's client uses on that target: a
directory locally, Azurite in the simulated cluster, real Azure Storage on AKS): round trips,
a large object through files, ranged reads of appended objects, listing and deleting, and the
layout a job leaves behind. Each scenario writes under its own prefix and removes it."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aksrun.core import job as jobmod

from . import remote_funcs as rf
from .target import MiB, Target


@contextlib.contextmanager
def scratch(target: Target, what: str) -> Iterator[str]:
    """A prefix of this test's own in the store, deleted afterwards."""
    prefix = target.scratch(what)
    try:
        yield prefix
    finally:
        with contextlib.suppress(Exception):
            target.store.delete(prefix)


def _pattern(size: int, seed: bytes) -> Iterator[bytes]:
    """Deterministic bytes that differ block to block (a misplaced block changes the digest)."""
    piece, counter = 4 * MiB, 0
    while size > 0:
        chunk = hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(min(piece, size))
        size -= len(chunk)
        counter += 1
        yield chunk


def scenario_put_get_roundtrip(target: Target) -> None:
    store = target.store
    with scratch(target, "roundtrip") as base:
        key = f"{base}/object.bin"
        assert not store.exists(key)
        store.put(key, b"hello")
        assert store.exists(key) and store.size(key) == 5
        assert bytes(store.get(key)) == b"hello"

        store.put(key, [b"ab", bytearray(b"cd"), memoryview(b"ef")])  # parts, overwriting
        assert bytes(store.get(key)) == b"abcdef" and store.size(key) == 6

        empty = f"{base}/empty"
        store.put(empty, b"")
        assert store.exists(empty) and store.size(empty) == 0 and bytes(store.get(empty)) == b""

        missing = f"{base}/missing"
        with pytest.raises(KeyError):
            store.get(missing)
        with pytest.raises(KeyError):
            store.size(missing)


def scenario_large_object_through_files(target: Target) -> None:
    """A large object: uploaded from a file (in parallel blocks on Blob Storage), downloaded
    to a file and into memory, read by range across a block boundary: the same bytes."""
    store, size = target.store, target.large_object_bytes
    with scratch(target, "large") as base, tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.bin"
        expected = hashlib.sha256()
        with source.open("wb") as out:
            for chunk in _pattern(size, target.tag.encode()):
                expected.update(chunk)
                out.write(chunk)

        key = f"{base}/large.bin"
        store.put_file(key, str(source))
        assert store.size(key) == size

        back = Path(tmp) / "back.bin"
        store.get_file(key, str(back))
        assert back.stat().st_size == size
        assert _file_sha256(back) == expected.hexdigest()

        data = store.get(key)
        assert len(data) == size and hashlib.sha256(data).hexdigest() == expected.hexdigest()
        del data

        offset = 4 * MiB - 10
        with source.open("rb") as src:
            src.seek(offset)
            assert store.read(key, offset, 20) == src.read(20)
        assert store.read(key, size) == b""

        copy = f"{base}/from-parts.bin"  # big parts are streamed, never concatenated
        store.put(copy, list(_pattern(size, target.tag.encode())))
        assert store.size(copy) == size
        assert hashlib.sha256(store.get(copy)).hexdigest() == expected.hexdigest()


def scenario_append_and_ranged_reads(target: Target) -> None:
    """Appended objects (live logs) read by range from an offset, as a log follower does."""
    store = target.store
    with scratch(target, "append") as base:
        key = f"{base}/task.log"
        expected = b""
        for i in range(5):
            line = f"line {i}\n".encode()
            store.append(key, line)
            expected += line
            assert store.read(key, len(expected) - len(line)) == line
        assert bytes(store.get(key)) == expected and store.size(key) == len(expected)
        assert store.read(key, 7) == expected[7:]
        assert store.read(key, 7, 6) == expected[7:13]
        assert store.read(key, len(expected)) == b""
        assert store.read(key, len(expected) + 100) == b""


def scenario_listing_and_delete(target: Target) -> None:
    """`list(prefix)` is a plain string prefix, sorted; `delete(prefix)` removes one key or
    everything under `prefix/` and says how many."""
    store = target.store
    with scratch(target, "listing") as base:
        keys = [f"{base}/a/1.txt", f"{base}/a/2.txt", f"{base}/a/b/3.txt", f"{base}/ab/4.txt",
                f"{base}/c.txt"]
        for key in reversed(keys):
            store.put(key, key.encode())
        assert list(store.list(f"{base}/")) == sorted(keys)
        assert list(store.list(f"{base}/a/")) == keys[:3]
        assert list(store.list(f"{base}/a")) == keys[:4]
        assert list(store.list(f"{base}/nothing/")) == []

        assert store.delete(f"{base}/a") == 3
        assert list(store.list(f"{base}/")) == keys[3:]
        assert store.delete(f"{base}/c.txt") == 1
        assert not store.exists(f"{base}/c.txt")
        assert store.delete(f"{base}/nothing") == 0
        assert list(store.list(f"{base}/")) == [keys[3]]


def scenario_job_layout(target: Target) -> None:
    """What a run leaves in the store: `jobs/<id>/job.json`, `inputs/NNNNN.pkl`,
    `outputs/NNNNN.pkl`, `logs/NNNNN.log`, and the function once, content-addressed, at
    `functions/<sha256>.pkl`; every object matches the digest job.json records."""
    store = target.store
    remote = target.function(rf.square_and_log)
    assert list(remote.map(range(5), chunksize=2)) == [0, 1, 4, 9, 16]
    [job_id] = target.jobs_of(rf.square_and_log)

    tasks = range(3)
    expected = {jobmod.record_key(job_id)}
    expected |= {jobmod.input_key(job_id, i) for i in tasks}
    expected |= {jobmod.output_key(job_id, i) for i in tasks}
    expected |= {jobmod.log_key(job_id, i) for i in tasks}
    keys = set(store.list(f"{jobmod.job_prefix(job_id)}/"))
    assert keys == expected, sorted(keys ^ expected)

    record = jobmod.JobRecord.from_json(store.get(jobmod.record_key(job_id)))
    assert record.job_id == job_id and record.kind == "map" and record.calls == 5
    assert record.function_name == f"{target.tag}-square_and_log"
    assert [(c.index, c.start, c.calls) for c in record.chunks] == [(0, 0, 2), (1, 2, 2),
                                                                      (2, 4, 1)]
    assert store.exists(jobmod.function_key(record.function_sha256))
    function = store.get(jobmod.function_key(record.function_sha256))
    assert jobmod.digest_of(bytes(function)) == record.function_sha256
    for chunk in record.chunks:
        raw = bytes(store.get(jobmod.input_key(job_id, chunk.index)))
        assert jobmod.digest_of(raw) == chunk.sha256
        assert store.size(jobmod.output_key(job_id, chunk.index)) > 0
        log = bytes(store.get(jobmod.log_key(job_id, chunk.index))).decode()
        for x in range(chunk.start, chunk.start + chunk.calls):
            assert f"squaring {x}\n" in log, log


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


STORAGE_SCENARIOS: list[Callable[[Target], None]] = [
    scenario_put_get_roundtrip,
    scenario_large_object_through_files,
    scenario_append_and_ranged_reads,
    scenario_listing_and_delete,
    scenario_job_layout,
]
