"""The runner's termination message survives the kubelet: it keeps only the LAST 4,096 bytes of
the file, so a longer document loses its head, stops being JSON and the reason is lost. The
runner caps the encoded document, not a count of characters (JSON escapes a control or
non-ASCII character as 6 to 12 bytes)."""

from __future__ import annotations

import json

import pytest

from aksrun.adapters.kubernetes_manifest import pod_failure_policy
from aksrun.runner import main as runner

KUBELET_LIMIT = 4096  # kubelet: the last 4 KiB of terminationMessagePath


def kubelet_reads(path) -> str:
    """What the kubelet puts in the pod's status: the file's last 4,096 bytes."""
    return path.read_bytes()[-KUBELET_LIMIT:].decode("utf-8", "replace")


@pytest.mark.parametrize("text", [
    "é" * 3000,           # non-ASCII: \u00e9, 6 bytes each
    "😀" * 3000,          # outside the BMP: a surrogate pair, 12 bytes each
    "\"" * 3000,          # two-byte escapes
], ids=["non-ascii", "astral", "escapes"])
def test_a_failure_reason_reaches_the_client_as_json(tmp_path, monkeypatch, text):
    """Through the runner's real entrypoint: a store URL it can't open is a StoreError whose
    message quotes the URL."""
    path = tmp_path / "termination-log"
    for name, value in {"AKSRUN_TERMINATION_LOG": str(path), "AKSRUN_STORE": "bogus://" + text,
                        "AKSRUN_JOB_ID": "j", "AKSRUN_JOB_DIGEST": "0" * 64,
                        "JOB_COMPLETION_INDEX": "0"}.items():
        monkeypatch.setenv(name, value)
    assert runner.main() == 13
    assert len(path.read_bytes()) <= KUBELET_LIMIT
    data = json.loads(kubelet_reads(path))
    assert data["error"] == "StoreError"
    assert data["message"].startswith("ConfigError: store 'bogus://")
    assert data["message"].endswith(" [...]")


@pytest.mark.parametrize("text", ["é" * 3000, "\x01" * 3000, "😀" * 3000, "x" * 1_000_000],
                         ids=["non-ascii", "control", "astral", "huge"])
def test_the_encoded_document_is_capped_not_the_characters(text):
    """Raw control characters too (\u0001: 6 bytes each), which no message of the runner's
    entrypoint can be made to carry in a test (they arrive repr'd)."""
    data = json.loads(runner._encode_termination({"error": "StoreError", "message": text}))
    assert data["error"] == "StoreError" and data["message"].startswith(text[:100])
    assert len(runner._encode_termination({"error": "StoreError", "message": text})) <= 4096


def test_a_short_message_is_written_unchanged(tmp_path):
    path = tmp_path / "termination-log"
    runner._fail(runner._Termination(str(path)), 11, "VersionMismatch", "Python 3.12 ≠ 3.11")
    assert json.loads(path.read_text()) == {"error": "VersionMismatch",
                                            "message": "Python 3.12 ≠ 3.11"}


def test_every_field_fits_whatever_its_length():
    data = {"error": "e" * 5000, "message": "\x00" * 5000, "digest": "d" * 64, "calls": 3}
    encoded = runner._encode_termination(data)
    assert len(encoded) <= KUBELET_LIMIT
    decoded = json.loads(encoded)
    assert decoded["digest"] == "d" * 64 and decoded["calls"] == 3


def test_the_first_message_wins(tmp_path):
    """A runner ends once: a SIGTERM arriving as the outputs are written doesn't overwrite
    the digest the client needs."""
    path = tmp_path / "termination-log"
    end = runner._Termination(str(path))
    assert end.write({"digest": "abc", "calls": 1, "errors": 0}, 0) == 0
    assert end.stop() == 0
    assert json.loads(path.read_text())["digest"] == "abc"


def test_a_terminated_runner_is_retried_not_failed_by_the_pod_failure_policy():
    """Exit 143 (SIGTERM) means the pod was stopped, not that the task can't succeed: no
    FailJob/FailIndex rule may name it, and an eviction's DisruptionTarget is ignored."""
    rules = pod_failure_policy()["rules"]
    for rule in rules:
        if "onExitCodes" in rule:
            assert runner.EXIT_TERMINATED not in rule["onExitCodes"]["values"]
    assert runner.EXIT_TERMINATED == 143
    assert {"action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
