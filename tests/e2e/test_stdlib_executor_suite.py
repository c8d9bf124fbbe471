"""CPython's own executor tests (`test.test_concurrent_futures`), run against aksrun.Executor
on the local backend: the cases that apply to any executor, subclassed with an aksrun mixin.

The suite is loaded where Debian installs it (`libpython3.11-testsuite`, which `make test`
installs), not copied here. Cases that cannot apply are listed in NOT_APPLICABLE with why.
"""

from __future__ import annotations

import importlib
import os
import sys
import unittest
from pathlib import Path

import cloudpickle
import pytest

import aksrun

SUITE = Path("/usr/lib/python3.11/test")


def _load():
    if not (SUITE / "test_concurrent_futures.py").is_file():
        message = (f"CPython's test suite is not at {SUITE}: `make stdlib-tests` installs "
                   "Debian's libpython3.11-testsuite")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    import test  # this interpreter's (often stripped) package: Debian's suite goes first

    if str(SUITE) not in test.__path__:
        test.__path__.insert(0, str(SUITE))
    module = importlib.import_module("test.test_concurrent_futures")
    # Its helpers (mul, capture, ...) must reach the runner, which can't import this suite.
    cloudpickle.register_pickle_by_value(module)
    return module


cft = _load()

# case name -> why it cannot apply to aksrun.Executor
NOT_APPLICABLE = {
    # ExecutorShutdownTest: these run a script that imports the executor from
    # concurrent.futures by name, or inspect a pool's worker threads/processes.
    "test_interpreter_shutdown": "its script imports the executor from concurrent.futures",
    "test_run_after_shutdown_raises":
        "covered by test_executor_pool.test_submit_during_interpreter_shutdown_is_refused",
    "test_submit_after_interpreter_shutdown": "its script imports the executor from "
                                               "concurrent.futures",
    "test_hang_issue12364": "a pool's worker queue: aksrun has no workers in this process",
    "test_cancel_futures_wait_false": "its script imports the executor from concurrent.futures",
    "test_hang_gh83386": "its script imports the executor from concurrent.futures",
    "test_cancel_futures": "it shuts down a microsecond after 50 submits and wants some of "
                           "them finished: a pool's threads have started five by then; "
                           "aksrun's calls are all still PENDING (a job starts within ~50 ms), "
                           "so shutdown(cancel_futures=True) rightly cancels all 50",
    # ExecutorTest
    "test_no_stale_references": "submits a bound method of an object in this process: aksrun "
                                "pickles it, so the original is never referenced remotely; "
                                "what it guards (no internal reference) is covered by "
                                "test_executor_pool's freed-value test",
}


class SharedProcessBase(unittest.TestCase):
    """In place of the suite's BaseTestCase, whose set-up and tear-down assume the test owns
    every thread and child process of the interpreter: it counts threads (and iterates a
    WeakSet the session's node agent changes meanwhile: "Set changed size during
    iteration") and reaps every child, which would take the local backend's supervisors
    from aksrun. Neither is a property of the executor under test."""


class AksrunExecutorMixin(cft.ExecutorMixin):
    executor_type = aksrun.Executor
    worker_count = 5

    def setUp(self):
        name = self._testMethodName
        if name in NOT_APPLICABLE:
            raise unittest.SkipTest(f"not applicable to aksrun: {NOT_APPLICABLE[name]}")
        super().setUp()


class AksrunExecutorTest(AksrunExecutorMixin, cft.ExecutorTest, SharedProcessBase):
    pass


class AksrunWaitTests(AksrunExecutorMixin, cft.WaitTests, SharedProcessBase):
    pass


class AksrunAsCompletedTests(AksrunExecutorMixin, cft.AsCompletedTests, SharedProcessBase):
    pass


class AksrunShutdownTest(AksrunExecutorMixin, cft.ExecutorShutdownTest, SharedProcessBase):
    pass


def test_the_suite_came_from_debians_testsuite():
    assert Path(cft.__file__).parent == SUITE and sys.version_info[:2] == (3, 11)
