"""A TCP relay on 127.0.0.1 that can silently stop relaying the connections it holds, as an
idle load balancer or NAT drops a long connection without telling either end. New
connections are relayed again, as a fresh route through the balancer would be."""

from __future__ import annotations

import contextlib
import socket
import threading


class FreezingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._held: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> int:
        """Stop relaying every connection open now (their sockets stay open); how many."""
        with self._lock:
            for _, _, frozen in self._held:
                frozen.set()
            return len(self._held)

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            for a, b, _ in self._held:
                for sock in (a, b):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            frozen = threading.Event()
            with self._lock:
                self._held.append((client, upstream, frozen))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, frozen), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, frozen: threading.Event) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                if not frozen.is_set():  # a dropped route carries no FIN either
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                return
            if frozen.is_set():
                frozen.wait()  # swallowed: the route is gone, nobody is told
                continue
            try:
                dst.sendall(data)
            except OSError:
                return
