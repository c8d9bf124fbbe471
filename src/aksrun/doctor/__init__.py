"""`aksrun doctor`: every part a remote call depends on, checked in parallel, each failure
named with its fix in one sentence. And `aksrun init`'s parts (`discovery`, `config_file`):
find the resources, write the configuration file, then ask doctor.

    report = run_doctor()            # loads the configuration itself
    report.ok, report.results        # each Result: id, title, outcome (status, summary, fix)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.config import Config, load_config
from ..errors import ConfigError
from . import warmup
from .context import Context
from .engine import run_checks
from .model import Check, Outcome, Report, Result, Status
from .plan import note, plan

DEFAULT_TIMEOUT = 10.0  # seconds each check may take

__all__ = ["DEFAULT_TIMEOUT", "Check", "Outcome", "Report", "Result", "Status", "run_doctor"]


def run_doctor(config: Config | None = None, *, timeout: float = DEFAULT_TIMEOUT,
               cwd: str | None = None,
               load: Callable[..., Config] = load_config) -> Report:
    """Check everything this configuration relies on; never raises for what it finds."""
    started = time.monotonic()
    if config is None:
        try:
            config = load(cwd=cwd)
        except ConfigError as exc:
            failed = Result("configuration", "configuration", Outcome.fail(
                str(exc), "correct that setting where the message says it came from, then run "
                "`aksrun doctor` again."), time.monotonic() - started)
            return Report("?", (failed,), time.monotonic() - started)
    warmup.preload(config)
    results = run_checks(plan(config), Context(config, timeout), timeout)
    return Report(config.backend, tuple(results), time.monotonic() - started, note(config))
