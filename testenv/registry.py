"""A registry that never answers: a TCP server on 127.0.0.1 that accepts and then waits.

What a stalled image pull meets; the tests and the noisy-neighbour benchmark point pulls at it.
"""

from __future__ import annotations

import socket
import threading

from .listener import Listener

__all__ = ["SilentRegistry"]


class SilentRegistry(Listener):
    """Accepts connections on a free loopback port, holds them, and never sends a byte."""

    def __init__(self) -> None:
        server = socket.create_server(("127.0.0.1", 0))
        self.port: int = server.getsockname()[1]
        self.connected = threading.Event()
        super().__init__(server)

    def _take(self, conn: socket.socket) -> None:
        if self._hold(conn):
            self.connected.set()
