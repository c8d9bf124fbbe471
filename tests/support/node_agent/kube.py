"""A thin JSON client over the official `kubernetes` ApiClient.

The agent works on plain dicts, as the kubelet works on API objects: no model classes, so a
field the client's models do not know (or a null a strategic merge patch needs) goes through
untouched. Authentication, TLS and connection pooling are the official client's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ApiError(Exception):
    """A non-2xx answer of the API server, with its Status reason and message."""

    def __init__(self, status: int, body: bytes | str) -> None:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        self.status = status
        self.reason = data.get("reason", "") if isinstance(data, dict) else ""
        self.message = (data.get("message") if isinstance(data, dict) else None) or text
        super().__init__(f"{status} {self.reason}: {self.message}")


class Kube:
    """Requests against one API server; safe to share between threads (urllib3 pools)."""

    def __init__(self, kubeconfig: Path, user_agent: str = "aksrun-node-agent") -> None:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        host = urlparse(cfg.host).hostname or ""
        if host not in _LOOPBACK:  # this agent talks to 127.0.0.1 only
            raise ValueError(f"the node agent only talks to a loopback API server, not {host!r}")
        cfg.connection_pool_maxsize = 64
        self.host = cfg.host
        self.api = kubernetes.client.ApiClient(cfg)
        self.api.user_agent = user_agent
        self._streams: set[Any] = set()
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        req = self.api.param_serialize(method, path, query_params=dict(query or {}) or None,
                                       header_params=headers, body=body,
                                       auth_settings=["BearerToken"])
        return self.api.call_api(*req, _request_timeout=timeout)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None,
                timeout: float = 30.0) -> dict:
        """One request; the decoded JSON answer, or ApiError."""
        resp = self._call(method, path, query, body, content_type, timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiError(resp.status, data)
        return json.loads(data) if data else {}

    def get(self, path: str, **query: Any) -> dict:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: dict) -> dict:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: dict, content_type: str = STRATEGIC_MERGE) -> dict:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: dict | None = None) -> dict:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, timeout_seconds: int = 300, **query: Any) -> Iterator[dict]:
        """Events ({type, object}) of one watch request until the server ends it.

        close_streams() interrupts it from another thread (stop()).
        """
        query = {**query, "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        resp = self._call("GET", path, query, None, None, (10, timeout_seconds + 30))
        if not 200 <= resp.status <= 299:
            raise ApiError(resp.status, resp.read())
        raw = resp.response
        with self._lock:
            self._streams.add(raw)
        try:
            buf = b""
            for chunk in raw.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            with self._lock:
                self._streams.discard(raw)
            raw.release_conn()

    def close_streams(self) -> None:
        """Unblock every running watch (their generators then end)."""
        with self._lock:
            streams = list(self._streams)
        for raw in streams:
            try:
                raw.shutdown()
            except Exception:
                pass

    def close(self) -> None:
        self.close_streams()
        try:
            self.api.close()
        except Exception:
            pass
