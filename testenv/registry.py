"""A registry that never answers: a TCP server on 127.0.0.1 that accepts and then waits.

What a stalled image pull meets; the tests and the noisy-neighbour benchmark point pulls at it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["SilentRegistry"]


class SilentRegistry:
    """Accepts connections on a free loopback port, holds them, and never sends a byte."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.connected = threading.Event()
        self._held: list[socket.socket] = []
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:  # accepted while closing: nobody else will close it
                    conn.close()
                    return
                self._held.append(conn)
            self.connected.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            held, self._held = self._held, []
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self._server.close()
        self._thread.join(timeout=5)
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()
