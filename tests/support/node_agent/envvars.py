"""A container's environment as the kubelet computes it (makeEnvironmentVariables):
env entries in order with $(VAR) expansion against those defined before them, the downward
API (fieldRef, resourceFieldRef), Secret/ConfigMap keys and envFrom, then $(VAR) expansion of
command and args against the complete environment.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from .quantity import divide_ceil

_VAR = re.compile(r"\$\$|\$\(([^)]*)\)")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(Exception):
    """The container cannot be configured: waiting reason CreateContainerConfigError."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: $$ is a literal $, unknown references stay as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


# Lookup(kind, namespace, name) -> the object's data dict ({key: str}), or None if missing.
Lookup = Callable[[str, str, str], "dict[str, str] | None"]


def field_ref(pod: dict, path: str, pod_ip: str, host_ip: str) -> str:
    """The downward API's fieldRef values."""
    meta, spec = pod["metadata"], pod["spec"]
    for prefix, data in (("metadata.labels['", meta.get("labels") or {}),
                         ("metadata.annotations['", meta.get("annotations") or {})):
        if path.startswith(prefix) and path.endswith("']"):
            return str(data.get(path[len(prefix):-2], ""))
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.podIPs": pod_ip,
        "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path not in values:
        raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")
    return values[path]


def resource_ref(pod: dict, ref: dict, default_container: dict,
                 allocatable: dict[str, str]) -> str:
    """resourceFieldRef: limits fall back to node allocatable, requests to 0."""
    container = default_container
    if ref.get("containerName"):
        for c in pod["spec"].get("containers") or []:
            if c["name"] == ref["containerName"]:
                container = c
    kind, _, name = ref["resource"].partition(".")
    res = container.get("resources") or {}
    value = (res.get(kind) or {}).get(name)
    if value is None and kind == "limits":
        value = allocatable.get(name, "0")
    if value is None and kind == "requests":
        value = (res.get("limits") or {}).get(name, "0")
    return str(divide_ceil(value or "0", ref.get("divisor") or "1"))


def _decoded(kind: str, data: dict[str, str]) -> dict[str, str]:
    if kind != "secret":
        return data
    return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}


def container_env(pod: dict, container: dict, *, pod_ip: str, host_ip: str,
                  allocatable: dict[str, str], lookup: Lookup) -> dict[str, str]:
    """The variables the pod spec defines for `container` (image/runtime ones come first)."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        kind = "secret" if "secretRef" in src else "configmap"
        ref = src.get("secretRef") or src.get("configMapRef") or {}
        data = lookup(kind, ns, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind} "{ref.get("name")}" not found')
        for key, value in _decoded(kind, data).items():
            name = src.get("prefix", "") + key
            if _ENV_NAME.match(name):
                env[name] = value
    for item in container.get("env") or []:
        name = item["name"]
        src = item.get("valueFrom")
        if src is None:
            env[name] = expand(item.get("value", ""), env)
            continue
        if "fieldRef" in src:
            env[name] = field_ref(pod, src["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in src:
            env[name] = resource_ref(pod, src["resourceFieldRef"], container, allocatable)
        elif "secretKeyRef" in src or "configMapKeyRef" in src:
            kind = "secret" if "secretKeyRef" in src else "configmap"
            ref = src.get("secretKeyRef") or src.get("configMapKeyRef")
            data = lookup(kind, ns, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref["name"]}" not found')
            data = _decoded(kind, data)
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                what = "Secret" if kind == "secret" else "ConfigMap"
                raise ConfigError(f"couldn't find key {ref['key']} in {what} {ns}/{ref['name']}")
            env[name] = data[ref["key"]]
        else:
            raise ConfigError(f"unsupported env source {sorted(src)}")
    return env


def command_line(container: dict, env: dict[str, str]) -> list[str]:
    """command + args with $(VAR) expanded against the full environment."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    return [expand(a, env) for a in argv]


def object_lookup(get: Callable[[str], dict]) -> Lookup:
    """A Lookup reading Secrets/ConfigMaps through the API (`get` raises on 404)."""
    def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        try:
            obj: Any = get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except LookupError:
            return None
        data = dict(obj.get("data") or {})
        if kind == "configmap":
            for key, value in (obj.get("binaryData") or {}).items():
                data[key] = base64.b64decode(value).decode("utf-8", "replace")
        return data

    return lookup
