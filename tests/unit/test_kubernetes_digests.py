"""The digests kept on a Job: compact, round-tripping, cut to the annotation budget, and
anything malformed ignored rather than trusted."""

from __future__ import annotations

import hashlib
import json

from aksrun.adapters import kubernetes_digests as digests


def job_with(value: str) -> dict:
    return {"metadata": {"annotations": {digests.ANNOTATION: value}}}


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_digests_and_calls_raised_round_trip_in_about_fifty_bytes_a_task():
    recorded = {0: (sha(0), "0"), 1: (sha(1), "2"), 7: (sha(7), None)}
    value = digests.encode(recorded)
    assert len(value) <= 52 * len(recorded)
    assert digests.decode(job_with(value)) == {0: (sha(0), None), 1: (sha(1), "2"),
                                               7: (sha(7), None)}


def test_past_the_budget_the_rest_is_left_out_and_what_is_in_stays_valid():
    many = {i: (sha(i), None) for i in range(6000)}
    value = digests.encode(many)
    assert len(value) <= digests.BUDGET
    kept = digests.decode(job_with(value))
    assert 3000 < len(kept) < 6000 and all(kept[i] == many[i] for i in kept)


def test_malformed_entries_are_ignored():
    value = json.dumps({"0": "!!!", "x": "AAAA", "2": 5, "3": "AAAA",
                        "4": digests.encode({4: (sha(4), None)})[6:-2]})
    assert digests.decode(job_with(value)) == {4: (sha(4), None)}
    assert digests.decode(job_with("not json")) == {}
    assert digests.decode({"metadata": {}}) == {}
