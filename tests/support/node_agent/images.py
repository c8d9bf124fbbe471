"""Image references as containerd reports them, and the errors of a registry that lacks one.

The agent has no registry: every image is "on the machine" (it runs host executables) unless
the agent's `missing_images` predicate says the registry does not have it.
"""

from __future__ import annotations

import hashlib


def normalize(image: str) -> str:
    """containerd's normalized reference: docker.io/library/python:3.11 for `python:3.11`."""
    name, digest = [*image.split("@", 1), ""][:2]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if digest:
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def image_id(image: str) -> str:
    """The imageID the kubelet reports: repository@sha256:<digest> (digest stable per image)."""
    ref = normalize(image)
    if "@" in ref:
        return ref
    repo = ref.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def pull_error(image: str) -> str:
    """What containerd answers for a reference the registry does not have (the kubelet puts it
    in waiting.message as-is: it is the CRI error's text)."""
    ref = normalize(image)
    return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
            f'failed to resolve reference "{ref}": {ref}: not found')


def image_size(image: str) -> int:
    """A plausible, stable size for the Pulled event."""
    return 50_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16)
