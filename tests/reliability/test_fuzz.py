"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every check schemathesis has, except ``positive_data_acceptance``: some values fit the
schema and are still refused on purpose (a cursor the server never issued, a date that
does not exist, a command the image does not have), which that check cannot know.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker

from orchestrators import labels as L
from testenv.engine import TEST_PREFIX

from ..conftest import Keys, StartServer
from .conftest import Recorder


def fuzz(url: str, tmp_path: Path, headers: list[str], examples: int, seconds: int) -> dict:  # type: ignore[type-arg]
    report = tmp_path / f"fuzz-{len(list(tmp_path.glob('fuzz-*.json')))}.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(examples),
        "--max-time",
        str(seconds),
        "--generation-database",
        "none",
        "--no-color",
        "--seed",
        "20261120",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--request-timeout",
        "30",
    ]
    for header in headers:
        command += ["--header", header]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 240, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:]
    data: dict = json.loads(report.read_text())  # type: ignore[type-arg]
    return data


def cases_of(report: dict) -> int:  # type: ignore[type-arg]
    counts = report["test_cases"]
    return int(counts.get("total", sum(v for v in counts.values() if isinstance(v, int))))


def test_fuzzing_the_api_finds_no_server_error_and_creates_nothing_it_refused(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    tmp_path: Path,
    clean_docker: docker.DockerClient,
    reliability: Recorder,
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = start_server(AGENT_API_AUDIT_FILE=str(audit), AGENT_API_LOG_LEVEL="WARNING")

    authorised = fuzz(server.url, tmp_path, [f"Authorization: Bearer {keys[0].admin}"], 60, 150)
    anonymous = fuzz(server.url, tmp_path, [], 15, 45)
    wrong = fuzz(server.url, tmp_path, ["X-API-Key: not-a-key-of-this-server"], 10, 30)

    accepted = (
        {
            json.loads(line)["agent"]
            for line in audit.read_text().splitlines()
            if json.loads(line)["action"] == "spawn" and json.loads(line)["status"] == 201
        }
        if audit.exists()
        else set()
    )
    instance = L.instance_name(TEST_PREFIX)
    existing = {
        c["Labels"][L.NAME]
        for c in clean_docker.api.containers(
            all=True, filters={"label": [f"{L.INSTANCE}={instance}"]}
        )
    }
    assert existing <= accepted
    assert '"level": "ERROR"' not in server.logs()

    reliability.record(
        "schemathesis, admin key (every check but positive data acceptance)",
        cases_of(authorised),
        f"no 5xx, responses match the schema; {len(existing)} agents exist, each from a 201",
    )
    reliability.record(
        "schemathesis, no key", cases_of(anonymous), "401 problem+json everywhere under /v1"
    )
    reliability.record(
        "schemathesis, wrong key", cases_of(wrong), "401 problem+json everywhere under /v1"
    )
