"""Kubernetes resource quantities and human durations, parsed once and validated at decoration.

Parsing is strict on purpose: a typo such as "4GB" or "2 cores" is caught on the user's
machine with the accepted forms spelled out, not as a rejected Job minutes later.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ..errors import ConfigError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(m|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_cpu(value: str | int | float, option: str = "cpu") -> str:
    """Validate a CPU quantity ("500m", "2", 1.5) and return its canonical Kubernetes string."""
    if isinstance(value, bool):
        raise _bad(option, value, 'CPU cores as a number or Kubernetes quantity, e.g. "500m", "2"')
    text = _as_text(value)
    match = _QUANTITY.match(text)
    if not match or (match.group(2) not in (None, "m")):
        raise _bad(option, value, 'CPU cores as a number or Kubernetes quantity, e.g. "500m", "2"')
    cores = cpu_cores(text)
    if cores <= 0:
        raise ConfigError(f"{option}={value!r} must be more than zero cores (e.g. \"250m\").")
    if cores * 1000 != int(cores * 1000):
        raise ConfigError(
            f"{option}={value!r} is finer than Kubernetes allows (1m = 0.001 core); "
            'round it, e.g. "250m".'
        )
    return text


def cpu_cores(text: str) -> float:
    """Cores as a float ("500m" -> 0.5); input must already be valid."""
    if text.endswith("m"):
        return float(Decimal(text[:-1]) / 1000)
    return float(Decimal(text))


def parse_memory(value: str | int, option: str = "memory") -> str:
    """Validate a memory quantity ("4Gi", "512Mi", "1G", bytes as int) and return it canonical."""
    accepted = 'bytes or a Kubernetes quantity with a unit, e.g. "512Mi", "4Gi", "1G"'
    if isinstance(value, bool):
        raise _bad(option, value, accepted)
    text = _as_text(value)
    match = _QUANTITY.match(text)
    if not match or match.group(2) == "m":
        hint = ""
        if re.match(r"^[0-9.]+\s*(GB|MB|KB|TB|gb|mb|kb|gi|mi)$", text.strip()):
            hint = ' (Kubernetes spells them "Gi"/"Mi" for binary or "G"/"M" for decimal units)'
        raise ConfigError(f"{option}={value!r} is not a memory size{hint}; use {accepted}.")
    if memory_bytes(text) < 1024 * 1024:
        raise ConfigError(
            f"{option}={value!r} is under 1Mi; a Python process needs far more. "
            'Use e.g. "512Mi" or "4Gi".'
        )
    return text


def memory_bytes(text: str) -> int:
    """Bytes of a valid memory quantity ("4Gi" -> 4294967296)."""
    match = _QUANTITY.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a memory quantity")
    number, unit = Decimal(match.group(1)), match.group(2)
    factor = _BINARY.get(unit or "") or _DECIMAL.get(unit or "", 1)
    return int(number * factor)


def parse_duration(value: str | int | float | None, option: str = "timeout") -> float | None:
    """Seconds from 90, "90s", "30m", "2h", "1h30m", "7d"; None stays None (no limit)."""
    if value is None:
        return None
    accepted = 'seconds as a number, or a duration such as "90s", "30m", "2h", "1h30m"'
    if isinstance(value, bool):
        raise _bad(option, value, accepted)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for part in _DURATION_PART.finditer(text):
                if part.start() != pos:
                    break
                seconds += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
                pos = part.end()
            if pos != len(text) or not text:
                raise _bad(option, value, accepted) from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{option}={value!r} must be a positive duration; use {accepted}.")
    return seconds


def format_duration(seconds: float | None) -> str:
    """Short human form for tables: 0.4s, 12s, 3m05s, 2h10m."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _as_text(value: object) -> str:
    if isinstance(value, int | float):
        if isinstance(value, float) and value != value:
            return "nan"
        try:
            return format(Decimal(str(value)).normalize(), "f")
        except InvalidOperation:
            return str(value)
    if isinstance(value, str):
        return value.strip()
    return repr(value)


def _bad(option: str, value: object, accepted: str) -> ConfigError:
    return ConfigError(f"{option}={value!r} is not valid; use {accepted}.")
