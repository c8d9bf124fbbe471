"""A picture of a job (issue 13, item 5): `aksrun jobs show ID --timeline FILE` draws one row
per task, each attempt on a time axis with how it ended and why, and the calls' counts, from
what the store and the compute recorded (not from a client that watched)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

import aksrun
from aksrun.api.session import default_client
from aksrun.timeline.collect import collect
from aksrun.timeline.draw import default_size
from tests.support.clirun import aksrun_cli

from . import funcs

SVG = "{http://www.w3.org/2000/svg}"
SLACK = 2.0  # seconds: Kubernetes' timestamps are whole seconds, the store's are not


def _only_job() -> str:
    (status,) = default_client().list()  # each test has its own home / namespace
    return status.job_id


def _eventful_job(tmp_path, kill_always: bool = False) -> tuple[str, list]:
    marks = tmp_path / "marks"
    marks.mkdir(mode=0o1777)
    marks.chmod(0o1777)  # pods run as uid 1000 (umask aside)
    remote = aksrun.function(retries=0 if kill_always else 1, name="eventful")(funcs.eventful)
    results = list(remote.map(range(8), [str(marks)] * 8, [kill_always] * 8, chunksize=2,
                              return_exceptions=True))
    return _only_job(), results


def _svg_bars(path) -> dict[str, str]:
    """id -> tooltip of every bar in the SVG."""
    root = ET.parse(path).getroot()
    bars = {}
    for group in root.iter(f"{SVG}g"):
        if re.fullmatch(r"task-\d+-attempt-\d+-(pending|running)", group.get("id", "")):
            title = group.find(f"{SVG}title")
            bars[group.get("id")] = title.text if title is not None else ""
    return bars


def test_a_job_with_a_retry_is_drawn_one_row_per_task(backend, tmp_path):
    """4 tasks of 2 calls: task 1's runner is stopped once (a fault: the task runs again),
    task 2 has a call that raises and one re-run by retries=1."""
    job_id, results = _eventful_job(tmp_path)
    assert results[:4] == [0, 1, 2, 3] and results[5:] == [5, 6, 7], results
    assert isinstance(results[4], ValueError)

    # the data the picture is drawn from
    timeline = collect(default_client(), job_id)
    assert [(row.index, row.first_call, row.calls) for row in timeline.rows] == [
        (0, 0, 2), (1, 2, 2), (2, 4, 2), (3, 6, 2)]
    outcomes = {row.index: [s.outcome for s in row.spans] for row in timeline.rows}
    assert outcomes == {0: ["succeeded"], 1: ["retried", "succeeded"], 2: ["succeeded"],
                        3: ["succeeded"]}, timeline.spans
    fault, retry = timeline.rows[1].spans
    assert (fault.attempt, retry.attempt) == (0, 1)
    assert fault.reason and fault.message, fault  # why it was retried
    assert retry.started >= fault.finished - SLACK
    counts = timeline.rows[2].spans[0]
    assert (counts.calls, counts.raised, counts.retried) == (2, 1, 2), counts
    assert (timeline.rows[0].spans[0].calls, timeline.rows[0].spans[0].raised) == (2, 0)
    for span in timeline.spans:
        assert timeline.submitted - SLACK <= span.created <= span.started + SLACK, span
        assert span.started <= span.finished <= time.time(), span
    assert timeline.retries == 1 and timeline.raised == 1 and timeline.calls == 8

    # PNG: a valid image of the size asked for, and by default of the size for 4 rows
    png = tmp_path / "job.png"
    out = aksrun_cli("jobs", "show", job_id, "--timeline", str(png), "--timeline-size", "900x450")
    assert out.returncode == 0, out.stderr
    assert job_id in out.stdout and str(png) in out.stderr  # `show` still shows the job
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (900, 450)
        image.verify()
    out = aksrun_cli("jobs", "show", job_id, "--timeline", str(tmp_path / "auto.png"))
    assert out.returncode == 0, out.stderr
    with Image.open(tmp_path / "auto.png") as image:
        assert image.size == default_size(4)

    # SVG: a bar per attempt, ids naming task and attempt, tooltips with the words
    svg = tmp_path / "job.svg"
    assert aksrun_cli("jobs", "show", job_id, "--timeline", str(svg)).returncode == 0
    bars = _svg_bars(svg)
    running = sorted(b for b in bars if b.endswith("-running"))
    assert running == ["task-0-attempt-0-running", "task-1-attempt-0-running",
                       "task-1-attempt-1-running", "task-2-attempt-0-running",
                       "task-3-attempt-0-running"]
    assert "retried" in bars["task-1-attempt-0-running"]
    assert fault.reason in bars["task-1-attempt-0-running"]
    assert "2 calls, 1 raised, 2 re-run" in bars["task-2-attempt-0-running"]
    texts = [t.text for t in ET.parse(svg).getroot().iter(f"{SVG}text")]
    assert [t for t in texts if t and t.startswith("task ")] == [
        "task 0 (calls 0\u20131)", "task 1 (calls 2\u20133)", "task 2 (calls 4\u20135)",
        "task 3 (calls 6\u20137)"]

    # HTML: the SVG inline, and a table row per attempt
    page = tmp_path / "job.html"
    assert aksrun_cli("jobs", "show", job_id, "--timeline", str(page)).returncode == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and job_id in text
    assert len(re.findall(r"<tr><td>\d+</td>", text)) == 5


def test_a_task_that_fails_and_the_job_it_fails(backend, tmp_path):
    """Task 1's runner is stopped on every attempt: three retries, then it fails, and so
    does the job."""
    job_id, results = _eventful_job(tmp_path, kill_always=True)
    assert all(isinstance(r, aksrun.JobFailedError) for r in results[2:4]), results
    # the caller hears of the failed task at once; the Job is marked Failed by its controller
    # a moment later (on Kubernetes), once its last pods have ended
    client = default_client()
    deadline = time.monotonic() + 60
    while client.status(job_id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    timeline = collect(client, job_id)
    assert timeline.state == "failed"
    assert [s.outcome for s in timeline.rows[1].spans] == ["retried"] * 3 + ["failed"]
    assert [s.outcome for s in timeline.rows[0].spans] == ["succeeded"]
    svg = tmp_path / "failed.svg"
    out = aksrun_cli("jobs", "show", job_id, "--timeline", str(svg))
    assert out.returncode == 0, out.stderr
    bars = _svg_bars(svg)
    assert bars["task-1-attempt-3-running"].startswith("task 1 (calls 2\u20133), attempt 4: failed")


def test_a_running_job_and_then_cancelled_shows_what_it_stopped(tmp_path):
    """Local backend: while it runs, the running attempt is open-ended and the queued tasks
    wait; once cancelled, the running attempt ends where the job did, as stopped, and the
    tasks that never started waited until then."""
    remote = aksrun.function(name="sleepy")(funcs.sleep_for)
    results = remote.map([30, 30, 30], max_parallel=1, chunksize=1, return_exceptions=True)
    job_id = _only_job()
    client = default_client()
    deadline = time.monotonic() + 30
    while client.status(job_id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    running = collect(client, job_id)
    assert [(s.index, s.outcome, s.finished) for s in running.spans] == [
        (0, "running", None), (1, "pending", None), (2, "pending", None)]
    out = aksrun_cli("jobs", "show", job_id, "--timeline", str(tmp_path / "running.svg"))
    assert out.returncode == 0, out.stderr
    assert "task 0 (call 0), attempt 1: running" in _svg_bars(tmp_path / "running.svg")[
        "task-0-attempt-0-running"]
    assert aksrun_cli("jobs", "cancel", job_id).returncode == 0
    assert all(isinstance(r, aksrun.JobCancelledError) for r in results)
    timeline = collect(client, job_id)
    assert timeline.state == "cancelled"
    spans = timeline.spans
    assert [(s.index, s.outcome, s.reason) for s in spans] == [
        (0, "stopped", "Cancelled"), (1, "stopped", "Cancelled"), (2, "stopped", "Cancelled")]
    assert spans[0].started is not None and spans[1].started is None
    assert spans[1].finished == pytest.approx(timeline.finished)
    png = tmp_path / "cancelled.png"
    assert aksrun_cli("jobs", "show", job_id, "--timeline", str(png)).returncode == 0
    with Image.open(png) as image:
        assert image.size == default_size(3)


def _one_error_line(out) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("Error:")]
    return line


@pytest.mark.parametrize(("args", "words"), [
    (["--timeline", "job.jpg"], ["'job.jpg'", ".jpg", ".png, .svg or .html"]),
    (["--timeline", "job"], ["no file type", ".png, .svg or .html"]),
    (["--timeline", "job.png", "--timeline-size", "10x10"], ["'10x10'", "e.g. 1200x600"]),
    (["--timeline", "job.png", "--timeline-size", "big"], ["'big'", "WIDTHxHEIGHT"]),
    (["--timeline-size", "900x400"], ["--timeline-size", "give --timeline FILE too"]),
])
def test_bad_timeline_arguments_are_usage_errors(tmp_path, monkeypatch, args, words):
    job_id = aksrun_cli("run", "--detach", "tests.e2e.funcs:square", "3").stdout.strip()
    assert aksrun_cli("jobs", "result", job_id).returncode == 0
    monkeypatch.chdir(tmp_path)  # after the run: its module is found from the project root
    line = _one_error_line(aksrun_cli("jobs", "show", job_id, *args))
    for word in words:
        assert word in line, (word, line)
    assert list(tmp_path.iterdir()) == []  # nothing drawn


def test_without_matplotlib_the_error_names_the_extra(tmp_path):
    """matplotlib is optional (`aksrun[plot]`): without it, one line says what to install."""
    job_id = aksrun_cli("run", "--detach", "tests.e2e.funcs:square", "3").stdout.strip()
    assert aksrun_cli("jobs", "result", job_id).returncode == 0
    without = ("import sys; sys.modules['matplotlib'] = None; "  # `import matplotlib` fails
               "sys.argv[0] = 'aksrun'; from aksrun.cli.main import main; main()")
    target = tmp_path / "job.png"
    out = subprocess.run([sys.executable, "-c", without, "jobs", "show", job_id, "--timeline",
                          str(target)], capture_output=True, text=True, timeout=120)
    line = _one_error_line(out)
    assert "matplotlib" in line and "pip install 'aksrun[plot]'" in line, line
    assert not target.exists()
    # the same command with matplotlib draws
    assert aksrun_cli("jobs", "show", job_id, "--timeline", str(target)).returncode == 0
    assert target.stat().st_size > 0


def test_save_from_python(tmp_path):
    """aksrun.timeline.save: the same picture from a notebook; bad input said before any work."""
    import aksrun.timeline
    from aksrun.errors import ConfigError

    assert aksrun.function()(funcs.square)(4) == 16
    job_id = _only_job()
    svg = aksrun.timeline.save(job_id, tmp_path / "call.svg", size=(800, 300))
    bars = _svg_bars(svg)
    assert "task-0-attempt-0-running" in bars and bars.keys() <= {
        "task-0-attempt-0-pending", "task-0-attempt-0-running"}
    assert ET.parse(svg).getroot().get("width") == "576pt"  # 800 px at 100 dpi, in points
    with pytest.raises(ConfigError, match=r"\.png, \.svg or \.html"):
        aksrun.timeline.save(job_id, tmp_path / "call.pdf")
    with pytest.raises(aksrun.UnknownJobError):
        aksrun.timeline.save("square-20200101-000000-zzzzz", tmp_path / "none.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.svg"]


def test_a_job_compute_has_forgotten_says_why_it_cannot_be_drawn(tmp_path):
    """The attempts' times live with the compute: once it has forgotten the job (on AKS the
    Job's TTL), one line says so and when to draw instead."""
    import os
    import shutil

    job_id = aksrun_cli("run", "--detach", "tests.e2e.funcs:square", "3").stdout.strip()
    assert aksrun_cli("jobs", "result", job_id).returncode == 0
    shutil.rmtree(os.path.join(os.environ["AKSRUN_HOME"], "local", "jobs", job_id))
    line = _one_error_line(aksrun_cli("jobs", "show", job_id, "--timeline",
                                      str(tmp_path / "gone.png")))
    assert f"job {job_id} is in the store, but no longer on local compute" in line, line
    assert "Draw it before the job is removed" in line
    assert not (tmp_path / "gone.png").exists()
