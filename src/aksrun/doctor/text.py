"""Error text made to fit one report line."""

from __future__ import annotations

LIMIT = 300


def one_line(value: object, limit: int = LIMIT) -> str:
    """`value` as text on one line, cut at `limit` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(exc: BaseException) -> str:
    """An SDK exception's own message, its first line (the rest is the SDK's framing)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
