"""Resumable watches merged into one queue: list once, then watch from that resourceVersion,
resume where a watch ended, and re-list after 410 Gone. No polling loops."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import queue
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("aksrun.kubernetes")

WATCH_SECONDS = 300
# The server ends each watch after WATCH_SECONDS; a connection that stays silent this much
# longer was dropped on the way (an idle load balancer, NAT) without either end knowing.
READ_MARGIN = 30.0
CONNECT_TIMEOUT = 15.0
MAX_RETRIES = 8  # transient faults in a row before a watch gives up (~2 minutes of backoff)
_live: weakref.WeakSet[MergedWatch] = weakref.WeakSet()


class MergedWatch:
    """Runs one thread per watched collection; `get()` returns (source, type, object-dict).

    Each source starts with its current objects (type "LISTED"), so a consumer sees the
    state first and the changes after, whether the job is new or re-attached.
    """

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.queue: queue.Queue = queue.Queue()
        self.stopped = threading.Event()
        self._responses: list[Any] = []
        self._threads: list[threading.Thread] = []
        _live.add(self)

    def add(self, source: str, list_call: Callable[..., Any], optional: bool = False,
            **kwargs: Any) -> None:
        """Watch a collection. An `optional` one that we may not read (403) just ends."""
        thread = threading.Thread(target=self._run, args=(source, list_call, kwargs, optional),
                                  daemon=True, name=f"aksrun-watch-{source}")
        self._threads.append(thread)
        thread.start()

    def get(self, timeout: float | None = None) -> tuple[str, str, dict[str, Any]]:
        return self.queue.get(timeout=timeout)

    def stop(self, wait: float = 2.0) -> None:
        """Stop every watch now: shutting its socket down unblocks a thread waiting for data
        (a daemon thread still reading at interpreter exit can abort the process). Closing
        the response instead would wait for that very read over TLS (the reader holds the
        stream's lock), until the server next sends something: minutes on a quiet job."""
        self.stopped.set()
        self.queue.put(("watch", "STOPPED", {}))  # wakes the consumer
        for response in list(self._responses):
            _interrupt(response)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(wait)

    def _run(self, source: str, list_call: Callable[..., Any], kwargs: dict[str, Any],
             optional: bool = False) -> None:
        """List, then watch from the list's resourceVersion; resume where a watch ends; list
        again after 410 Gone, and after a transient fault (connection reset, 429, 5xx) with
        backoff. The watch request is made directly (raw JSON lines) rather than through
        `kubernetes.watch.Watch`, whose raw mode mishandles ERROR events."""
        sanitize = self.api_client.sanitize_for_serialization
        version: str | None = None
        failures = 0
        allowed = False  # the first list succeeded: we do have access
        while not self.stopped.is_set():
            try:
                if version is None:
                    version = self._list(source, list_call, kwargs, sanitize)
                    allowed = True
                version = self._watch_once(source, list_call, kwargs, version)
                failures = 0
                if version is None:
                    log.debug("watch of %s expired (410); listing again", source)
            except Exception as exc:
                if self.stopped.is_set():
                    return
                status = getattr(exc, "status", None)
                if optional and status in (401, 403):
                    log.debug("no access to %s; going on without it", source)
                    return
                # A refusal after access was granted is retried like a fault (as client-go's
                # reflector does): an API server that has just restarted answers 401/403 until
                # its authentication and RBAC caches are filled. A first refusal is final.
                denied_again = allowed and status in (401, 403)
                if (_transient(exc) or denied_again) and failures < MAX_RETRIES:
                    failures += 1
                    delay = min(30.0, 0.5 * 2**failures)
                    log.debug("watch of %s failed (%s); retry %d in %.1fs", source, exc,
                              failures, delay)
                    self.stopped.wait(delay)
                    version = None  # list again: changes may have been missed
                    continue
                log.debug("watch of %s broke", source, exc_info=True)
                self.queue.put((source, "BROKEN", {"error": exc}))
                return

    def _watch_once(self, source: str, list_call: Callable[..., Any], kwargs: dict[str, Any],
                    version: str) -> str | None:
        """One watch request; returns the version to resume from, None after 410 Gone."""
        from kubernetes.client.rest import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        try:
            response = list_call(watch=True, resource_version=version,
                                 timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True,
                                 _preload_content=False,
                                 _request_timeout=(CONNECT_TIMEOUT, WATCH_SECONDS + READ_MARGIN),
                                 **kwargs)
        except ApiException as exc:
            if exc.status == 410:
                return None
            raise
        self._responses.append(response)
        try:
            for line in iter_resp_lines(response):
                if self.stopped.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = (obj.get("metadata") or {}).get("resourceVersion", version)
                if event.get("type") != "BOOKMARK":
                    self.queue.put((source, event["type"], obj))
        finally:
            self._responses.remove(response)
            with contextlib.suppress(Exception):
                response.close()
                response.release_conn()
        return version

    def _list(self, source: str, list_call, kwargs, sanitize) -> str:
        result = list_call(_request_timeout=(CONNECT_TIMEOUT, WATCH_SECONDS), **kwargs)
        for item in result.items or []:
            self.queue.put((source, "LISTED", sanitize(item)))
        return result.metadata.resource_version


def _interrupt(response: Any) -> None:
    """Wake a thread blocked reading `response`: shut its socket down under it."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is None:
        with contextlib.suppress(Exception):
            response.close()
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the connection broke, or the server asked us to come back later."""
    status = getattr(exc, "status", None)
    if status is not None:
        return status in (429, 500, 502, 503, 504)
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


@atexit.register
def _stop_all() -> None:
    for watch in list(_live):
        watch.stop(wait=1.0)
