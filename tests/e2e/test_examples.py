"""The examples run as a reader would run them (`python examples/<name>.py`, on the local
backend) and print what they promise. One test per example: add yours here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.clirun import aksrun_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "AKSRUN_BACKEND": "local"})
    assert out.returncode == 0, out.stderr
    return out


def test_sklearn_grid_search():
    out = run_example("sklearn_grid_search.py")
    assert "best params: {'C': " in out.stdout, out.stdout
    assert "best cross-validated accuracy: 0." in out.stdout, out.stdout
    jobs = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    # its 12 fits (2 x 2 candidates, 3 folds) in one job (two if the burst stalled)
    assert 1 <= len(jobs) <= 2 and sum(job["calls"] for job in jobs) == 12
    assert {(job["function"], job["state"]) for job in jobs} == {("_fit_and_score",
                                                                  "succeeded")}
