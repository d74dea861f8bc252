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
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
