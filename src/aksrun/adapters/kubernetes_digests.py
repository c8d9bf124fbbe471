"""Verified output digests kept on the Job, for when the pods that reported them are gone.

A task's output digest comes from its pod's termination message (written by the kubelet,
read through the API). Pods don't last: pod GC deletes those of removed nodes (autoscaler
scale-down), so a later `aksrun.get(id)` would find the Job Complete and nothing to verify its
outputs against. The client that sees a digest therefore records it in an annotation of the
Job: only people holding aksrun's Role may write it, never the pods (their identity has no
Kubernetes rights), so it is as trustworthy as the termination message it copies.

Encoding: `{"<index>": "<base64url sha256>[/<calls raised>]"}`, about 50 bytes per task. A Job's
annotations share 256 KiB: past BUDGET the rest are not recorded (said once in the log); the
termination messages still serve while the pods exist.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any

ANNOTATION = "aksrun.io/output-digests"
BUDGET = 200_000  # bytes of the annotation's value (all of a Job's annotations: 256 KiB)
log = logging.getLogger("aksrun")


def encode(digests: Mapping[int, tuple[str, str | None]]) -> str:
    """index -> (hex sha256, calls raised or None), as the annotation's value, cut to fit."""
    parts: dict[str, str] = {}
    size = 2
    for index in sorted(digests):
        digest, raised = digests[index]
        try:
            packed = base64.urlsafe_b64encode(bytes.fromhex(digest)).decode().rstrip("=")
        except ValueError:
            packed = digest
        value = packed if raised in (None, "", "0") else f"{packed}/{raised}"
        size += len(str(index)) + len(value) + 6
        if size > BUDGET:
            log.info("only %d of %d output digests fit the Job's annotation", len(parts),
                     len(digests))
            break
        parts[str(index)] = value
    return json.dumps(parts, separators=(",", ":"))


def decode(job: Mapping[str, Any]) -> dict[int, tuple[str, str | None]]:
    """The Job's recorded digests; anything malformed is ignored (never trusted)."""
    text = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    found: dict[int, tuple[str, str | None]] = {}
    for key, value in raw.items() if isinstance(raw, dict) else ():
        if not (isinstance(key, str) and key.isdigit() and isinstance(value, str)):
            continue
        packed, _, raised = value.partition("/")
        try:
            digest = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).hex()
        except (ValueError, binascii.Error):
            continue
        if len(digest) == 64:
            found[int(key)] = (digest, raised or None)
    return found
