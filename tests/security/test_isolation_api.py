"""Isolation around the API, tried as an attacker with a key would, on the real service.

Id/name confusion, weak and placeholder keys, a keys file that breaks, secrets echoed in
errors, forged cursors, and what the service serves without a key. Every refusal leaves
nothing behind.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from agent_platform.auth import hash_key
from agent_platform.keyrules import PLACEHOLDER_KEY
from orchestrators.models import AgentSpec, Resources
from testenv.backends import docker_orchestrator

from ..api.helpers import assert_problem, body, run_cli, serve
from ..conftest import Api, Keys, StartServer
from .test_attack_corpus import BUSYBOX, assert_nothing_created, base

REPO = Path(__file__).resolve().parents[2]
SMALL = Resources(cpus=0.5, memory_mb=64, pids=32)


def client(url: str, key: str | None) -> httpx.Client:
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


# -- 3. an id and a name never meet -------------------------------------------------------


@pytest.mark.parametrize("name", ["0123456789abcdef0123456789abcdef", uuid.uuid4().hex])
def test_a_name_shaped_like_an_id_is_refused(
    api: Api, clean_docker: docker.DockerClient, name: str
) -> None:
    problem = assert_problem(
        api.alice.post("/v1/agents", json=base(name=name)), 422, "validation_error"
    )
    assert problem["errors"][0]["loc"] == ["body", "name"]
    assert_nothing_created(clean_docker)
    # One character off the shape is a name like any other.
    assert api.alice.post("/v1/agents", json=base(name=name[:31])).status_code == 201


@pytest.mark.anyio
async def test_a_ref_shaped_like_an_id_is_never_read_as_a_name(
    api: Api, clean_docker: docker.DockerClient
) -> None:
    # An agent of bob's whose name has the shape of an id, as one spawned before names were
    # checked would be (the schema now refuses it, so it is built without validation).
    lookalike = uuid.uuid4().hex
    legacy = AgentSpec.model_construct(
        name=lookalike, image=BUSYBOX, command=["sleep", "3600"], restart_policy="no"
    )
    backend = docker_orchestrator()
    try:
        bobs = await backend.spawn(legacy, owner="bob", resources=SMALL)
    finally:
        await backend.close()

    # The admin's retried delete-by-id of an agent that is gone must not find bob's by name.
    for caller in (api.admin, api.bob):
        assert_problem(caller.get(f"/v1/agents/{lookalike}"), 404, "agent_not_found")
        assert_problem(caller.delete(f"/v1/agents/{lookalike}"), 404, "agent_not_found")
        assert_problem(caller.post(f"/v1/agents/{lookalike}/stop"), 404, "agent_not_found")
    assert api.bob.get(f"/v1/agents/{bobs.id}").json()["status"] == "running"
    assert api.admin.delete(f"/v1/agents/{bobs.id}").status_code == 204


def test_the_audit_names_the_resolved_agent_and_its_owner(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = start_server(AGENT_API_AUDIT_FILE=str(audit))
    made = keys[0]
    with client(server.url, made.alice) as alice, client(server.url, made.admin) as admin:
        agent = alice.post("/v1/agents", json=body("aptest-audited", busybox)).json()
        stopped = admin.post("/v1/agents/aptest-audited/stop", params={"owner": "alice"})
        assert stopped.status_code == 200
        deleted = admin.delete("/v1/agents/aptest-audited", params={"owner": "alice"})
        assert deleted.status_code == 204
        assert_problem(admin.delete(f"/v1/agents/{agent['id']}"), 404, "agent_not_found")
    # The middleware appends a record once the response is sent: the last may land just after.
    for _ in range(100):
        if len(audit.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [
        (r["action"], r["key"], r["owner"], r["agent"], r["agent_id"], r["agent_owner"])
        for r in records
    ] == [
        ("spawn", "alice-op", "alice", "aptest-audited", agent["id"], "alice"),
        ("stop", "admin", "admin", "aptest-audited", agent["id"], "alice"),
        ("delete", "admin", "admin", "aptest-audited", agent["id"], "alice"),
        ("delete", "admin", "admin", agent["id"], None, None),  # resolved to nothing
    ]


# -- 4. weak and placeholder keys ---------------------------------------------------------


def _example_key() -> str:
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.startswith("AGENT_API_KEY="):
            return line.split("=", 1)[1]
    raise AssertionError(".env.example has no AGENT_API_KEY")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (_example_key(), "placeholder"),
        ("CHANGEME-" + secrets.token_urlsafe(32), "placeholder"),
        ("k" * 48, "too few different characters"),
        ("ab" * 24, "too few different characters"),
        (secrets.token_urlsafe(16), "at least 32 characters"),
    ],
    ids=["env_example", "changeme", "one_char", "two_chars", "short"],
)
def test_a_weak_or_placeholder_admin_key_stops_the_start(
    tmp_path: Path, key: str, reason: str
) -> None:
    result = serve({"AGENT_API_KEY": key}, tmp_path)
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert reason in result.stderr
    assert key not in result.stdout + result.stderr


def test_a_keys_file_with_the_placeholder_key_stops_the_start(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    entry = {
        "name": "lazy",
        "owner": "sol",
        "role": "operator",
        "sha256": hash_key(PLACEHOLDER_KEY),
    }
    keys_file.write_text(json.dumps({"keys": [entry]}))
    result = serve({"AGENT_API_KEYS_FILE": str(keys_file)}, tmp_path)
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert PLACEHOLDER_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize("key", ["k" * 40, PLACEHOLDER_KEY, "short"])
def test_create_key_refuses_to_hash_a_weak_key(key: str) -> None:
    result = run_cli("create-key", "--stdin", "--name", "n", "--owner", "sol", stdin=key + "\n")
    assert result.returncode == 2
    assert "configuration error: key:" in result.stderr
    assert key not in result.stdout + result.stderr


def test_create_key_hashes_a_strong_key_without_printing_it() -> None:
    key = secrets.token_urlsafe(32)
    result = run_cli("create-key", "--stdin", "--name", "n", "--owner", "sol", stdin=key + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["sha256"] == hash_key(key)
    assert key not in result.stdout + result.stderr


# -- 5. a broken keys file grants nothing -------------------------------------------------


def _entry(name: str, owner: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "owner": owner, "role": "operator", "sha256": hash_key(key), **extra}


def _keys_file_valid(url: str) -> str:
    lines = httpx.get(f"{url}/metrics", timeout=30).text.splitlines()
    return next(line for line in lines if line.startswith("agent_api_keys_file_valid "))


def test_revocation_fails_closed_when_the_keys_file_breaks(
    start_server: StartServer, keys: tuple[Keys, Path], tmp_path: Path
) -> None:
    made = keys[0]
    keys_file = tmp_path / "keys.json"
    good = [_entry("alice-op", "alice", made.alice), _entry("bob-op", "bob", made.bob)]
    keys_file.write_text(json.dumps({"keys": good}))
    server = start_server(keys_file=keys_file)
    with (
        client(server.url, made.alice) as alice,
        client(server.url, made.bob) as bob,
        client(server.url, made.admin) as admin,
        client(server.url, None) as anonymous,
    ):
        assert alice.get("/v1/agents").status_code == 200
        assert anonymous.get("/readyz").json()["status"] == "ready"
        assert _keys_file_valid(server.url) == "agent_api_keys_file_valid 1.0"

        # alice's key is disabled in the same write that breaks another entry.
        broken = [
            _entry("alice-op", "alice", made.alice, disabled=True),
            {**good[1], "role": "root"},
        ]
        keys_file.write_text(json.dumps({"keys": broken}))
        assert_problem(alice.get("/v1/agents"), 401, "unauthorized")
        assert_problem(bob.get("/v1/agents"), 401, "unauthorized")
        assert admin.get("/v1/agents").status_code == 200
        ready = anonymous.get("/readyz")
        assert_problem(ready, 503, "keys_file_broken")
        assert _keys_file_valid(server.url) == "agent_api_keys_file_valid 0.0"

        # Deleted: the same.
        keys_file.write_text(json.dumps({"keys": good}))
        assert alice.get("/v1/agents").status_code == 200
        keys_file.unlink()
        assert_problem(alice.get("/v1/agents"), 401, "unauthorized")
        assert admin.get("/v1/agents").status_code == 200
        assert_problem(anonymous.get("/readyz"), 503, "keys_file_broken")
        assert _keys_file_valid(server.url) == "agent_api_keys_file_valid 0.0"

        # Two entries for one digest (one disabled) is a bad file too.
        twice = [good[0], _entry("alice-old", "alice", made.alice, disabled=True)]
        keys_file.write_text(json.dumps({"keys": twice}))
        assert_problem(alice.get("/v1/agents"), 401, "unauthorized")

        # Fixed: back at once, without a restart.
        keys_file.write_text(json.dumps({"keys": good}))
        assert alice.get("/v1/agents").status_code == 200
        assert anonymous.get("/readyz").json()["status"] == "ready"
        assert _keys_file_valid(server.url) == "agent_api_keys_file_valid 1.0"
    for key in (made.alice, made.bob, made.admin):
        assert key not in server.logs()


# -- 6. no part of a secrets map in any error ---------------------------------------------

SECRET = "sk-live-" + "Q7x9" * 6  # what a caller means to keep secret


SECRET_ERRORS: list[tuple[str, bytes, int]] = [
    ("swapped", json.dumps(base(secrets={SECRET: "OPENAI_API_KEY"})).encode(), 422),
    ("value_not_a_string", json.dumps(base(secrets={SECRET: 12345})).encode(), 422),
    ("value_nul", json.dumps(base(secrets={"TOKEN": SECRET + "\x00"})).encode(), 422),
    ("value_too_long", json.dumps(base(secrets={"TOKEN": SECRET * 2000})).encode(), 422),
    (
        "also_in_env",
        json.dumps(
            base(
                env={SECRET.upper().replace("-", "_"): "x"},
                secrets={SECRET.upper().replace("-", "_"): "v"},
            )
        ).encode(),
        422,
    ),
    (
        "too_many",
        json.dumps(
            base(secrets={f"{SECRET.upper().replace('-', '_')}_{i}": "v" for i in range(65)})
        ).encode(),
        422,
    ),
    (
        "repeated_key",
        b'{"name": "aptest-s", "image": "'
        + BUSYBOX.encode()
        + b'", "secrets": {"'
        + SECRET.encode()
        + b'": "a", "'
        + SECRET.encode()
        + b'": "b"}}',
        422,
    ),
    ("oversized", json.dumps(base(secrets={SECRET: "x" * 300_000})).encode(), 413),
]


@pytest.mark.parametrize("case", SECRET_ERRORS, ids=[c[0] for c in SECRET_ERRORS])
def test_no_part_of_a_secrets_map_is_echoed_in_an_error(
    api: Api, clean_docker: docker.DockerClient, case: tuple[str, bytes, int]
) -> None:
    _, raw, status = case
    response = api.alice.post(
        "/v1/agents", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    text = response.text
    for needle in (SECRET, SECRET.upper().replace("-", "_"), "Q7x9Q7x9", "OPENAI_API_KEY", "12345"):
        assert needle not in text
    for error in response.json().get("errors", []):
        if "secrets" in error["loc"]:
            assert error["loc"][-1] == "secrets"
    assert SECRET not in api.server.logs()
    assert_nothing_created(clean_docker)


# -- 7. cursors are signed ----------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_the_server_did_not_sign_is_400(api: Api, busybox: str) -> None:
    for index in range(3):
        assert (
            api.alice.post("/v1/agents", json=body(f"aptest-c{index}", busybox)).status_code == 201
        )
    issued = api.alice.get("/v1/agents", params={"limit": 1}).json()["next_cursor"]
    payload, signature = issued.split(".")
    forged_position = _b64(json.dumps(["9999-01-01T00:00:00+00:00", "f" * 32]).encode())
    for forged in [
        _b64(json.dumps(["2000-01-01T00:00:00+00:00", "0" * 32]).encode()),  # unsigned, old shape
        _b64(b'{"created_at": "2000-01-01", "id": "x"}'),
        '{"a": 1}',
        "ab",
        "",
        f"{forged_position}.{signature}",
        f"{payload}.{_b64(b'x' * 32)}",
        f"{payload}.{signature}x",
        f"{payload}..{signature}",
        issued + "." * 600,
    ]:
        response = api.alice.get("/v1/agents", params={"cursor": forged, "limit": 1})
        assert_problem(response, 400, "invalid_cursor")
    assert api.alice.get("/v1/agents", params={"cursor": issued, "limit": 1}).status_code == 200


def test_a_cursor_from_one_replica_works_on_another(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str
) -> None:
    first, second = start_server(), start_server()
    other = start_server(AGENT_API_CURSOR_SECRET=secrets.token_urlsafe(32))
    made = keys[0]
    with (
        client(first.url, made.alice) as on_first,
        client(second.url, made.alice) as on_second,
        client(other.url, made.alice) as on_other,
    ):
        for index in range(3):
            assert (
                on_first.post("/v1/agents", json=body(f"aptest-r{index}", busybox)).status_code
                == 201
            )
        cursor = on_first.get("/v1/agents", params={"limit": 1}).json()["next_cursor"]
        page = on_second.get("/v1/agents", params={"limit": 5, "cursor": cursor}).json()
        assert [a["name"] for a in page["items"]] == ["aptest-r1", "aptest-r2"]
        # A deployment configured with its own cursor secret does not take it.
        assert_problem(on_other.get("/v1/agents", params={"cursor": cursor}), 400, "invalid_cursor")


# -- 12. what is served without a key -----------------------------------------------------


def test_docs_are_off_and_metrics_and_openapi_on_by_default(api: Api) -> None:
    assert api.anonymous.get("/metrics").status_code == 200
    assert api.anonymous.get("/openapi.json").status_code == 200
    assert_problem(api.anonymous.get("/docs"), 404, "not_found")
    assert_problem(api.anonymous.get("/redoc"), 404, "not_found")


def test_each_exposure_is_a_setting(
    start_server: StartServer, tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    closed = start_server(AGENT_API_EXPOSE_METRICS="false", AGENT_API_EXPOSE_OPENAPI="false")
    with client(closed.url, None) as anonymous, client(closed.url, keys[0].admin) as admin:
        for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
            assert_problem(anonymous.get(path), 404, "not_found")
            assert_problem(admin.get(path), 404, "not_found")
        assert anonymous.get("/readyz").status_code == 200
    docs = start_server(AGENT_API_EXPOSE_DOCS="true")
    with client(docs.url, None) as anonymous:
        assert anonymous.get("/docs").status_code == 200
        assert anonymous.get("/redoc").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
    refused = serve(
        {
            "AGENT_API_KEY": keys[0].admin,
            "AGENT_API_EXPOSE_DOCS": "true",
            "AGENT_API_EXPOSE_OPENAPI": "false",
        },
        tmp_path,
    )
    assert refused.returncode == 2
    assert "AGENT_API_EXPOSE_DOCS needs AGENT_API_EXPOSE_OPENAPI" in refused.stderr
