"""Every known way out of a Docker socket proxy, tried through the public API.

Each attempt must be refused (422, 403, 413 or 415) and leave nothing behind: no container,
no volume. The agents that are allowed are then inspected on the real engine to prove the
policy holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from orchestrators import labels as L
from testenv.engine import TEST_NAMES, TEST_NETWORK, TEST_PREFIX

from ..api.helpers import assert_problem
from ..conftest import Api

BUSYBOX = "aptest/busybox:latest"


def base(**extra: Any) -> dict[str, Any]:
    return {"name": "aptest-attack", "image": BUSYBOX, "command": ["sleep", "3600"], **extra}


# (id, body) pairs: each body is a JSON object that must be refused with 422.
SCHEMA_ATTACKS: list[tuple[str, dict[str, Any]]] = [
    ("privileged", base(privileged=True)),
    ("Privileged", base(Privileged=True)),
    ("host_config_privileged", base(HostConfig={"Privileged": True})),
    ("binds_root", base(binds=["/:/host"])),
    ("Binds_root", base(Binds=["/:/host"])),
    ("binds_docker_sock", base(binds=["/var/run/docker.sock:/var/run/docker.sock"])),
    ("host_config_binds_etc", base(HostConfig={"Binds": ["/etc:/etc"]})),
    ("mounts_bind", base(mounts=[{"Type": "bind", "Source": "/", "Target": "/host"}])),
    ("Mounts_bind", base(Mounts=[{"Type": "bind", "Source": "/etc", "Target": "/x"}])),
    ("volumes_list", base(volumes=["/:/host"])),
    ("Volumes_map", base(Volumes={"/host": {}})),
    (
        "volumes_local_bind",
        base(
            volumes={
                "v": {
                    "driver": "local",
                    "driver_opts": {"o": "bind", "device": "/", "type": "none"},
                }
            }
        ),
    ),
    (
        "workspace_driver_opts",
        base(workspace={"driver": "local", "driver_opts": {"o": "bind", "device": "/"}}),
    ),
    ("workspace_path", base(workspace="/etc")),
    ("resources_nested_binds", base(resources={"cpus": 1, "binds": ["/:/h"]})),
    ("volumes_from", base(volumes_from=["agent-api"])),
    ("network_host", base(network="host")),
    ("network_mode_host", base(network_mode="host")),
    ("NetworkMode_host", base(HostConfig={"NetworkMode": "host"})),
    ("network_container", base(network="container:agent-api")),
    ("pid_host", base(pid_mode="host")),
    ("PidMode_host", base(PidMode="host")),
    ("ipc_host", base(ipc_mode="host")),
    ("uts_host", base(uts_mode="host")),
    ("userns_host", base(userns_mode="host")),
    ("cgroupns_host", base(cgroupns="host")),
    ("cap_add_sys_admin", base(cap_add=["SYS_ADMIN"])),
    ("CapAdd_all", base(CapAdd=["ALL"])),
    ("devices", base(devices=["/dev/sda:/dev/sda"])),
    ("Devices", base(HostConfig={"Devices": [{"PathOnHost": "/dev/mem"}]})),
    ("sysctls", base(sysctls={"kernel.core_pattern": "|/tmp/x"})),
    ("security_opt_seccomp", base(security_opt=["seccomp=unconfined"])),
    ("security_opt_apparmor", base(security_opt=["apparmor=unconfined"])),
    ("SecurityOpt", base(HostConfig={"SecurityOpt": ["seccomp:unconfined"]})),
    ("cgroup_parent", base(cgroup_parent="/")),
    ("ports_host", base(ports={"22/tcp": 2222})),
    ("PortBindings", base(HostConfig={"PortBindings": {"80/tcp": [{"HostPort": "80"}]}})),
    ("publish_all", base(publish_all_ports=True)),
    ("runtime", base(runtime="runc-unsafe")),
    ("user_root", base(user="0:0")),
    ("extra_networks", base(networks=["bridge", "host"])),
    ("name_dotdot", base(name="..")),
    ("name_traversal", base(name="../../etc")),
    ("name_slash", base(name="a/b")),
    ("name_upper", base(name="Admin")),
    ("name_too_long", base(name="a" * 64)),
    ("name_empty", base(name="")),
    ("name_leading_dash", base(name="-rf")),
    ("label_system_owner", base(labels={"agents.hive.io/owner": "bob"})),
    ("label_system_managed", base(labels={"agents.hive.io/managed-by": "someone"})),
    ("label_user_prefix", base(labels={"user.agents.hive.io/x": "y"})),
    ("image_with_flags", base(image="busybox --privileged")),
    ("image_empty", base(image="")),
    ("command_nul", base(command=["sh", "-c", "echo\x00rm"])),
    ("env_bad_name", base(env={"A=B": "x"})),
    ("resources_negative", base(resources={"memory_mb": -1})),
    ("resources_zero_cpus", base(resources={"cpus": 0})),
    ("restart_unknown", base(restart_policy="forever")),
    ("ttl_negative", base(ttl_seconds=-1)),
    ("ttl_string", base(ttl_seconds="forever")),
]


def assert_nothing_created(engine: docker.DockerClient) -> None:
    containers = engine.api.containers(all=True, filters={"name": TEST_NAMES})
    assert [c["Names"] for c in containers] == []
    volumes = engine.api.volumes(filters={"label": [f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}"]})
    assert [
        v["Name"] for v in volumes.get("Volumes") or [] if v["Name"].startswith(TEST_PREFIX)
    ] == []


@pytest.mark.parametrize("attack", SCHEMA_ATTACKS, ids=[name for name, _ in SCHEMA_ATTACKS])
def test_schema_attacks_are_refused(
    api: Api, clean_docker: docker.DockerClient, attack: tuple[str, dict[str, Any]]
) -> None:
    _, payload = attack
    assert_problem(api.alice.post("/v1/agents", json=payload), 422, "validation_error")
    assert_nothing_created(clean_docker)


RAW_ATTACKS: list[tuple[str, bytes, str, int, str]] = [
    (
        "unicode_escaped_key",
        b'{"name": "aptest-u", "image": "' + BUSYBOX.encode() + b'", "privil\\u0065ged": true}',
        "application/json",
        422,
        "validation_error",
    ),
    (
        "unicode_escaped_hostconfig",
        b'{"name": "aptest-u", "image": "'
        + BUSYBOX.encode()
        + b'", "\\u0048ostConfig": {"Binds": ["/:/h"]}}',
        "application/json",
        422,
        "validation_error",
    ),
    (
        "duplicate_name_key",
        b'{"name": "aptest-a", "image": "' + BUSYBOX.encode() + b'", "name": "aptest-b"}',
        "application/json",
        422,
        "validation_error",
    ),
    (
        "duplicate_nested_key",
        b'{"name": "aptest-a", "image": "'
        + BUSYBOX.encode()
        + b'", "labels": {"a": "1", "a": "2"}}',
        "application/json",
        422,
        "validation_error",
    ),
    (
        "form_encoded",
        b"name=aptest-f&image=busybox&privileged=1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    ("text_plain", json.dumps(base()).encode(), "text/plain", 415, "unsupported_media_type"),
    ("no_content_type", json.dumps(base()).encode(), "", 415, "unsupported_media_type"),
    ("empty_body", b"", "application/json", 422, "validation_error"),
    ("not_json", b"{name: aptest}", "application/json", 422, "validation_error"),
    ("json_array", b"[]", "application/json", 422, "validation_error"),
    (
        "deep_json",
        b'{"name": "aptest-d", "image": "x", "labels": ' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"}",
        "application/json",
        422,
        "validation_error",
    ),
    (
        "oversized",
        json.dumps(base(env={"PAD": "x" * 300_000})).encode(),
        "application/json",
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize("attack", RAW_ATTACKS, ids=[a[0] for a in RAW_ATTACKS])
def test_raw_body_attacks_are_refused(
    api: Api, clean_docker: docker.DockerClient, attack: tuple[str, bytes, str, int, str]
) -> None:
    _, raw, content_type, status, code = attack
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.alice.post("/v1/agents", content=raw, headers=headers)
    if not content_type:
        # httpx adds no content type for raw bytes; make sure none was sent
        assert "content-type" not in response.request.headers
    assert_problem(response, status, code)
    assert_nothing_created(clean_docker)


def test_an_oversized_body_without_a_length_is_cut_off(
    api: Api, clean_docker: docker.DockerClient
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "aptest-chunked", "image": "x", "env": {"PAD": "'
        for _ in range(100):
            yield b"y" * 10_000
        yield b'"}}'

    response = api.alice.post(
        "/v1/agents", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert_nothing_created(clean_docker)


def test_spawning_into_another_owners_name_space_is_refused(
    api: Api, clean_docker: docker.DockerClient
) -> None:
    refused = api.alice.post("/v1/agents", params={"owner": "bob"}, json=base())
    assert_problem(refused, 403, "forbidden")
    assert_problem(
        api.alice.post("/v1/agents", json=base(name="bob.aptest")), 422, "validation_error"
    )
    assert_nothing_created(clean_docker)
    # A user label named like a system one stays a user label.
    agent = api.alice.post(
        "/v1/agents", json=base(labels={"owner": "bob", "managed-by": "nobody"})
    ).json()
    assert agent["owner"] == "alice"
    assert api.bob.get("/v1/agents").json()["items"] == []
    info = clean_docker.api.inspect_container(f"{TEST_PREFIX}alice.aptest-attack")
    assert info["Config"]["Labels"][L.OWNER] == "alice"
    assert info["Config"]["Labels"][L.MANAGED_BY] == L.MANAGED_BY_VALUE
    assert info["Config"]["Labels"]["user.agents.hive.io/owner"] == "bob"


def test_unmanaged_containers_cannot_be_reached(
    api: Api, clean_docker: docker.DockerClient
) -> None:
    stranger = clean_docker.containers.run(
        BUSYBOX, ["sleep", "3600"], name=f"{TEST_PREFIX}stranger", detach=True
    )
    # Forged labels without the full schema are not enough either.
    forged = clean_docker.containers.run(
        BUSYBOX,
        ["sleep", "3600"],
        name=f"{TEST_PREFIX}forged",
        detach=True,
        labels={L.MANAGED_BY: L.MANAGED_BY_VALUE, L.OWNER: "alice", L.NAME: "forged"},
    )
    for ref in (stranger.id, stranger.short_id, f"{TEST_PREFIX}stranger", "forged", forged.id):
        for client in (api.alice, api.admin):
            assert_problem(client.get(f"/v1/agents/{ref}"), 404, "agent_not_found")
            assert_problem(client.post(f"/v1/agents/{ref}/stop"), 404, "agent_not_found")
            assert_problem(client.delete(f"/v1/agents/{ref}"), 404, "agent_not_found")
            assert_problem(client.get(f"/v1/agents/{ref}/logs"), 404, "agent_not_found")
    assert api.admin.get("/v1/agents").json()["items"] == []
    stranger.reload()
    assert stranger.status == "running"


def test_what_is_allowed_runs_under_the_policy(api: Api, clean_docker: docker.DockerClient) -> None:
    created = api.alice.post(
        "/v1/agents",
        json=base(
            workspace=True,
            secrets={"TOKEN": "never-in-a-label"},
            resources={"cpus": 1.5, "memory_mb": 200, "pids": 64},
        ),
    )
    assert created.status_code == 201, created.text
    isolated = api.alice.post("/v1/agents", json=base(name="aptest-offline", network="none"))
    assert isolated.status_code == 201, isolated.text

    info = clean_docker.api.inspect_container(f"{TEST_PREFIX}alice.aptest-attack")
    host = info["HostConfig"]
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (200 * 2**20, 1_500_000_000, 64)
    assert not host["Binds"]
    assert not host["Devices"]
    assert not host["PortBindings"]
    assert not host["VolumesFrom"]
    assert host["PidMode"] == ""
    assert host["UsernsMode"] == ""
    assert host["UTSMode"] == ""
    assert host["CgroupParent"] == ""
    # Its owner's network only, and as the default non-root user.
    assert list(info["NetworkSettings"]["Networks"]) == [f"{TEST_NETWORK}.alice"]
    assert info["Config"]["User"] == "10001:10001"
    assert [(m["Type"], m["Name"].startswith(f"{TEST_PREFIX}ws-")) for m in info["Mounts"]] == [
        ("volume", True)
    ]
    assert "never-in-a-label" not in json.dumps(info["Config"]["Labels"])

    offline = clean_docker.api.inspect_container(f"{TEST_PREFIX}alice.aptest-offline")
    assert offline["HostConfig"]["NetworkMode"] == "none"
    assert list(offline["NetworkSettings"]["Networks"]) == ["none"]
    assert api.alice.get("/v1/agents/aptest-offline").json()["network"] == "none"
