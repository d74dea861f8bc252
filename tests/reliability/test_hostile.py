"""Hostile clients: a body trickled byte by byte, hundreds of idle connections, deep and
huge bodies. The service must keep answering everyone else."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlparse

import httpx

from ..api.helpers import assert_problem
from ..conftest import Api
from .conftest import Recorder


def _address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    return parsed.hostname, parsed.port


def test_a_trickled_body_does_not_hold_up_anyone(api: Api, reliability: Recorder) -> None:
    body = json.dumps({"name": "aptest-slow", "image": "aptest/busybox:latest"}).encode()
    done = threading.Event()

    def trickle() -> None:
        with socket.create_connection(_address(api.url), timeout=30) as sock:
            head = (
                "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-API-Key: {api.keys.alice}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode())
            for byte in body:
                if done.is_set():
                    return
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
            sock.recv(65536)

    slow = threading.Thread(target=trickle)
    slow.start()
    answers = [api.alice.get("/v1/agents", timeout=10).status_code for _ in range(30)]
    done.set()
    slow.join()
    assert answers == [200] * 30
    reliability.record(
        "a spawn body trickled one byte every 50 ms",
        f"{len(body)} bytes, 30 concurrent requests",
        "every other request answered (200) while it trickled",
    )


def test_many_idle_connections_do_not_starve_the_service(api: Api, reliability: Recorder) -> None:
    sockets: list[socket.socket] = []
    try:
        for index in range(300):
            sock = socket.create_connection(_address(api.url), timeout=10)
            if index % 3 == 0:
                sock.sendall(b"GET /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            sockets.append(sock)
        answers = [api.alice.get("/v1/agents", timeout=10).status_code for _ in range(20)]
        assert answers == [200] * 20
        assert api.anonymous.get("/healthz", timeout=10).status_code == 200
    finally:
        for sock in sockets:
            sock.close()
    reliability.record(
        "idle connections (a third with half-sent headers)",
        len(sockets),
        "20 requests on a fresh connection all answered 200",
    )


def test_deep_and_huge_bodies(api: Api, reliability: Recorder) -> None:
    deep = (
        b'{"name": "aptest-deep", "image": "x", "labels": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    )
    huge = b'{"name": "aptest-huge", "image": "x", "env": {"A": "' + b"x" * 5_000_000 + b'"}}'
    headers = {"Content-Type": "application/json"}
    assert_problem(
        api.alice.post("/v1/agents", content=deep, headers=headers), 422, "validation_error"
    )
    assert_problem(
        api.alice.post("/v1/agents", content=huge, headers=headers), 413, "payload_too_large"
    )
    assert api.alice.get("/v1/agents").status_code == 200
    reliability.record(
        "JSON nested 50,000 deep; a 5 MB body",
        2,
        "422 validation_error and 413 payload_too_large, the service unaffected",
    )


def test_garbage_on_the_wire(api: Api, reliability: Recorder) -> None:
    garbage = [
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET /v1/agents HTTP/9.9\r\n\r\n",
        b"POST /v1/agents HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
    ]
    for payload in garbage:
        with socket.create_connection(_address(api.url), timeout=10) as sock:
            sock.sendall(payload)
            with_answer = sock.recv(1024)
            assert with_answer == b"" or with_answer.startswith(b"HTTP/1.1 4")
    assert api.alice.get("/v1/agents").status_code == 200
    assert httpx.get(f"{api.url}/healthz").status_code == 200
    reliability.record(
        "malformed HTTP (binary, bad version, negative length, 100 kB request line)",
        len(garbage),
        "4xx or the connection closed; the service unaffected",
    )
