"""MergedWatch's fault handling, driven by scripted list/watch calls: a refusal after access
was granted (an API server restarting, its RBAC cache still empty) is retried; a first
refusal is final, so a person without the Role is told at once."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException

from aksrun.adapters import kubernetes_watch
from aksrun.adapters.kubernetes_watch import MergedWatch


class _Lines:
    """A raw watch response: JSON lines, then the server closes it."""

    def __init__(self, events: list[dict]) -> None:
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]

    def stream(self, *args, **kwargs):
        yield from self.lines

    def read_chunked(self, *args, **kwargs):
        yield from self.lines

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _pod(name: str, version: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": version}}


def _script(steps):
    """A list_call answering each call with the next step (an exception is raised)."""
    calls = iter(steps)

    def list_call(**kwargs):
        step = next(calls)
        if isinstance(step, Exception):
            raise step
        if kwargs.get("watch"):
            return _Lines(step)
        return SimpleNamespace(items=[], metadata=SimpleNamespace(resource_version=step))

    return list_call


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(kubernetes_watch.threading.Event, "wait",
                        lambda self, timeout=None: self.is_set())


def _collect(watch: MergedWatch, count: int) -> list[tuple[str, str]]:
    seen = []
    while len(seen) < count:
        _source, kind, obj = watch.get(timeout=5)
        seen.append((kind, obj.get("metadata", {}).get("name") if kind != "BROKEN" else
                     getattr(obj["error"], "status", None)))
    return seen


def test_a_refusal_after_access_was_granted_is_retried():
    forbidden = ApiException(status=403, reason="Forbidden")
    watch = MergedWatch(ApiClient())
    watch.add("pod", _script([
        "10", [{"type": "ADDED", "object": _pod("a", "11")}],
        forbidden, "12", [{"type": "MODIFIED", "object": _pod("a", "13")}],
        *[[]] * 50,
    ]))
    try:
        assert _collect(watch, 2) == [("ADDED", "a"), ("MODIFIED", "a")]
    finally:
        watch.stop()


def test_a_first_refusal_is_final():
    watch = MergedWatch(ApiClient())
    watch.add("pod", _script([ApiException(status=403, reason="Forbidden")]))
    try:
        assert _collect(watch, 1) == [("BROKEN", 403)]
    finally:
        watch.stop()
