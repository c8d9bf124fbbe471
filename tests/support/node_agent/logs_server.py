"""The kubelet's HTTPS endpoint for logs, which the API server proxies `pods/log` to:
GET /containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&limitBytes&
timestamps&sinceSeconds&sinceTime&stream, streamed with chunked encoding; errors as plain
text with the kubelet's status codes and messages (the API server turns a 400 into a
BadRequest carrying that text). Also /healthz. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .logs import ContainerLog, LogOptions, read_log

log = logging.getLogger(__name__)

# find(namespace, pod, container, previous) -> (log, is_running) ; raises with .status/.message
Finder = Callable[[str, str, str, bool], "tuple[ContainerLog, Callable[[], bool]]"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LogServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("log server: " + format, *args)

    def _plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts == ["healthz"]:
            self._plain(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._plain(404, "404 page not found\n")
            return
        _, namespace, pod, container = parts
        try:
            opts = LogOptions.from_query(parse_qs(url.query))
        except ValueError as exc:
            self._plain(400, str(exc))
            return
        try:
            log_file, running = self.server.find(namespace, pod, container, opts.previous)
        except Exception as exc:
            status = getattr(exc, "status", 500)
            self._plain(status, getattr(exc, "message", str(exc)))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            read_log(log_file, opts, write, running, lambda: self.server.stopping)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


class LogServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: Path, key: Path, find: Finder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.find = find
        self.stopping = False
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        ctx.set_alpn_protocols(["http/1.1"])
        # handshake in the handler thread, so one slow client cannot stall accept()
        self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                      do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self, name: str = "node-agent logs") -> LogServer:
        self._thread = threading.Thread(target=self.serve_forever, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        self.shutdown()
        self.server_close()
