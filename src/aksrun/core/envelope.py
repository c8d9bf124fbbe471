"""Payload envelope: pickled objects with out-of-band buffers and a sha256 over every byte.

Layout (little-endian): MAGIC, u64 pickle length, u32 buffer count, u64 length of each
buffer, then the pickle, then each buffer padded to 64 bytes. Pickle protocol 5 hands large
buffers (NumPy arrays) over out of band, so they are written straight from the array's
memory and read back as views of the downloaded bytes: no extra copy either way.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError, SerializationError

MAGIC = b"AKSRUN1\n"
_ALIGN = 64
_HEAD = struct.Struct("<QI")
_LEN = struct.Struct("<Q")
PROTOCOL = 5


@dataclass(frozen=True)
class Payload:
    parts: tuple[bytes | memoryview, ...]
    sha256: str
    size: int


def dumps(obj: Any, what: str = "object", by_reference: bool = False) -> Payload:
    """Pickle `obj` with cloudpickle (protocol 5, out-of-band buffers) into an envelope.
    `by_reference`: try the standard pickler first (see pickle_by_reference)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        if by_reference:
            data = pickle_by_reference(obj, buffers)
        else:
            import cloudpickle

            data = cloudpickle.dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)
    except Exception as exc:
        raise SerializationError(f"{what} could not be pickled: {_reason(exc)}") from exc
    views = [b.raw() for b in buffers]
    head = [MAGIC, _HEAD.pack(len(data), len(views))]
    head.extend(_LEN.pack(v.nbytes) for v in views)
    parts: list[bytes | memoryview] = [b"".join(head), data]
    offset = sum(len(p) for p in parts)
    for view in views:
        pad = -offset % _ALIGN
        if pad:
            parts.append(b"\0" * pad)
        parts.append(view)
        offset += pad + view.nbytes
    return Payload(tuple(parts), digest(parts), offset)


def pickle_by_reference(obj: Any, buffers: list[pickle.PickleBuffer]) -> bytes:
    """The standard library's C pickler, falling back to cloudpickle for what it refuses.

    Only for documents whose every class and function is builtin or aksrun's own, already
    imported (the runner's output: the worker's pickles nested as bytes, aksrun's records):
    several times faster per object than cloudpickle, which runs Python for each. Not for
    user objects: pickle imports the module a name comes from, and a user's module the
    worker got by value (cloudpickle never imports it) would be imported, and run."""
    try:
        return pickle.dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)
    except Exception:
        buffers.clear()  # what the failed attempt handed out
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)


def loads(data: bytes | bytearray | memoryview, expected_sha256: str | None, what: str) -> Any:
    """Verify then unpickle. A digest mismatch raises IntegrityError and nothing is unpickled."""
    if expected_sha256 is not None:
        actual = digest([data])
        if actual != expected_sha256:
            raise IntegrityError(
                f"{what} does not match its recorded sha256 (expected {expected_sha256[:16]}..., "
                f"found {actual[:16]}...): it was changed or corrupted in the store, so it was "
                "not unpickled. Re-submit the job."
            )
    view = memoryview(data).cast("B")
    if view[: len(MAGIC)] != MAGIC:
        raise IntegrityError(f"{what} is not an aksrun payload (bad header); it was not unpickled.")
    pos = len(MAGIC)
    pickle_len, count = _HEAD.unpack_from(view, pos)
    pos += _HEAD.size
    lengths = [_LEN.unpack_from(view, pos + i * _LEN.size)[0] for i in range(count)]
    pos += count * _LEN.size
    body = view[pos : pos + pickle_len]
    pos += pickle_len
    buffers = []
    for length in lengths:
        pos += -pos % _ALIGN
        buffers.append(view[pos : pos + length])
        pos += length
    if pos != len(view):
        raise IntegrityError(f"{what} has a wrong length; it was not unpickled.")
    return pickle.loads(body, buffers=buffers)


def nested_loads(data: bytes, *buffers: Any) -> Any:
    """A call's outcome pickled by its worker inside a task's output (which was verified as a
    whole before anything in it is unpickled)."""
    return pickle.loads(data, buffers=buffers)


def digest(parts: Sequence[bytes | bytearray | memoryview]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
