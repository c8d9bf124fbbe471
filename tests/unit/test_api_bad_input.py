"""Bad input to the API becomes a typed error naming the problem and the fix, raised before
anything is submitted (these tests make any submission fail loudly)."""

from __future__ import annotations

import itertools
import threading
import traceback

import pytest

import aksrun
from aksrun.api import decorator
from aksrun.core import job as jobmod
from aksrun.core.pickling import exception_record, outcome_exception
from aksrun.errors import ConfigError, IntegrityError, SerializationError, UnsupportedFunctionError


class _Submitted(Exception):
    pass


@pytest.fixture
def no_submit(monkeypatch):
    """Any call that gets as far as a client raises _Submitted: a refused call never does."""

    def client(*_a, **_k):
        raise _Submitted

    monkeypatch.setattr(decorator, "default_client", client)


def square(x):
    return x * x


# --- 1. options of the wrong type --------------------------------------------------------------


@pytest.mark.parametrize(("option", "value", "example"), [
    ("timeout", [5], 'timeout="30m"'),
    ("timeout", {}, 'timeout="30m"'),
    ("timeout", b"5s", 'timeout="30m"'),
    ("cpu", object(), 'cpu="500m"'),
    ("cpu", [1], 'cpu="500m"'),
    ("retries", "x", "retries=2"),
    ("retries", 1.0, "retries=2"),
    ("memory", 5.5, 'memory="4Gi"'),
    ("memory", [1], 'memory="4Gi"'),
    ("gpu", 1.0, "gpu=1"),
    ("spot", "yes", "spot=True"),
    ("env", [("A", "b")], 'env={"LOG_LEVEL": "debug"}'),
    ("requirements", 5, 'requirements=["numpy>=2"]'),
    ("requirements", {"numpy": "2"}, 'requirements=["numpy>=2"]'),
    ("node_type", 5, 'node_type="Standard_D8s_v5"'),
    ("image", 5, "image="),
    ("name", 5, 'name="train"'),
    ("name", ["train"], 'name="train"'),
])
def test_a_wrongly_typed_option_is_a_config_error_at_decoration(option, value, example):
    with pytest.raises(ConfigError) as info:
        aksrun.function(**{option: value})
    text = str(info.value)
    assert text.startswith(f"{option}={value!r} is not valid")  # the option and the value
    assert type(value).__name__ in text and example in text  # what was wrong, and a valid one


def test_an_executor_checks_its_options_the_same_way():
    with pytest.raises(ConfigError, match=r"timeout=\[5\] is not valid"):
        aksrun.Executor(timeout=[5])


@pytest.mark.parametrize("timeout", [10**400, 10**12, "100000d"])
def test_a_timeout_past_what_the_runner_can_arm_is_refused(timeout):
    with pytest.raises(ConfigError, match="365 days"):
        aksrun.function(timeout=timeout)


def test_an_empty_name_is_refused():
    with pytest.raises(ConfigError, match="non-empty name"):
        aksrun.function(name="  ")


def test_valid_options_of_every_accepted_type_still_pass():
    opts = aksrun.function(cpu=2, memory=2**31, timeout=90.5, retries=1, env={"A": "b"},
                           requirements=("numpy>=2",), gpu=0, spot=True, name="t")(square).options
    assert (opts.cpu, opts.memory, opts.timeout, opts.requirements) == (
        "2", "2147483648", 90.5, ("numpy>=2",))


# --- 2. generator functions --------------------------------------------------------------------


def numbers(n):
    yield from range(n)


async def async_numbers(n):
    for i in range(n):
        yield i


@pytest.mark.parametrize("func", [numbers, async_numbers])
def test_a_generator_function_is_refused_at_decoration(func):
    with pytest.raises(UnsupportedFunctionError, match="Return a list instead") as info:
        aksrun.function()(func)
    assert isinstance(info.value, ConfigError) and func.__name__ in str(info.value)


def test_an_executor_refuses_a_generator_function_before_submitting(no_submit):
    with pytest.raises(UnsupportedFunctionError):
        aksrun.Executor().submit(numbers, 3)


# --- 3. endless maps ---------------------------------------------------------------------------


def test_an_endless_map_is_refused_without_hanging(no_submit):
    assert decorator.MAX_MAP_CALLS == 1_000_000
    with pytest.raises(ConfigError, match=r"more than 1,000,000 inputs.*batches"):
        aksrun.function()(square).map(itertools.count())
    with pytest.raises(ConfigError, match=r"Executor\.map\(\) was given more than 1,000,000"):
        aksrun.Executor().map(square, itertools.count())


def test_the_map_bound_is_exact(no_submit, monkeypatch):
    monkeypatch.setattr(decorator, "MAX_MAP_CALLS", 5)
    remote = aksrun.function()(square)
    with pytest.raises(_Submitted):  # at the bound: submitted
        remote.map(range(5))
    with pytest.raises(ConfigError, match="more than 5 inputs"):
        remote.map(range(6))
    with pytest.raises(_Submitted):  # zip stops at the shortest input
        remote.map(itertools.count(), range(5))


# --- 5. parallelism and chunk size ---------------------------------------------------------------


@pytest.mark.parametrize("value", [-3, 0, True, 2.5, "4"])
def test_executor_max_parallel_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match=rf"max_parallel={value!r} is not valid.*at least 1"):
        aksrun.Executor(max_parallel=value)


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_executor_map_chunksize_out_of_range_is_refused(no_submit, value):
    with pytest.raises(ConfigError, match=rf"chunksize={value!r} is not valid.*at least 1"):
        aksrun.Executor().map(square, range(3), chunksize=value)


@pytest.mark.parametrize("name", ["max_parallel", "chunksize"])
def test_map_refuses_a_bool_count(no_submit, name):
    with pytest.raises(ConfigError, match=f"{name}=True is not valid"):
        aksrun.function()(square).map(range(3), **{name: True})


# --- 4. deep remote tracebacks -------------------------------------------------------------------


def _recurse(n):
    return _recurse(n + 1)


def test_a_recursion_error_travels_back_as_itself_with_a_trimmed_traceback():
    try:
        _recurse(0)
    except RecursionError as exc:
        record = exception_record(exc)
    back = outcome_exception(record)
    assert type(back) is RecursionError
    text = "".join(traceback.format_exception(back))
    assert "_recurse" in text and "in the middle were trimmed" in text
    frames = 0
    tb = back.__traceback__
    while tb is not None:
        frames, tb = frames + 1, tb.tb_next
    assert frames == 100


def test_a_short_traceback_is_not_trimmed():
    try:
        int("x")
    except ValueError as exc:
        back = outcome_exception(exception_record(exc))
    assert type(back) is ValueError and not getattr(back, "__notes__", None)


# --- 8. unpicklable return values ----------------------------------------------------------------


def test_an_unpicklable_return_value_counts_as_a_call_that_raised():
    import pickle

    from aksrun.runner.worker import _pickle_outcome

    data, buffers, raised = _pickle_outcome(("ok", 1), "f", 10)
    assert not raised and pickle.loads(data, buffers=buffers) == ("ok", 1)
    data, buffers, raised = _pickle_outcome(("ok", [threading.Lock()]), "f", 11)
    assert raised
    error = outcome_exception(pickle.loads(data, buffers=buffers))
    assert isinstance(error, SerializationError)
    assert "call 11 (a list)" in str(error) and "_thread.lock" in str(error)


def test_a_task_output_holds_each_outcome_as_its_worker_pickled_it():
    """The runner stores the worker's pickles as they are (it never unpickles user objects),
    large buffers still out of band; the client's one verified unpickling re-creates them."""
    import pickle

    from aksrun.core.envelope import dumps, loads
    from aksrun.runner.chunk import Nested
    from aksrun.runner.worker import _pickle_outcome

    big = memoryview(bytearray(b"x" * 100_000))
    data, buffers, _ = _pickle_outcome(("ok", pickle.PickleBuffer(big)), "f", 0)
    assert buffers  # out of band
    payload = dumps(jobmod.pack_outputs("d" * 64, [Nested(data, [bytes(b) for b in buffers]),
                                                   ("err", None, "X", "m", "")]))
    assert len(payload.parts) > 2  # the buffer stays out of band in the task's output too
    digest, outcomes = jobmod.unpack_outputs(loads(b"".join(bytes(p) for p in payload.parts),
                                                   payload.sha256, "output"))
    assert digest == "d" * 64
    assert bytes(outcomes[0][1]) == b"x" * 100_000 and outcomes[1][0] == "err"


# --- 6. job records read back from the store -----------------------------------------------------

JOB_ID = "f-20261124-101500-abcde"


def _record(**changes):
    fields = dict(
        job_id=JOB_ID, function_name="f", function_sha256="0" * 64, kind="map", calls=3,
        chunksize=2, chunks=(jobmod.Chunk(0, 0, 2, "1" * 64), jobmod.Chunk(1, 2, 1, "2" * 64)),
        options={"cpu": "1"}, max_parallel=2, user="u", backend="local",
    )
    fields.update(changes)
    return jobmod.JobRecord(**fields)


def test_a_record_with_a_flipped_byte_is_an_integrity_error_naming_job_and_key():
    raw = bytearray(_record().to_json())
    # the opening brace, a byte of a field name, a byte of a chunk's digest, the closing brace
    for position in (0, raw.index(b'"kind"') + 2, raw.index(b"1111") + 1, len(raw) - 1):
        bad = bytearray(raw)
        bad[position] ^= 0x5A
        with pytest.raises(IntegrityError) as info:
            jobmod.JobRecord.from_json(bytes(bad), job_id=JOB_ID)
        assert JOB_ID in str(info.value) and jobmod.record_key(JOB_ID) in str(info.value)


@pytest.mark.parametrize(("old", "new"), [
    (b'"kind": "map"', b'"kind": "mop"'),
    (b'"calls": 3', b'"calls": 4'),
    (b'"calls": 3', b'"calls": "3"'),
    (b'"chunksize": 2', b'"chunksize": 0'),
    (b'"start": 2', b'"start": 1'),
    (b'"index": 1', b'"index": 7'),
    (b'"user": "u"', b'"user": null'),
    (b'"cpu": "1"', b'"cpu": "lots"'),
    (b'"function_sha256": "0000', b'"function_sha256": "zz00'),
    (b'"job_id": "f-20261124-101500-abcde"', b'"job_id": "g-20261124-101500-abcde"'),
    (b'"backend": "local",', b'"backend": "local", "extra": 1,'),
    (b'"max_parallel": 2,', b""),
    (b'"chunks": [', b'"chunks": 5, "x": ['),
    (b'"stop_on_error": false', b'"stop_on_error": 0'),
])
def test_an_edited_record_that_no_longer_adds_up_is_an_integrity_error(old, new):
    raw = _record().to_json()
    assert old in raw
    with pytest.raises(IntegrityError, match=r"jobs/f-20261124-101500-abcde/job\.json"):
        jobmod.JobRecord.from_json(raw.replace(old, new, 1), job_id=JOB_ID)


def test_a_single_call_record_must_hold_one_call():
    raw = _record(kind="call").to_json()
    with pytest.raises(IntegrityError, match="single call"):
        jobmod.JobRecord.from_json(raw, job_id=JOB_ID)
    one = _record(kind="call", calls=1, chunksize=1, chunks=(jobmod.Chunk(0, 0, 1, "1" * 64),))
    assert jobmod.JobRecord.from_json(one.to_json(), job_id=JOB_ID) == one


def test_an_intact_record_still_reads_back():
    record = _record()
    assert jobmod.JobRecord.from_json(record.to_json(), job_id=JOB_ID) == record


def test_a_record_written_before_stop_on_error_existed_still_reads_back():
    import json

    original = _record()
    data = json.loads(original.to_json())
    del data["stop_on_error"]
    record = jobmod.JobRecord.from_json(json.dumps(data).encode(), job_id=JOB_ID)
    assert record.stop_on_error is False and record == original


def test_outputs_carry_the_job_digest_and_earlier_outputs_still_read():
    assert jobmod.unpack_outputs(jobmod.pack_outputs("a" * 64, [("ok", 1)])) == (
        "a" * 64, [("ok", 1)])
    assert jobmod.unpack_outputs([("ok", 1)]) == (None, [("ok", 1)])
    with pytest.raises(IntegrityError):
        jobmod.unpack_outputs({"outcomes": 5})
