"""Kubernetes resource quantities ("64Mi", "500m", "1e3") as numbers.

The agent needs them for memory limits (cgroup bytes), the downward API's resourceFieldRef
and node capacity; the API server has already validated every quantity it hands us.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact value of a quantity string (ValueError if it is not one)."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * _DECIMAL[suffix]


def quantity_bytes(text: str | int | float) -> int:
    """A memory/storage quantity in whole bytes, rounded up as the kubelet does."""
    return math.ceil(parse_quantity(text))


def divide_ceil(value: str, divisor: str) -> int:
    """resourceFieldRef's rule: ceil(value / divisor), e.g. cpu 500m with divisor 1 -> 1."""
    div = parse_quantity(divisor or "1") or Decimal(1)
    return math.ceil(parse_quantity(value) / div)
