"""Image references as containerd reports them, and the errors and events of a pull.

With an image store (a registry given to the agent) these are the messages of real pulls;
without one (the legacy host mode) every image is "on the machine" unless the agent's
`missing_images` predicate says the registry lacks it.
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
    """The imageID the kubelet reports: repository@sha256:<digest> (host mode: a digest
    stable per image; with a registry the store reports the registry's)."""
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


def throttled_error(image: str) -> str:
    """containerd's answer when the registry throttles the manifest request (429)."""
    ref = normalize(image)
    host, _, rest = ref.partition("/")
    repository, reference = (rest.split("@", 1) if "@" in rest else rest.rsplit(":", 1))
    return (f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": '
            f'failed to resolve reference "{ref}": unexpected status from HEAD request to '
            f"https://{host}/v2/{repository}/manifests/{reference}: 429 Too Many Requests")


def unreachable_error(image: str, host: str, repository: str, reference: str) -> str:
    """containerd's answer for a registry host the node cannot reach (here: any registry but
    the test registry; name resolution is what fails first on a real node)."""
    ref = normalize(image)
    api_host = "registry-1.docker.io" if host == "docker.io" else host
    return (f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": '
            f'failed to resolve reference "{ref}": failed to do request: Head '
            f'"https://{api_host}/v2/{repository}/manifests/{reference}": dial tcp: lookup '
            f"{api_host}: no such host")


def image_size(image: str) -> int:
    """A plausible, stable size for the Pulled event (host mode)."""
    return 50_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16)


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() of a duration truncated to milliseconds, as the kubelet
    prints pull times ("41ms", "1.234s", "1m2.5s")."""
    ms = int(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{secs}" if minutes else secs
