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


def test_pandas_split_apply():
    out = run_example("pandas_split_apply.py")
    assert "40 stores summarised remotely; same as a local groupby-apply." in out.stdout
    jobs = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
    assert [(job["function"], job["calls"], job["state"]) for job in jobs] == [
        ("summarise", 40, "succeeded")]  # one map: one job of 40 calls


def test_artifacts(tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / "artifacts.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "AKSRUN_BACKEND": "local"})
    assert out.returncode == 0, out.stderr
    for rate, half_life in (("0.05", "13.863"), ("0.1", "6.931"), ("0.2", "3.466")):
        folder = tmp_path / f"rate-{rate}"
        assert (folder / "summary.txt").read_text() == f"rate={rate}\nhalf_life={half_life}\n"
        assert (folder / "trajectory.csv").read_text().startswith("step,value\n0,1.0\n")


def test_timeline(tmp_path):
    """The example behind docs/img/timeline.png draws its job (here into tmp_path)."""
    from PIL import Image

    target = tmp_path / "timeline.png"
    out = subprocess.run([sys.executable, str(EXAMPLES / "timeline.py"), str(target)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "AKSRUN_BACKEND": "local"})
    assert out.returncode == 0, out.stderr
    assert f": {target}" in out.stdout
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size[0] >= 800
