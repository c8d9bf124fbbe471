"""Label and field selectors, parsed like apimachinery's labels.Parse / fields.ParseSelector.

Malformed selectors are rejected with 400 BadRequest rather than matched loosely.
"""

from __future__ import annotations

import re

from .objects import LABEL_VALUE, ApiError, Resource, dig

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SET = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")

Requirement = tuple[str, str, tuple[str, ...]]  # (key, op, values); op in = != in notin exists !


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _bad(part: str, why: str) -> ApiError:
    return ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}: {why}")


def _check(part: str, key: str, values: tuple[str, ...]) -> None:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise _bad(part, f"invalid label key {key!r}")
    for v in values:
        if len(v) > 63 or not LABEL_VALUE.match(v):
            raise _bad(part, f"invalid label value {v!r}")


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text or not text.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise _bad(raw, "found '', expected: identifier")
        if m := _SET.match(part):
            values = tuple(v.strip() for v in m.group(3).split(","))
            if values == ("",):
                raise _bad(part, "for 'in', 'notin' operators, values set can't be empty")
            key, op = m.group(1), m.group(2)
        elif part.startswith("!"):
            key, op, values = part[1:].strip(), "!", ()
        elif "!=" in part:
            key, _, v = part.partition("!=")
            op, values = "!=", (v.strip(),)
        elif "=" in part:
            key, _, v = part.partition("==") if "==" in part else part.partition("=")
            op, values = "=", (v.strip(),)
        elif re.search(r"[<>()\s]", part):
            raise _bad(part, "unsupported operator")
        else:
            key, op, values = part, "exists", ()
        key = key.strip()
        _check(part, key, values)
        reqs.append((key, op, values))
    return reqs


def labels_match(reqs: list[Requirement], labels: dict | None) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        have = key in labels
        if op == "exists":
            ok = have
        elif op == "!":
            ok = not have
        elif op in ("=", "in"):
            ok = have and labels[key] in values
        else:  # != and notin
            ok = not have or labels[key] not in values
        if not ok:
            return False
    return True


FieldReq = tuple[str, bool, str]  # (field, equal?, value)


def parse_field_selector(text: str | None, res: Resource) -> list[FieldReq]:
    if not text or not text.strip():
        return []
    allowed = {"metadata.name", "metadata.namespace", *res.fields}
    out: list[FieldReq] = []
    for raw in text.split(","):
        part = raw.strip()
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise ApiError(400, "BadRequest",
                           f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {field}")
        out.append((field, op != "!=", value))
    return out


def _field_value(obj: dict, field: str) -> str:
    if field == "source":
        return str(dig(obj, "source.component") or "")
    if field == "status.successful":  # the Job field label
        return str(dig(obj, "status.succeeded") or 0)
    value = dig(obj, field)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fields_match(reqs: list[FieldReq], obj: dict) -> bool:
    return all((_field_value(obj, f) == v) == eq for f, eq, v in reqs)


def node_requirement_match(req: dict, labels: dict) -> bool:
    """A NodeSelectorRequirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) against node labels."""
    key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
    have = key in labels
    if op == "In":
        return have and labels[key] in values
    if op == "NotIn":
        return not have or labels[key] not in values
    if op == "Exists":
        return have
    if op == "DoesNotExist":
        return not have
    if op in ("Gt", "Lt") and have:
        try:
            a, b = int(labels[key]), int(values[0])
        except (ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False
