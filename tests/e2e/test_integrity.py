"""Corrupted objects in the store are detected by digest and never unpickled."""

from __future__ import annotations

import time

import pytest

import aksrun
from aksrun.core import job as jobmod

from . import funcs


class _TamperingCompute:
    """Wraps the real compute: corrupts an object between two lifecycle steps, as an
    attacker or a broken disk would."""

    def __init__(self, inner, store, when):
        self.inner, self.store, self.when = inner, store, when
        self.name = inner.name

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _corrupt(self, key):
        data = bytearray(self.store.get(key))
        data[-1] ^= 0xFF
        self.store.put(key, bytes(data))

    def launch(self, request):
        if self.when == "input":
            self._corrupt(jobmod.input_key(request.job_id, 0))
        return self.inner.launch(request)

    def events(self, handle, stop=None):
        for event in self.inner.events(handle, stop):
            if self.when == "output" and event.kind == "succeeded":
                self._corrupt(jobmod.output_key(handle.job_id, event.index))
            yield event


@pytest.fixture
def tampering(backend, monkeypatch):
    client = aksrun.api.session.default_client()

    def install(when):
        monkeypatch.setattr(client, "compute", _TamperingCompute(client.compute, client.store,
                                                                 when))
        return client

    return install


def test_tampered_input_fails_the_job_with_integrity_error(tampering):
    client = tampering("input")
    fut = aksrun.function()(funcs.square).submit(4)
    with pytest.raises(aksrun.IntegrityError, match="sha256"):
        fut.result(timeout=120)
    assert not client.store.exists(jobmod.output_key(fut.job_id, 0))
    for _ in range(100):  # the job-level record follows the task's failure within moments
        if client.status(fut.job_id).state == "failed":
            break
        time.sleep(0.05)
    status = client.status(fut.job_id)
    assert status.state == "failed" and status.reason == "IntegrityError"


def test_tampered_output_raises_integrity_error_in_client(tampering):
    tampering("output")
    with pytest.raises(aksrun.IntegrityError, match="output of task 0"):
        aksrun.function()(funcs.square)(4)


def test_tampered_job_record_is_rejected_by_the_runner(backend, monkeypatch):
    client = aksrun.api.session.default_client()
    real_launch = client.compute.launch

    def launch(request):
        key = jobmod.record_key(request.job_id)
        client.store.put(key, bytes(client.store.get(key)).replace(b'"retries": 0',
                                                                   b'"retries": 9'))
        return real_launch(request)

    monkeypatch.setattr(client.compute, "launch", launch)
    with pytest.raises(aksrun.IntegrityError, match=r"job\.json"):
        aksrun.function()(funcs.square)(2)


def test_a_corrupted_function_object_is_replaced_not_fatal(backend):
    client = aksrun.api.session.default_client()
    remote = aksrun.function()(funcs.square)
    assert remote(3) == 9
    (key,) = [k for k in client.store.list("functions/")]
    data = bytearray(client.store.get(key))
    data[-1] ^= 0xFF
    client.store.put(key, bytes(data))
    client._uploaded.clear()  # as a new process would start
    assert remote(4) == 16


def test_a_failed_upload_leaves_nothing_behind(backend, monkeypatch):
    client = aksrun.api.session.default_client()
    real_put = client.store.put

    def put(key, data):
        if key.endswith("inputs/00001.pkl"):
            raise OSError("disk full")
        return real_put(key, data)

    monkeypatch.setattr(client.store, "put", put)
    with pytest.raises(OSError, match="disk full"):
        list(aksrun.function()(funcs.square).map(range(4), chunksize=2))
    assert list(client.store.list("jobs/")) == []
