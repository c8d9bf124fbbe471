"""The HTTPS servers the stand-ins speak through (Entra ID, ARM, ACR's data plane): a
threading HTTP server on 127.0.0.1 behind TLS with a self-made certificate (azure-core sends
bearer tokens over https only), served from a daemon thread."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


def start_https(handler: type[BaseHTTPRequestHandler], cert_file: str | Path,
                key_file: str | Path, name: str, *, lazy_handshake: bool = False,
                poll_interval: float = 0.05) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving on a free port; returns the server (`server_address[1]` is the port;
    `shutdown()` then `server_close()` stop it) and its thread. `lazy_handshake`: the
    handler does the TLS handshake itself (so a failed one ends only that connection)."""
    server = ThreadingHTTPServer((HOST, 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=not lazy_handshake)
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), name=name,
                              daemon=True)
    thread.start()
    return server, thread
