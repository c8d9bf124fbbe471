"""A burst of Executor submits on the real cluster (issue 12): coalesced into at most a few
Jobs, every call's own value back."""

from __future__ import annotations

import aksrun
from tests.e2e import funcs


def test_a_thousand_submits_in_a_burst_create_at_most_ten_jobs(k8s):
    before = k8s.requests()
    with aksrun.Executor(max_workers=4) as ex:
        futures = [ex.submit(funcs.square, i) for i in range(1000)]
        assert [f.result(timeout=300) for f in futures] == [i * i for i in range(1000)]
    created = (k8s.requests() - before)[("create", "jobs")]
    assert 1 <= created <= 10
    assert len({f.job_id for f in futures}) == created
