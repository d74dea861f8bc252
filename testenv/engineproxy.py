"""An engine that stops answering without hanging up: a pausable proxy to the Docker socket.

A frozen engine (a SIGSTOPped dockerd) keeps every connection open and sends nothing; the
real engine, shared with everything else on the machine, must not be frozen to show it.
``EngineProxy`` listens on a Unix socket of its own and forwards each connection to the
engine's, byte for byte, a thread per direction. ``pause`` holds every byte in both
directions (and every hang-up) without closing anything, new connections included;
``resume`` carries on where it stopped. Point a service at it with
``DOCKER_HOST=unix://<proxy.path>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from .engine import TEST_PREFIX
from .listener import Listener

__all__ = ["EngineProxy", "engine_socket"]

_CHUNK = 65536


def engine_socket() -> str:
    """The path of the engine's Unix socket (``DOCKER_HOST`` when it names one)."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


class EngineProxy(Listener):
    """Forwards connections on ``path`` to the engine's socket until closed (see the module)."""

    def __init__(self, target: str | None = None) -> None:
        self._target = target or engine_socket()
        self._dir = Path(tempfile.mkdtemp(prefix=f"{TEST_PREFIX}engine-proxy-"))
        self.path = str(self._dir / "docker.sock")
        self._flowing = threading.Event()
        self._flowing.set()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        server.listen(64)
        super().__init__(server)

    @property
    def url(self) -> str:
        """The proxy as a ``DOCKER_HOST`` value."""
        return f"unix://{self.path}"

    def pause(self) -> None:
        """Hold every byte and hang-up from now on, in both directions; close nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _take(self, conn: socket.socket) -> None:
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            engine.connect(self._target)
        except OSError:
            conn.close()
            engine.close()
            return
        if not self._hold(conn, engine):
            return
        running = [2]  # directions of this pair still forwarding
        for source, sink in ((conn, engine), (engine, conn)):
            threading.Thread(
                target=self._forward, args=(source, sink, running), name="engine-proxy", daemon=True
            ).start()

    def _forward(self, source: socket.socket, sink: socket.socket, running: list[int]) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                self._flowing.wait()  # paused: held here, the hang-up too
                if not data or self._closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        # One side hung up: so does the pair (a shutdown also wakes the other direction's
        # blocked read, which a close would not).
        for each in (source, sink):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
        with self._lock:
            running[0] -= 1
            last = running[0] == 0
        if last:  # the other direction is out of its read: closing is safe now
            self._drop(source, sink)

    def close(self) -> None:
        """Stop listening and close every connection; the socket file goes too."""
        self._flowing.set()  # a held direction reads its socket's shutdown and ends
        super().close()
        shutil.rmtree(self._dir, ignore_errors=True)
