"""`aksrun init` as one function: the settings (flags, environment, .env, the file, ARM) and
the change to the configuration file, computed without writing anything, so the command can
show it, ask for --force, and only then write."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..core import naming
from ..core.config import load_config
from . import config_file, discovery
from .context import Context


@dataclass(frozen=True)
class InitPlan:
    found: dict[str, discovery.Found]
    change: config_file.Change


def plan_init(flags: Mapping[str, str | None], *, cwd: str | None = None,
              pyproject: bool = False, timeout: float = 10.0) -> InitPlan:
    """Raises ConfigError for what the person must settle (a flag names it), AksrunError
    when Azure can't be asked."""
    if flags.get("user") is not None:
        naming.check_user(str(flags["user"]))  # as typed: never written other than given
    here = cwd or os.getcwd()
    config = load_config({k: v for k, v in flags.items() if v is not None}, cwd=here)
    found = discovery.resolve(config, Context(config, timeout))
    target = config_file.find_target(here, pyproject)
    change = config_file.plan_change(target, {k: f.value for k, f in found.items()})
    return InitPlan(found, change)
