"""A listening socket served by a thread of its own, until closed: what the test servers of
``testenv`` (a registry that never answers, a pausable engine proxy) are built on."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["Listener"]


class Listener:
    """Accepts connections on ``server`` and hands each to ``_take``; ``close`` stops
    accepting and closes every socket still held (``_hold``)."""

    def __init__(self, server: socket.socket) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._closed = False
        self._held: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _take(self, conn: socket.socket) -> None:
        """Serve a new connection (on the accepting thread: hand long work to another)."""
        raise NotImplementedError

    def _hold(self, *conns: socket.socket) -> bool:
        """Keep ``conns`` for ``close``; False (and closed) when closing already."""
        with self._lock:
            if not self._closed:
                self._held.update(conns)
                return True
        for conn in conns:
            conn.close()
        return False

    def _drop(self, *conns: socket.socket) -> None:
        """``conns`` are done: closed here, no longer ``close``'s to close."""
        with self._lock:
            self._held.difference_update(conns)
        for conn in conns:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                closed = self._closed
            if closed:  # accepted while closing: nobody else will close it
                conn.close()
                return
            self._take(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            held, self._held = self._held, set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self._server.close()
        self._thread.join(timeout=5)
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread reading it
            conn.close()
