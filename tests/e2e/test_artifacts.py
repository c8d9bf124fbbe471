"""Artifacts (issue 13): files a call writes under `aksrun.output_dir()` come back with
`future.artifacts(dest)` / `aksrun jobs artifacts`, each verified against the sha256 recorded
in its task's verified output; nothing unverified or partial ever appears at the
destination, and nothing of the user's is overwritten."""

from __future__ import annotations

import hashlib

import pytest

import aksrun
from aksrun.api.session import default_client
from aksrun.core.artifacts import artifact_key
from tests.support.clirun import aksrun_cli

from . import funcs


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_calls_files_come_back_verified(backend, tmp_path):
    fut = aksrun.function()(funcs.write_artifacts).submit(7)
    digest = fut.result(timeout=300)
    written = fut.artifacts(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "a.txt", "sub/big.bin"]
    assert (tmp_path / "out" / "a.txt").read_text() == "hello 7"
    assert _sha(tmp_path / "out" / "sub" / "big.bin") == digest
    # again into the same place: identical files are fine
    assert len(fut.artifacts(tmp_path / "out")) == 2


def test_a_maps_files_per_call_and_from_the_cli(backend, tmp_path):
    results = list(aksrun.function()(funcs.write_artifacts).map(range(3), [1000] * 3,
                                                                chunksize=2))
    job_id = _last_job_id()
    aksrun.get(job_id).artifacts(tmp_path / "all")
    for i, digest in enumerate(results):
        assert (tmp_path / "all" / str(i) / "a.txt").read_text() == f"hello {i}"
        assert _sha(tmp_path / "all" / str(i) / "sub" / "big.bin") == digest
    out = aksrun_cli("jobs", "artifacts", job_id, "--call", "2", "--dest", str(tmp_path / "two"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "two" / "a.txt").read_text() == "hello 2"
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["a.txt", "sub"]
    out = aksrun_cli("jobs", "artifacts", job_id, "--call", "9", "--dest", str(tmp_path / "x"))
    assert out.returncode == 1 and "no call 9" in out.stderr and "Traceback" not in out.stderr


def test_a_corrupted_artifact_is_refused_and_never_written(backend, tmp_path):
    fut = aksrun.function()(funcs.write_artifacts).submit(1, 5000)
    fut.result(timeout=300)
    store = default_client().store
    key = artifact_key(fut.job_id, 0, "sub/big.bin")
    data = bytearray(store.get(key))
    data[100] ^= 0xFF
    store.put(key, bytes(data))
    with pytest.raises(aksrun.IntegrityError, match=r"sub/big\.bin"):
        fut.artifacts(tmp_path / "out")
    assert not (tmp_path / "out" / "sub" / "big.bin").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".aksrun-")]


def test_a_different_file_at_the_destination_is_not_overwritten(backend, tmp_path):
    fut = aksrun.function()(funcs.write_artifacts).submit(2, 10)
    fut.result(timeout=300)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"a\.txt"):
        fut.artifacts(tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "mine"
    assert not (tmp_path / "out" / "sub").exists()  # checked before anything was written


def test_a_retried_call_keeps_only_its_last_attempts_files(backend, tmp_path):
    fut = aksrun.function(retries=1)(funcs.write_then_crash_once).submit(str(tmp_path / "log"))
    assert fut.result(timeout=300) == 2
    names = sorted(p.name for p in fut.artifacts(tmp_path / "out"))
    assert names == ["attempt-2.txt"]


def test_files_a_child_process_wrote_to_the_calls_directory_come_back(backend, tmp_path):
    """The runner looks at a call's directory at once when the call asked for it; one
    written by other means (a tool given $AKSRUN_OUTPUT_DIR) is collected at the task's end."""
    assert list(aksrun.function()(funcs.write_artifact_from_a_child).map(range(3))) == [0, 1, 2]
    aksrun.get(_last_job_id()).artifacts(tmp_path / "all")
    for i in range(3):
        assert (tmp_path / "all" / str(i) / "child.txt").read_text() == f"from child {i}"


def test_a_child_processs_files_go_to_its_call_between_calls_that_write_none(backend, tmp_path):
    remote = aksrun.function()(funcs.write_artifact_from_a_child_now_and_then)
    assert list(remote.map(range(8), chunksize=8)) == list(range(8))
    aksrun.get(_last_job_id()).artifacts(tmp_path / "all")
    assert sorted(p.relative_to(tmp_path / "all").as_posix()
                  for p in (tmp_path / "all").rglob("*.txt")) == ["1/child.txt", "4/child.txt",
                                                                 "7/child.txt"]
    for i in (1, 4, 7):
        assert (tmp_path / "all" / str(i) / "child.txt").read_text() == f"from child {i}"


def test_output_dir_outside_a_remote_call_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AKSRUN_OUTPUT_DIR", raising=False)
    assert aksrun.output_dir().resolve() == (tmp_path / "aksrun-output").resolve()
    funcs.write_artifacts(0, 10)
    assert (tmp_path / "aksrun-output" / "a.txt").read_text() == "hello 0"


def _last_job_id() -> str:
    jobs = default_client().list()
    return max(jobs, key=lambda s: s.started or 0).job_id
