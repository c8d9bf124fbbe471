"""A six-minute store outage in the middle of a map on the real cluster (issue 11): the pods'
writes (log appends, outputs) wait it out inside BlobStore's retry window, the map completes,
and nothing is lost or written twice. The outage is Azurite stopped and started again on the
same port with the same data: connections refused for the whole time, as when a private
endpoint or its DNS goes away."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import aksrun
from aksrun.core import job as jobmod
from tests.e2e import funcs
from tests.support.azurite import RestartableAzurite

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
OUTAGE = 360.0
LINES, DELAY = 20, 1.0


def test_a_six_minute_store_outage_mid_map_loses_and_repeats_nothing(
        k8s, monkeypatch, tmp_path):
    from aksrun.api import session

    azurite = RestartableAzurite(tmp_path / "azurite")
    azurite.location.mkdir()
    azurite.start()
    try:
        monkeypatch.setenv("AKSRUN_STORAGE_CONNECTION_STRING", azurite.connection_string)
        monkeypatch.setenv("AKSRUN_STORE", f"az://outage-{uuid.uuid4().hex[:12]}/aksrun")
        monkeypatch.setattr(session, "_cached", None)
        results = aksrun.function()(funcs.print_slowly).map(
            [LINES] * 3, [DELAY] * 3, chunksize=1, progress=False)
        client = session.default_client()
        job_id = client.list()[0].job_id
        for index in range(3):
            k8s.running_pod(job_id, index=index, timeout=120)
        time.sleep(4)  # a few lines of each are in the store already

        azurite.stop()
        stopped = time.monotonic()
        restart = threading.Timer(OUTAGE, azurite.start)
        restart.start()
        try:
            assert list(results) == [LINES] * 3
        finally:
            restart.join()
        assert time.monotonic() - stopped >= OUTAGE - 1  # the results waited for the store

        expected = "".join(f"line {i}\n" for i in range(LINES))
        for index in range(3):
            log = client.store.read(jobmod.log_key(job_id, index)).decode()
            prefix = f"[call {index}] "  # a map's lines name their call (one call a task)
            printed = "".join(line.removeprefix(prefix) + "\n" for line in log.splitlines()
                              if line.startswith(f"{prefix}line "))
            assert printed == expected, f"task {index}:\n{log}"
        pods = k8s.pods(f"{job_id}-")
        assert len(pods) == 3  # no task was retried: the pods rode the outage out
        assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    finally:
        azurite.stop()
