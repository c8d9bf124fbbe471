"""joblib's `backend="aksrun"` (issue 13): a Parallel call's batches run as aksrun jobs, few
of them (n_jobs their parallelism), with the options given to `parallel_config`; results are
those of n_jobs=1; a failing call raises its own exception (remote traceback kept) and stops
the call's jobs; Ctrl+C cancels them. scikit-learn's GridSearchCV and cross_val_score give
what they give with n_jobs=1.

The functions the jobs run are defined here and travel by value, and none uses joblib: on
the kubernetes set-up they run in the stock runner image, which has no joblib (batches travel
as plain lists of calls, not as joblib objects)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import joblib
import pytest
from joblib import Parallel, delayed

import aksrun
from aksrun.api.session import default_client
from aksrun.integrations.joblib_backend import RemoteTraceback
from tests.support.clirun import aksrun_cli
from tests.support.jobs import stored_job_ids
from tests.support.targets import configure_backend

from . import funcs


def power(x, exponent=2):
    return x ** exponent


def environment(*names):
    return [os.environ.get(name) for name in names]


def nap_unless_first(index):
    if index == 0:
        raise funcs.CustomError("the first call fails at once")
    time.sleep(120)
    return index


def records(ids: set[str]) -> list:
    client = default_client()
    return [client.record(job_id) for job_id in sorted(ids)]


def state_of(job_id: str) -> str:
    """By status, not by listing: on Kubernetes a cancelled Job is deleted, and leaves the
    list as soon as its pods are gone; its status then comes from the store."""
    return default_client().status(job_id).state


@pytest.fixture(params=["local", "local-blob"])
def local_backend(request, monkeypatch) -> str:
    """The local set-ups only: scikit-learn is in the client's environment (the runner
    processes share it), not in the cluster's runner image."""
    configure_backend(request.param, request, monkeypatch)
    return request.param


def test_parallel_gives_what_n_jobs_1_gives_in_few_jobs(backend):
    expected = Parallel(n_jobs=1)(delayed(power)(x, exponent=3) for x in range(60))
    before = stored_job_ids()
    with joblib.parallel_config(backend="aksrun", cpu="250m", memory="256Mi"):
        parallel = Parallel(n_jobs=3, batch_size=1)
        got = parallel(delayed(power)(x, exponent=3) for x in range(60))
        made = records(stored_job_ids() - before)
        in_order = list(Parallel(n_jobs=2, return_as="generator")(
            delayed(power)(x) for x in range(5)))
    assert got == expected and in_order == [0, 1, 4, 9, 16]
    assert parallel.n_dispatched_batches == 60  # one joblib batch per call...
    # ...dispatched in one burst, which the Executor coalesces: one job, or two when a busy
    # client stalls the burst past the Executor's quiet window (the cluster set-up's node
    # agent shares this process); without the burst it was 55 jobs.
    assert 1 <= len(made) <= 2 and sum(r.calls for r in made) == 60
    assert {r.max_parallel for r in made} == {3}  # n_jobs is their parallelism
    assert {r.function_name for r in made} == {"power"}  # not the batch runner's name


def test_options_reach_the_job(backend):
    before = stored_job_ids()
    with joblib.parallel_config(backend="aksrun", memory="768Mi", inner_max_num_threads=1,
                                env={"JOBLIB_PROBE": "from parallel_config"}):
        got = Parallel(n_jobs=2)(delayed(environment)("JOBLIB_PROBE", "OMP_NUM_THREADS")
                                 for _ in range(4))
    assert got == [["from parallel_config", "1"]] * 4
    threads = {var: "1" for var in joblib.parallel.ParallelBackendBase.MAX_NUM_THREADS_VARS}
    made = records(stored_job_ids() - before)
    assert made and all(r.options["memory"] == "768Mi" for r in made)
    assert all(r.options["env"] == {"JOBLIB_PROBE": "from parallel_config", **threads}
               for r in made)


def test_a_failing_call_raises_its_own_exception_and_stops_the_job(backend):
    before = stored_job_ids()
    start = time.monotonic()
    with (pytest.raises(funcs.CustomError, match="fails at once") as info,
          joblib.parallel_config(backend="aksrun", memory="256Mi")):
        Parallel(n_jobs=4)(delayed(nap_unless_first)(i) for i in range(4))
    assert time.monotonic() - start < 90  # not after the other calls' two minutes
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)  # joblib drops the traceback; its cause keeps it
    assert "in nap_unless_first" in cause.text and "CustomError" in cause.text
    made = stored_job_ids() - before
    ended = {"succeeded", "failed", "cancelled"}
    deadline = time.monotonic() + 60  # the other calls sleep two minutes: they were stopped
    while not {state_of(j) for j in made} <= ended and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {state_of(j) for j in made} <= ended and "cancelled" in {state_of(j) for j in made}


def test_n_jobs_minus_one_is_aksrun_default_parallelism(monkeypatch):
    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    monkeypatch.setenv("AKSRUN_MAX_PARALLEL", "3")
    with joblib.parallel_config(backend="aksrun"):
        backend = joblib.parallel.get_active_backend()[0]
        assert backend.effective_n_jobs(-1) == 3 and backend.effective_n_jobs(-2) == 2
        assert backend.effective_n_jobs(-5) == 1 and backend.effective_n_jobs(7) == 7
        before = stored_job_ids()
        assert Parallel()(delayed(power)(x) for x in range(6)) == [x * x for x in range(6)]
    made = records(stored_job_ids() - before)
    assert made and {r.max_parallel for r in made} == {3}  # n_jobs=None: the default, -1


@pytest.mark.parametrize(("options", "named"), [
    ({"memroy": "4Gi"}, "'memroy' is not an aksrun.function option (did you mean 'memory'?)"),
    ({"cpu": "2 cores"}, "cpu"),
    ({"max_parallel": 4}, "n_jobs is its parallelism"),
])
def test_a_bad_option_is_a_config_error_naming_it(options, named):
    with pytest.raises(aksrun.ConfigError) as info:
        joblib.parallel_config(backend="aksrun", **options)
    assert named in str(info.value)


def keep(x, lock=None):
    return x


def test_an_argument_that_wont_pickle_is_named(monkeypatch):
    import threading

    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    with (pytest.raises(aksrun.SerializationError) as info,
          joblib.parallel_config(backend="aksrun")):
        Parallel(n_jobs=2)(delayed(keep)(i, lock=threading.Lock() if i == 3 else None)
                           for i in range(5))
    assert str(info.value).startswith("argument 'lock' to keep() could not be pickled: "
                                      "TypeError: cannot pickle '_thread.lock' object")


def test_n_jobs_0_is_a_config_error_with_the_fix(monkeypatch):
    monkeypatch.setenv("AKSRUN_BACKEND", "local")
    with pytest.raises(aksrun.ConfigError, match="n_jobs=-1"):
        Parallel(n_jobs=0, backend="aksrun")(delayed(power)(x) for x in range(2))


def test_grid_search_and_cross_val_score_match_n_jobs_1(local_backend):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    grid = {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.1]}
    reference = GridSearchCV(SVC(), grid, cv=3, n_jobs=1).fit(X, y)
    reference_scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=4, n_jobs=1)
    before = stored_job_ids()
    with joblib.parallel_config(backend="aksrun", memory="1Gi"):
        search = GridSearchCV(SVC(), grid, cv=3, n_jobs=2).fit(X, y)
        made = records(stored_job_ids() - before)
        scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=4)
    assert search.best_params_ == reference.best_params_
    assert search.best_score_ == reference.best_score_
    assert list(search.cv_results_["mean_test_score"]) == list(
        reference.cv_results_["mean_test_score"])
    assert list(scores) == list(reference_scores)
    # 18 fits (6 candidates x 3 folds) submitted in one burst: one job (two if the burst
    # stalls), two at a time, named for what it runs
    assert 1 <= len(made) <= 2 and sum(r.calls for r in made) == 18
    assert {(r.max_parallel, r.function_name) for r in made} == {(2, "_fit_and_score")}


def test_a_failing_fit_raises_its_own_exception(local_backend):
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    with (pytest.raises(ValueError, match="gamma") as info,
          joblib.parallel_config(backend="aksrun", memory="1Gi")):
        GridSearchCV(SVC(), {"gamma": ["scale", "not-a-gamma"]}, cv=2, n_jobs=2,
                     error_score="raise").fit(X, y)
    assert isinstance(info.value.__cause__, RemoteTraceback)


CTRL_C = """
import aksrun, joblib
from tests.e2e import funcs
with joblib.parallel_config(backend="aksrun"):
    joblib.Parallel(n_jobs=2)(joblib.delayed(funcs.sleep_for)(60) for _ in range(2))
"""


def test_ctrl_c_cancels_the_jobs_with_one_line():
    process = subprocess.Popen([sys.executable, "-c", CTRL_C], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        running: list[str] = []
        while not running and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.3)
            listing = json.loads(aksrun_cli("jobs", "ls", "--json").stdout)
            running = [row["job_id"] for row in listing if row["state"] == "running"]
        assert running, process.stderr.read() if process.poll() is not None else "no job ran"
        process.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert time.monotonic() - start < 10, err
    assert process.returncode != 0 and err.rstrip().endswith("KeyboardInterrupt"), err
    made = stored_job_ids()  # this test's own AKSRUN_HOME: the script's job (or two)
    said = [line for line in err.splitlines() if line.startswith("aksrun: interrupted")]
    assert sorted(said) == [f"aksrun: interrupted; cancelling job {job_id} "
                            "(`aksrun jobs ls` shows it cancelled)." for job_id in sorted(made)]
    deadline = time.monotonic() + 10
    while {state_of(j) for j in made} != {"cancelled"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {state_of(j) for j in made} == {"cancelled"}
