"""HTTP/1.1 front end: routing, discovery, list/watch (chunked), pod logs (chunked follow),
creates and deletes. Anything not understood is answered with a Status 4xx, never a guess.
"""

from __future__ import annotations

import base64
import json
import re
import select
import socket
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from .objects import RESOURCES, ApiError, Resource, now_ts, parse_ts, status_body
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Expired
from .validation import check_unknown

if TYPE_CHECKING:
    from .cluster import FakeCluster

ROUTE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.-]+)/v1)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<res>[a-z]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?/?$")
LIST_PARAMS = {"labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
               "resourceVersionMatch", "timeoutSeconds", "watch", "allowWatchBookmarks"}
PARAMS = {
    "get": {"resourceVersion"}, "list": LIST_PARAMS, "watch": LIST_PARAMS,
    "create": {"dryRun", "fieldManager", "fieldValidation"},
    "delete": {"dryRun", "gracePeriodSeconds", "propagationPolicy", "orphanDependents",
               "ignoreStoreReadErrorWithClusterBreakingPotential"},
    "log": {"container", "follow", "limitBytes", "previous", "sinceSeconds", "sinceTime",
            "tailLines", "timestamps", "insecureSkipTLSVerifyBackend"},
}
SUBRESOURCES = {("pods", "log"): "get", ("pods", "eviction"): "create", ("pods", "status"): "get",
                ("jobs", "status"): "get"}
TRUE = {"1", "t", "T", "true", "TRUE", "True"}
FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _bool(q: dict, key: str) -> bool:
    value = q.get(key)
    if value is None:
        return False
    if value in TRUE or value == "":
        return True
    if value in FALSE:
        return False
    raise ApiError(400, "BadRequest", f"invalid boolean for {key}: {value!r}")


def _int(q: dict, key: str) -> int | None:
    value = q.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid integer for {key}: {value!r}")


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        self.server.cluster.request_log.append(format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ---------------------------------------------------------------- plumbing
    def _handle(self, method: str) -> None:
        c = self.server.cluster
        url = urlsplit(self.path)
        try:
            raw = self._read_body()
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            if self.headers.get("Authorization") != f"Bearer {c.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._route(method, url.path, query, raw)
        except ApiError as exc:
            self._json(exc.code, exc.body())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            traceback.print_exc()
            self._json(500, status_body(500, "InternalError", f"fake apiserver bug: {exc!r}"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, "BadRequest", "fake apiserver needs Content-Length bodies")
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, code: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _client_gone(self) -> bool:
        """A streaming client that hung up (watch.stop() shuts the socket down)."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    @staticmethod
    def _parse(raw: bytes) -> dict:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"couldn't get version/kind; json parse error: {exc}")
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        return body

    # ---------------------------------------------------------------- routing
    def _route(self, method: str, path: str, q: dict, raw: bytes) -> None:
        c = self.server.cluster
        discovery = c.discovery(path)
        if discovery is not None:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource")
            c.count_request("get", path.rstrip("/") or "/")
            if isinstance(discovery, str):
                data = discovery.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self._json(200, discovery)
            return
        m = ROUTE.match(path)
        res = RESOURCES.get(m.group("res")) if m else None
        if m is None or res is None or res.group != (m.group("group") or "") or (
                m.group("ns") and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns, name, sub = m.group("ns"), m.group("name"), m.group("sub")
        if sub is not None and (res.name, sub) not in SUBRESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            verb = {"GET": "watch" if _bool(q, "watch") else "list", "POST": "create",
                    "DELETE": "deletecollection"}.get(method, "update")
        else:
            verb = {"GET": "get", "DELETE": "delete", "PUT": "update", "PATCH": "patch",
                    "POST": "create"}[method]
        c.count_request(verb, res.name + (f"/{sub}" if sub else ""))
        if res.namespaced and not ns and (name is not None or verb == "create"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        allowed = SUBRESOURCES.get((res.name, sub or "")) if sub else None
        if (sub and verb != allowed) or (not sub and (verb not in res.verbs or (
                verb == "create" and name is not None))):
            raise ApiError(405, "MethodNotAllowed",
                           f"the server does not allow this method on the requested resource "
                           f"(the fake apiserver implements {sorted(res.verbs)} on {res.name})")
        pkey = "log" if sub == "log" else verb
        unknown = set(q) - PARAMS.get(pkey, set()) - {"pretty"}
        if unknown:
            raise ApiError(400, "BadRequest", f"fake apiserver: unsupported query parameter(s) "
                           f"for {verb} {res.name}: {', '.join(sorted(unknown))}")
        if verb in ("list", "watch"):
            self._list(res, ns, q, verb == "watch")
        elif verb == "get" and sub == "log":
            self._log(ns or "", name or "", q)
        elif verb == "get":
            obj = c.store.get(res.name, ns or "", name or "")
            if obj is None:
                raise res.not_found(name or "")
            self._json(200, obj)
        elif verb == "create" and sub == "eviction":
            body = self._parse(raw)
            check_unknown(body, "Eviction")
            c.api_evict(ns or "", name or "")
            self._json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "code": 201})
        elif verb == "create":
            obj = c.create(res.name, ns, self._parse(raw), dry_run=bool(q.get("dryRun")))
            self._json(201, obj)
        else:
            self._delete(res, ns or "", name or "", q, self._parse(raw))

    # ---------------------------------------------------------------- verbs
    def _list(self, res: Resource, ns: str | None, q: dict, watch: bool) -> None:
        c = self.server.cluster
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), res)

        def match(obj: dict | None) -> bool:
            return obj is not None and labels_match(labels, obj["metadata"].get("labels")) \
                and fields_match(fields, obj)

        if watch:
            self._watch(res, ns, q, match)
            return
        items, rv = c.store.list(res.name, ns)
        items = [i for i in items if match(i)]
        meta: dict = {"resourceVersion": str(rv)}
        start = q.get("continue")
        if start:
            try:
                after = json.loads(base64.urlsafe_b64decode(start.encode()))["start"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid")
            items = [i for i in items
                     if [i["metadata"].get("namespace", ""), i["metadata"]["name"]] > after]
        limit = _int(q, "limit")
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = json.dumps({"start": [last.get("namespace", ""), last["name"]]})
            meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        body = {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta,
                "items": [{k: v for k, v in i.items() if k not in ("kind", "apiVersion")}
                          for i in items]}
        self._json(200, body)

    def _watch(self, res: Resource, ns: str | None, q: dict, match) -> None:
        c = self.server.cluster
        timeout = _int(q, "timeoutSeconds")
        deadline = time.monotonic() + (timeout if timeout is not None else 1800)
        bookmarks = _bool(q, "allowWatchBookmarks")
        rv_text = q.get("resourceVersion") or "0"
        try:
            last = int(rv_text)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text!r}")
        self._start_chunked("application/json")

        def send(kind: str, obj: dict) -> None:
            self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if last == 0:  # "any"/unset: synthetic ADDED for the current state, then follow
            items, last = c.store.list(res.name, ns)
            for obj in items:
                if match(obj):
                    send("ADDED", obj)
        next_bookmark = time.monotonic() + c.bookmark_interval
        while not c.stopping and time.monotonic() < deadline:
            if self._client_gone():
                self.close_connection = True
                return
            try:
                changes, current = c.store.changes_since(last)
            except Expired as exc:
                send("ERROR", status_body(410, "Expired", str(exc)))
                break
            for ch in changes:
                if ch.resource != res.name or (ns and ch.obj["metadata"].get("namespace") != ns):
                    continue
                now_in, was_in = match(ch.obj), match(ch.old)
                if ch.type == "DELETED":
                    kind = "DELETED" if now_in else None
                elif now_in:
                    kind = "MODIFIED" if was_in else "ADDED"
                else:
                    kind = "DELETED" if was_in else None
                if kind:
                    send(kind, ch.obj)
            last = current
            if bookmarks and time.monotonic() >= next_bookmark:
                send("BOOKMARK", self._bookmark(res, last))
                next_bookmark = time.monotonic() + c.bookmark_interval
            c.store.wait(last, min(0.5, max(0.0, deadline - time.monotonic())))
        else:
            if bookmarks and not c.stopping:
                send("BOOKMARK", self._bookmark(res, last))
        self._end_chunked()

    @staticmethod
    def _bookmark(res: Resource, rv: int) -> dict:
        return {"kind": res.kind, "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rv),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}

    def _delete(self, res: Resource, ns: str, name: str, q: dict, body: dict) -> None:
        c = self.server.cluster
        check_unknown(body, "DeleteOptions")
        grace = _int(q, "gracePeriodSeconds")
        if grace is None:
            grace = body.get("gracePeriodSeconds")
        policy = q.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = q.get("orphanDependents", body.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: '
                           f'propagationPolicy: Unsupported value: "{policy}": supported '
                           'values: "Foreground", "Background", "Orphan", "nil"')
        pre = body.get("preconditions") or {}
        obj = c.store.get(res.name, ns, name)
        if obj is None:
            raise res.not_found(name)
        for key in ("uid", "resourceVersion"):
            if pre.get(key) and pre[key] != obj["metadata"].get(key):
                label = "UID" if key == "uid" else "ResourceVersion"
                raise ApiError(409, "Conflict", f"Precondition failed: {label} in precondition: "
                               f"{pre[key]}, {label} in object meta: {obj['metadata'].get(key)}",
                               {"name": name, "kind": res.name})
        if q.get("dryRun") or body.get("dryRun"):
            self._json(200, obj)
            return
        if res.name == "pods":
            self._json(200, c.delete_pod(ns, name, grace))
        elif res.name == "jobs":
            self._json(200, c.delete_job(ns, name, policy))
        else:  # namespaces, serviceaccounts: the API returns the deleted object
            deleted = c.store.delete(res.name, ns, name)
            if deleted is None:
                raise res.not_found(name)
            self._json(200, deleted)

    def _log(self, ns: str, name: str, q: dict) -> None:
        c = self.server.cluster
        pod = c.store.get("pods", ns, name)
        if pod is None:
            raise RESOURCES["pods"].not_found(name)
        names = [x["name"] for x in pod["spec"]["containers"]]
        cname = q.get("container") or names[0]
        if cname not in names:
            raise ApiError(400, "BadRequest", f"container {cname} is not valid for pod {name}")
        previous = _bool(q, "previous")
        inst = c.kubelet.instance(pod["metadata"]["uid"], previous)
        statuses = pod["status"].get("containerStatuses") or []
        state = statuses[0]["state"] if statuses else {"waiting": {"reason": "ContainerCreating"}}
        if previous and inst is None:
            raise ApiError(400, "BadRequest",
                           f'previous terminated container "{cname}" in pod "{name}" not found')
        if not previous and (inst is None or ("waiting" in state and not statuses[0].get(
                "restartCount") and not statuses[0].get("lastState"))):
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest",
                           f'container "{cname}" in pod "{name}" is waiting to start: {reason}')
        assert inst is not None
        follow, stamps = _bool(q, "follow"), _bool(q, "timestamps")
        tail, limit = _int(q, "tailLines"), _int(q, "limitBytes")
        since = _int(q, "sinceSeconds")
        cutoff = time.time() - since if since is not None else (
            parse_ts(q["sinceTime"]) if q.get("sinceTime") else None)

        def render(lines: list[tuple[str, bytes]]) -> bytes:
            if cutoff is not None:
                lines = [(ts, ln) for ts, ln in lines if parse_ts(ts) >= cutoff]
            return b"".join((ts.encode() + b" " if stamps else b"") + ln for ts, ln in lines)

        with inst.cond:
            lines = list(inst.lines)
        first = lines[-tail:] if tail is not None and tail >= 0 else lines
        if tail == 0:
            first = []
        data = render(first)
        if not follow:
            data = data[:limit] if limit else data
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._start_chunked("text/plain")
        sent, seen = 0, len(lines)
        while True:
            if limit:
                data = data[:max(0, limit - sent)]
            self._chunk(data)
            sent += len(data)
            if limit and sent >= limit:
                break
            with inst.cond:
                inst.cond.wait_for(
                    lambda n=seen: len(inst.lines) > n or inst.done or c.stopping, 0.5)
                new, done = inst.lines[seen:], inst.done
            seen += len(new)
            data = render(new)
            if (done and not new) or c.stopping or self._client_gone() or (
                    not new and c.store.get("pods", ns, name) is None):
                break
        self._end_chunked()


def version_info(version: str) -> dict:
    major, minor = version.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": version,
            "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": now_ts(),
            "goVersion": "go1.22.9", "compiler": "gc", "platform": "linux/amd64"}
