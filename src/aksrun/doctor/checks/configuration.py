"""Which settings are in effect and where each came from: the first thing to know when aksrun
talks to another cluster or store than the one you meant."""

from __future__ import annotations

from typing import Any

from ...core.config import ENV_NAMES, Config
from ..context import Context
from ..model import Outcome

SECRET_FIELDS = frozenset({"storage_connection_string"})


def settings(config: Config) -> dict[str, dict[str, Any]]:
    """Every setting that is not a default: its value (secrets hidden) and its source."""
    out: dict[str, dict[str, Any]] = {}
    for field, source in sorted(config.sources.items()):
        value = getattr(config, field, None)
        shown = "(set, hidden)" if field in SECRET_FIELDS and value else value
        out[field] = {"value": shown, "source": source}
    return out


def by_source(config: Config) -> dict[str, list[str]]:
    """Source label -> the names the user wrote there (variable names for the environment
    and .env, keys for a file), so the line reads as the user would search for them."""
    groups: dict[str, list[str]] = {}
    for field, source in sorted(config.sources.items()):
        if source.startswith("environment variable "):
            label, name = "environment", ENV_NAMES.get(field, field)
        elif source.startswith(".env ("):
            label, name = ".env", ENV_NAMES.get(field, field)
        elif source == "argument":
            label, name = "arguments", field
        else:  # "<path> key 'x'" or "<path> [tool.aksrun] key 'x'"
            label, name = source.rsplit(" key ", 1)[0], field
        groups.setdefault(label, []).append(name)
    return groups


def check_configuration(context: Context) -> Outcome:
    config = context.config
    parts = [f"backend {config.backend} ({config.source_of('backend')})"]
    for label, names in by_source(config).items():
        parts.append(f"{label}: {', '.join(names)}")
    if len(parts) == 1:
        parts.append("everything else is a default")
    return Outcome.ok("; ".join(parts), settings=settings(config), backend=config.backend,
                      namespace=config.effective_namespace, store=config.store_url)
