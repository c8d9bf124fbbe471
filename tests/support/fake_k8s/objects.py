"""Shared helpers: timestamps, names, quantities, Status errors and the resource table.

Kept free of any server or thread state so every other module can import it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from dataclasses import dataclass

RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RFC1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet


def now_ts() -> str:
    """RFC 3339 with second precision, as metav1.Time serialises."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_nano() -> str:
    """RFC 3339 with sub-second precision, as used by log timestamps."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_uid() -> str:
    return str(uuid.uuid4())


def rand_suffix(n: int = 5) -> str:
    return "".join(random.choice(_SUFFIX_CHARS) for _ in range(n))


_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
)
_SUFFIX = {
    None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(value: object) -> float:
    """resource.Quantity → float in base units ("500m" → 0.5, "4Gi" → 4294967296)."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def compress_indexes(indexes: set[int] | list[int]) -> str:
    """{0,1,2,5} → "0-2,5", the format of status.completedIndexes / failedIndexes."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A metav1.Status as the apiserver writes it."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    if not message:
        del body["message"]
    if not reason:
        del body["reason"]
    return body


class ApiError(Exception):
    """Raised anywhere in request handling; rendered as a Status response."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict:
        return status_body(self.code, self.reason, self.message, self.details)


@dataclass(frozen=True)
class Resource:
    """What the router needs to know about one REST resource."""

    name: str
    kind: str
    group: str
    namespaced: bool
    fields: tuple[str, ...] = ()  # field-selector labels besides metadata.name/namespace
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def qualified(self) -> str:
        return f"{self.name}.{self.group}" if self.group else self.name

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.qualified} "{name}" not found',
                        {"name": name, "group": self.group, "kind": self.name})


_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
_EVENT_FIELDS = (*(f"involvedObject.{f}" for f in _INVOLVED),
                 "reason", "reportingComponent", "source", "type")
_READ = ("get", "list", "watch")

RESOURCES: dict[str, Resource] = {
    "jobs": Resource("jobs", "Job", "batch", True, ("status.successful",)),
    "pods": Resource(
        "pods", "Pod", "", True,
        ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
         "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    ),
    "events": Resource("events", "Event", "", True, _EVENT_FIELDS, _READ),
    "nodes": Resource("nodes", "Node", "", False, ("spec.unschedulable",), _READ),
    "namespaces": Resource("namespaces", "Namespace", "", False, ("status.phase",)),
    "serviceaccounts": Resource("serviceaccounts", "ServiceAccount", "", True),
}


def dig(obj: object, path: str) -> object:
    """obj["a"]["b"] for "a.b", None when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def condition(ctype: str, status: str, reason: str | None = None, message: str | None = None,
              when: str | None = None, probe: bool = True) -> dict:
    """A pod/job condition with the fields the real controllers fill."""
    out: dict = {"type": ctype, "status": status, "lastTransitionTime": when or now_ts()}
    if probe:
        out["lastProbeTime"] = None
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out
