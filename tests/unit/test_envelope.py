import numpy as np
import pytest

from aksrun.core import job as jobmod
from aksrun.core.envelope import dumps, loads
from aksrun.core.pickling import dump_calls, exception_record, outcome_exception
from aksrun.errors import IntegrityError, RemoteError, SerializationError


def _join(payload) -> bytes:
    return b"".join(bytes(p) for p in payload.parts)


def test_roundtrip_and_digest():
    payload = dumps({"a": [1, 2, 3], "b": "x"})
    data = _join(payload)
    assert len(data) == payload.size
    assert loads(data, payload.sha256, "obj") == {"a": [1, 2, 3], "b": "x"}


def test_numpy_buffers_travel_out_of_band_without_copy():
    array = np.arange(1_000_000, dtype=np.float64)
    payload = dumps(array)
    assert any(isinstance(p, memoryview) and p.nbytes == array.nbytes for p in payload.parts)
    data = bytearray(_join(payload))
    back = loads(data, payload.sha256, "array")
    np.testing.assert_array_equal(back, array)
    assert back.ctypes.data % 64 == 0 or not back.flags.owndata  # a view into `data`
    assert np.shares_memory(back, np.frombuffer(data, dtype=np.uint8))


def test_tampered_bytes_are_never_unpickled(monkeypatch):
    payload = dumps([1, 2, 3])
    data = bytearray(_join(payload))
    data[-2] ^= 0xFF
    import pickle

    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled tampered data"))
    with pytest.raises(IntegrityError, match="sha256"):
        loads(data, payload.sha256, "input chunk 0")


def test_bad_header_is_an_integrity_error():
    with pytest.raises(IntegrityError, match="not an aksrun payload"):
        loads(b"garbage", None, "x")


def test_unpicklable_argument_is_named():
    import threading

    calls = [((1,), {}), ((2,), {"lock": threading.Lock()})]
    with pytest.raises(SerializationError) as err:
        dump_calls(calls, 10, "train")
    text = str(err.value)
    assert "'lock'" in text and "call 11" in text and "train()" in text and "lock" in text


def test_exception_records_keep_type_and_traceback():
    def inner():
        raise ValueError("bad value")

    try:
        inner()
    except ValueError as exc:
        record = exception_record(exc)
    back = outcome_exception(record)
    assert type(back) is ValueError and str(back) == "bad value"
    assert back.__traceback__ is not None
    assert "inner" in record[4]


def test_exception_whose_class_is_missing_here_becomes_remote_error(tmp_path, monkeypatch):
    """The remote side had a module the client lacks: the type can't be re-created here."""
    import importlib
    import sys

    (tmp_path / "remote_only_mod.py").write_text("class RemoteOnly(Exception):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("remote_only_mod")
    try:
        raise module.RemoteOnly("only over there")
    except Exception as exc:
        record = exception_record(exc)
    del sys.modules["remote_only_mod"]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    back = outcome_exception(record)
    assert isinstance(back, RemoteError)
    assert back.type_name == "remote_only_mod.RemoteOnly"
    assert back.message == "only over there" and "RemoteOnly" in back.traceback_text
    assert "Remote traceback" in str(back)


def test_exception_that_will_not_pickle_still_travels_as_text():
    import threading

    class Holder(Exception):
        pass

    exc = Holder("has a lock")
    exc.lock = threading.Lock()
    record = exception_record(exc)
    assert record[1] is None
    back = outcome_exception(record)
    assert isinstance(back, RemoteError) and "Holder" in back.type_name


def test_job_record_roundtrip_and_digest_check():
    record = jobmod.JobRecord(
        job_id="f-20261124-101500-abcde", function_name="f", function_sha256="0" * 64,
        kind="map", calls=3, chunksize=2,
        chunks=(jobmod.Chunk(0, 0, 2, "1" * 64), jobmod.Chunk(1, 2, 1, "2" * 64)),
        options={"cpu": "1"}, max_parallel=2, user="u", backend="local",
    )
    raw = record.to_json()
    assert jobmod.JobRecord.from_json(raw, jobmod.digest_of(raw)) == record
    with pytest.raises(IntegrityError, match=r"job\.json"):
        jobmod.JobRecord.from_json(raw.replace(b'"calls": 3', b'"calls": 4'),
                                   jobmod.digest_of(raw))


def test_pickle_by_reference_sends_what_pickle_cant_name_by_value():
    """The runner's fast path for its own documents: whatever pickle can't name (here a
    class made in a function, as cloudpickle re-creates one) still goes, by value."""
    import pickle

    import cloudpickle

    from aksrun.core.envelope import pickle_by_reference

    def make():
        class Point:
            def __init__(self, x):
                self.x = x
        return Point

    dynamic = cloudpickle.loads(cloudpickle.dumps(make()))
    buffers: list = []
    data = pickle_by_reference((0, dynamic(3)), buffers)
    status, point = pickle.loads(data, buffers=buffers)
    assert status == 0 and point.x == 3 and type(point).__name__ == "Point"
    plain: list = []
    assert pickle.loads(pickle_by_reference({"a": [1, 2.5]}, plain)) == {"a": [1, 2.5]}


def test_pickle_by_reference_drops_the_buffers_of_its_failed_attempt():
    """pickle hands out a large buffer, then fails on a lambda: cloudpickle's attempt must be
    unpickled with its own buffers only, or every buffer after the first is shifted."""
    import pickle

    from aksrun.core.envelope import pickle_by_reference

    first, second = bytearray(b"a" * 1000), bytearray(b"b" * 1000)
    value = [pickle.PickleBuffer(first), lambda: 1, pickle.PickleBuffer(second)]
    buffers: list = []
    data = pickle_by_reference(value, buffers)
    assert len(buffers) == 2
    got = pickle.loads(data, buffers=buffers)
    assert bytes(got[0]) == bytes(first) and got[1]() == 1 and bytes(got[2]) == bytes(second)
