"""Run checks in parallel, each as soon as what it needs has passed, each bounded in time.

Every check runs in its own daemon thread rather than a `ThreadPoolExecutor`: a network call
that never answers can't be interrupted in Python, and an executor's workers are joined at
interpreter exit, so one hung socket would hold `aksrun doctor` open after it has reported.
A check past its deadline is reported as failed at the deadline and its thread abandoned.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence

from ..errors import AksrunError
from .context import Context
from .model import Check, Outcome, Result, Status
from .text import one_line


def run_checks(checks: Sequence[Check], context: Context, timeout: float) -> list[Result]:
    """Every check's result, in the order given. A check's `needs` that are not in `checks`
    (they don't apply to this set-up) are ignored."""
    by_id = {check.id: check for check in checks}
    results: dict[str, Result] = {}
    pending = list(checks)
    running: dict[str, float] = {}  # id -> started (monotonic)
    finished: queue.Queue[tuple[str, Outcome, float]] = queue.Queue()

    while pending or running:
        progressed = False
        for check in list(pending):
            needs = [n for n in check.needs if n in by_id]
            if any(n not in results for n in needs):
                continue
            pending.remove(check)
            progressed = True
            blocked = [results[n] for n in needs if results[n].status is not Status.OK]
            if blocked:
                results[check.id] = Result(check.id, check.title, _blocked(blocked), 0.0)
                continue
            running[check.id] = time.monotonic()
            threading.Thread(target=_run_one, args=(check, context, finished),
                             name=f"doctor-{check.id}", daemon=True).start()
        if not running:
            if not progressed:  # needs that can never be met (a cycle): say so, don't spin
                for check in pending:
                    results[check.id] = Result(check.id, check.title, Outcome.skip(
                        "skipped: its needs form a cycle"), 0.0)
                pending.clear()
            continue  # what became skipped may unblock (skip) more
        now = time.monotonic()
        wait = max(0.0, min(started + timeout for started in running.values()) - now)
        try:
            check_id, outcome, seconds = finished.get(timeout=wait)
        except queue.Empty:
            now = time.monotonic()
            for check_id, started in list(running.items()):
                if now - started >= timeout:
                    del running[check_id]
                    check = by_id[check_id]
                    results[check_id] = Result(check_id, check.title, Outcome.fail(
                        f"no answer within {timeout:g} s", check.on_timeout), now - started)
            continue
        if check_id in running:  # not already given up on
            del running[check_id]
            results[check_id] = Result(check_id, by_id[check_id].title, outcome, seconds)
    return [results[check.id] for check in checks]


def _run_one(check: Check, context: Context,
             finished: queue.Queue[tuple[str, Outcome, float]]) -> None:
    started = time.monotonic()
    try:
        outcome = check.run(context)
    except AksrunError as exc:  # aksrun's own words already say what went wrong
        outcome = Outcome.fail(one_line(str(exc)),
                               "do what the message says, then run `aksrun doctor` again.")
    except Exception as exc:  # a bug, or an error no check foresaw: say it, don't crash
        outcome = Outcome.fail(f"unexpected {type(exc).__name__}: {one_line(str(exc))}",
                               "run `aksrun doctor --json` and report this output as a bug.")
    finished.put((check.id, outcome, time.monotonic() - started))


def _blocked(blocked: list[Result]) -> Outcome:
    names = ", ".join(r.title for r in blocked)
    verb = "failed" if any(r.status is Status.FAIL for r in blocked) else "was skipped"
    return Outcome.skip(f"skipped: needs {names}, which {verb}",
                        needs=[r.id for r in blocked])
