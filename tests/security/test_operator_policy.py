"""Operator settings: keys file and its reload, quotas, image allowlist, read-only root,
rate limits and the audit trail, each against a real service and engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import httpx

from agent_platform.auth import hash_key
from testenv.engine import TEST_PREFIX

from ..api.helpers import assert_problem, body
from ..conftest import Keys, StartServer


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)


def test_the_agent_quota_is_enforced_per_owner(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str
) -> None:
    server = start_server(AGENT_API_MAX_AGENTS_PER_OWNER="2")
    with client(server.url, keys[0].alice) as alice, client(server.url, keys[0].bob) as bob:
        headers = {"Idempotency-Key": "first"}
        assert (
            alice.post("/v1/agents", json=body("aptest-q1", busybox), headers=headers).status_code
            == 201
        )
        assert alice.post("/v1/agents", json=body("aptest-q2", busybox)).status_code == 201
        third = alice.post("/v1/agents", json=body("aptest-q3", busybox))
        assert "2 agents" in assert_problem(third, 403, "agent_quota_exceeded")["detail"]
        # A replay of an accepted spawn is not a new agent.
        replay = alice.post("/v1/agents", json=body("aptest-q1", busybox), headers=headers)
        assert replay.status_code == 201
        assert bob.post("/v1/agents", json=body("aptest-q1", busybox)).status_code == 201
        assert len(alice.get("/v1/agents").json()["items"]) == 2


def test_the_image_allowlist(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str, server_log_default: str
) -> None:
    assert "every image may be spawned" in server_log_default
    server = start_server(AGENT_API_ALLOWED_IMAGES='["aptest/*"]')
    with client(server.url, keys[0].alice) as alice:
        refused = alice.post("/v1/agents", json=body("aptest-img", "docker.io/library/alpine:3"))
        assert "not allowed" in assert_problem(refused, 403, "policy_violation")["detail"]
        assert alice.post("/v1/agents", json=body("aptest-img", busybox)).status_code == 201
    assert "every image may be spawned" not in server.logs()


def test_a_read_only_root_filesystem(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
) -> None:
    server = start_server(AGENT_API_READ_ONLY_ROOTFS="true")
    with client(server.url, keys[0].alice) as alice:
        assert (
            alice.post("/v1/agents", json=body("aptest-ro", busybox, workspace=True)).status_code
            == 201
        )
    container = clean_docker.containers.get(f"{TEST_PREFIX}alice.aptest-ro")
    assert container.exec_run(["touch", "/etc/evil"]).exit_code != 0
    assert container.exec_run(["touch", "/tmp/fine"]).exit_code == 0
    assert container.exec_run(["touch", "/workspace/fine"]).exit_code == 0


def test_the_rate_limit_is_per_key(start_server: StartServer, keys: tuple[Keys, Path]) -> None:
    server = start_server(AGENT_API_RATE_LIMIT_PER_MINUTE="6", AGENT_API_RATE_LIMIT_BURST="3")
    with client(server.url, keys[0].alice) as alice, client(server.url, keys[0].bob) as bob:
        answers = [alice.get("/v1/agents").status_code for _ in range(3)]
        assert answers == [200, 200, 200]
        limited = alice.get("/v1/agents")
        assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert bob.get("/v1/agents").status_code == 200


def test_every_mutating_request_is_audited_without_secrets(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = start_server(AGENT_API_AUDIT_FILE=str(audit))
    with (
        client(server.url, keys[0].alice) as alice,
        client(server.url, keys[0].alice_viewer) as viewer,
    ):
        spec = body(
            "aptest-audit",
            busybox,
            env={"VISIBLE": "env-value-1"},
            secrets={"TOKEN": "secret-value-1"},
        )
        agent = alice.post("/v1/agents", json=spec, headers={"X-Request-ID": "req-spawn"}).json()
        alice.post(f"/v1/agents/{agent['id']}/action", json={"action": "stop", "timeout": 0})
        alice.post(f"/v1/agents/{agent['id']}/start", params={"timeout": "x"})  # no such param
        alice.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": -1})
        viewer.delete(f"/v1/agents/{agent['id']}")
        alice.delete(f"/v1/agents/{agent['id']}")
        alice.get("/v1/agents")  # reads are not audited
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["action"], r["key"], r["outcome"], r["status"]) for r in records] == [
        ("spawn", "alice-op", "success", 201),
        ("stop", "alice-op", "success", 200),
        ("start", "alice-op", "success", 200),
        ("stop", "alice-op", "rejected", 422),
        ("delete", "alice-view", "denied", 403),
        ("delete", "alice-op", "success", 204),
    ]
    assert records[0]["request_id"] == "req-spawn"
    assert records[0]["agent"] == "aptest-audit"
    assert records[0]["owner"] == "alice"
    everything = audit.read_text() + server.logs()
    for secret in ("secret-value-1", "env-value-1", keys[0].alice, keys[0].alice_viewer):
        assert secret not in everything
    assert '"audit": true' in server.logs()


def test_keys_are_reloaded_on_change_and_on_sighup(
    start_server: StartServer, keys: tuple[Keys, Path], tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("keys: []\n")
    server = start_server(keys_file=keys_file)

    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_platform",
            "create-key",
            "--name",
            "carol-1",
            "--owner",
            "carol",
            "--role",
            "viewer",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("AGENT_API_")},
    )
    new_key = made.stdout.split("store it now): ", 1)[1].split()[0]
    entry = json.loads(made.stdout.strip().splitlines()[-1])
    assert entry == {
        "name": "carol-1",
        "owner": "carol",
        "role": "viewer",
        "sha256": hash_key(new_key),
    }
    assert new_key not in json.dumps(entry)

    with client(server.url, new_key) as carol:
        assert_problem(carol.get("/v1/agents"), 401, "unauthorized")
        keys_file.write_text(f"keys:\n  - {json.dumps(entry)}\n")
        assert carol.get("/v1/agents").status_code == 200
        assert_problem(carol.post("/v1/agents", json=body("aptest-c", "x")), 403, "forbidden")

        # Rotated in place with the same size and time: only the signal makes it seen.
        stat = keys_file.stat()
        rotated = {**entry, "sha256": hash_key("a-different-key-entirely")}
        keys_file.write_text(f"keys:\n  - {json.dumps(rotated)}\n")
        os.utime(keys_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert keys_file.stat().st_size == stat.st_size
        assert carol.get("/v1/agents").status_code == 200
        server.send_signal(signal.SIGHUP)
        for _ in range(50):
            if carol.get("/v1/agents").status_code == 401:
                break
            time.sleep(0.1)
        assert_problem(carol.get("/v1/agents"), 401, "unauthorized")
