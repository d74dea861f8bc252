"""Slow and surplus clients against the service as a process: header and body deadlines,
the connection cap, and authentication before the body is read."""

from __future__ import annotations

import json
import select
import socket
from urllib.parse import urlparse

import httpx

from ..conftest import Api, StartServer
from .helpers import assert_problem


def _address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    return parsed.hostname, parsed.port


def _trickle(url: str, head: bytes, trickled: bytes, pause: float) -> tuple[int, bytes]:
    """Send ``head`` at once, then ``trickled`` a byte every ``pause`` seconds; return how
    many trickled bytes went out before the server answered or closed, and what it said."""
    with socket.create_connection(_address(url), timeout=60) as sock:
        sock.sendall(head)
        for sent, byte in enumerate(trickled):
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return sent, b""
            readable, _, _ = select.select([sock], [], [], pause)
            if readable:
                try:
                    return sent + 1, sock.recv(65536)
                except OSError:
                    return sent + 1, b""
        return len(trickled), sock.recv(65536)


def test_headers_trickled_a_byte_at_a_time_are_cut_off(start_server: StartServer) -> None:
    server = start_server(AGENT_API_HEADER_TIMEOUT="2")
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n"
    sent, answer = _trickle(server.url, b"", request, pause=0.25)
    assert answer == b"", answer[:100]  # closed without an answer
    assert sent < len(request)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert "the request's headers took over 2.0 s" in server.logs()


def test_a_trickled_body_is_cut_off(start_server: StartServer, api: Api) -> None:
    server = start_server(AGENT_API_BODY_TIMEOUT="2")
    body = json.dumps({"name": "Not A Valid Name", "image": "aptest/busybox:latest"}).encode()
    head = (
        "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {api.keys.alice}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sent, answer = _trickle(server.url, head, body, pause=0.25)
    assert answer == b"", answer[:100]  # not the 422 the whole body would get
    assert sent < len(body)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": api.keys.alice}) as client:
        assert client.get("/v1/agents").status_code == 200


def test_connections_past_the_cap_are_refused_then_served_again(
    start_server: StartServer,
) -> None:
    server = start_server(AGENT_API_MAX_CONNECTIONS="5", AGENT_API_HEADER_TIMEOUT="120")
    idle = [socket.create_connection(_address(server.url), timeout=10) for _ in range(5)]
    try:
        refused = httpx.get(f"{server.url}/healthz")
        assert_problem(refused, 503, "too_many_connections")
        assert refused.headers["retry-after"] == "5"
    finally:
        for sock in idle:
            sock.close()
    answers = []
    for _ in range(50):  # the closed sockets are noticed on the server's next loop turns
        answers.append(httpx.get(f"{server.url}/healthz").status_code)
        if answers[-1] == 200:
            break
    assert answers[-1] == 200, answers


def test_an_unauthenticated_body_is_never_read(api: Api) -> None:
    json_type = {"Content-Type": "application/json"}
    # Over the size limit: 413 once authenticated, 401 without a key.
    huge = api.anonymous.post("/v1/agents", content=b" " * 300_000, headers=json_type)
    assert_problem(huge, 401, "unauthorized")
    assert huge.headers["connection"] == "close"
    assert huge.headers["www-authenticate"].startswith("Bearer")
    # 250 KiB nested too deep to parse: 422 once authenticated, 401 with a wrong key.
    deep = b"[" * 256_000
    wrong = api.client("not-a-key-of-this-service").post(
        "/v1/agents", content=deep, headers=json_type
    )
    assert_problem(wrong, 401, "unauthorized")
    assert_problem(
        api.alice.post("/v1/agents", content=deep, headers=json_type), 422, "validation_error"
    )
    assert_problem(
        api.alice.post("/v1/agents", content=b" " * 300_000, headers=json_type),
        413,
        "payload_too_large",
    )
    # No route for it: its 404 or 405 comes without the body being read (it was a 413).
    assert_problem(
        api.anonymous.post("/v1/nothing", content=b" " * 300_000, headers=json_type),
        404,
        "not_found",
    )
    assert_problem(
        api.anonymous.put("/v1/agents", content=b"[" * 256_000, headers=json_type),
        405,
        "method_not_allowed",
    )


def _exchange(url: str, raw: bytes) -> bytes:
    """Send ``raw`` on a new connection; everything the server sends until it closes."""
    with socket.create_connection(_address(url), timeout=30) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_what_the_parser_refuses_is_answered_as_a_problem(api: Api) -> None:
    for raw, status, code in (
        (b"BREW /v1/agents HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"),
        (b"GET /v1/agents HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
        (b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400, "bad_request"),
    ):
        answer = _exchange(api.url, raw)
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
        assert b"content-type: application/problem+json" in head.lower()
        assert json.loads(payload)["code"] == code
    # An Upgrade the service does not speak is ignored, and the request is answered.
    upgraded = _exchange(
        api.url,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n",
    )
    assert upgraded.startswith(b"HTTP/1.1 200 "), upgraded[:100]
    metrics = api.anonymous.get("/metrics").text
    assert 'method="other",route="unmatched",status="400"' in metrics
