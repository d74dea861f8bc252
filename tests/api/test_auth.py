"""The auth matrix: no key, wrong key, each role, another owner's agent."""

from __future__ import annotations

import pytest

from ..conftest import Api
from .helpers import assert_problem, body

ROUTES = [
    ("GET", "/v1/agents"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents/x"),
    ("POST", "/v1/agents/x/start"),
    ("POST", "/v1/agents/x/stop"),
    ("POST", "/v1/agents/x/restart"),
    ("POST", "/v1/agents/x/action"),
    ("DELETE", "/v1/agents/x"),
    ("GET", "/v1/agents/x/logs"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_v1_route_needs_a_valid_key(api: Api, method: str, path: str) -> None:
    missing = api.anonymous.request(method, path)
    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")

    wrong = api.client("not-the-key-at-all-0000").request(method, path)
    assert_problem(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"].startswith("Bearer")


def test_bearer_and_x_api_key_are_both_accepted(api: Api) -> None:
    assert api.client(api.keys.admin).get("/v1/agents").status_code == 200
    assert api.client(api.keys.admin, header="X-API-Key").get("/v1/agents").status_code == 200
    malformed = api.client(None)
    malformed.headers["Authorization"] = f"Basic {api.keys.admin}"
    assert_problem(malformed.get("/v1/agents"), 401, "unauthorized")


def test_an_owner_never_sees_another_owners_agent(api: Api, busybox: str) -> None:
    created = api.alice.post("/v1/agents", json=body("aptest-mine", busybox))
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["owner"] == "alice"

    assert api.bob.get("/v1/agents").json()["items"] == []
    for ref in (agent["id"], agent["name"]):
        assert_problem(api.bob.get(f"/v1/agents/{ref}"), 404, "agent_not_found")
        assert_problem(api.bob.post(f"/v1/agents/{ref}/stop"), 404, "agent_not_found")
        assert_problem(api.bob.post(f"/v1/agents/{ref}/start"), 404, "agent_not_found")
        assert_problem(api.bob.post(f"/v1/agents/{ref}/restart"), 404, "agent_not_found")
        assert_problem(api.bob.get(f"/v1/agents/{ref}/logs"), 404, "agent_not_found")
        assert_problem(api.bob.delete(f"/v1/agents/{ref}"), 404, "agent_not_found")
    # Exactly the answer for an agent that does not exist.
    unknown = api.bob.get("/v1/agents/aptest-never-was").json()
    hidden = api.bob.get(f"/v1/agents/{agent['name']}").json()
    assert {k: v for k, v in unknown.items() if k not in ("detail", "instance")} == {
        k: v for k, v in hidden.items() if k not in ("detail", "instance")
    }
    assert api.alice.get(f"/v1/agents/{agent['id']}").json()["status"] == "running"


def test_a_non_admin_cannot_choose_an_owner(api: Api) -> None:
    assert_problem(api.alice.get("/v1/agents", params={"owner": "bob"}), 403, "forbidden")
    assert api.alice.get("/v1/agents", params={"owner": "alice"}).status_code == 200


def test_a_viewer_reads_but_cannot_change(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-viewed", busybox)).json()

    assert [a["id"] for a in api.viewer.get("/v1/agents").json()["items"]] == [agent["id"]]
    assert api.viewer.get(f"/v1/agents/{agent['id']}").status_code == 200
    assert api.viewer.get(f"/v1/agents/{agent['id']}/logs").status_code == 200
    assert_problem(api.viewer.post("/v1/agents", json=body("aptest-v2", busybox)), 403, "forbidden")
    for path in ("stop", "start", "restart"):
        assert_problem(api.viewer.post(f"/v1/agents/{agent['id']}/{path}"), 403, "forbidden")
    assert_problem(api.viewer.delete(f"/v1/agents/{agent['id']}"), 403, "forbidden")
    assert api.alice.get(f"/v1/agents/{agent['id']}").json()["status"] == "running"


def test_admin_sees_every_owner_and_filters_by_owner(api: Api, busybox: str) -> None:
    alices = api.alice.post("/v1/agents", json=body("aptest-a", busybox)).json()
    bobs = api.bob.post("/v1/agents", json=body("aptest-b", busybox)).json()

    everyone = {a["id"] for a in api.admin.get("/v1/agents").json()["items"]}
    assert {alices["id"], bobs["id"]} <= everyone
    only_bob = api.admin.get("/v1/agents", params={"owner": "bob"}).json()["items"]
    assert [a["id"] for a in only_bob] == [bobs["id"]]
    stopped = api.admin.post(f"/v1/agents/{alices['id']}/stop", params={"timeout": 0})
    assert stopped.json()["status"] == "stopped"
    assert api.admin.delete("/v1/agents/aptest-b", params={"owner": "bob"}).status_code == 204


def test_keys_never_appear_in_the_service_log(api: Api, busybox: str) -> None:
    api.alice.post("/v1/agents", json=body("aptest-logged", busybox))
    api.client("wrong-key-that-must-not-be-logged").get("/v1/agents")
    log = api.server.logs()
    for secret in (api.keys.admin, api.keys.alice, "wrong-key-that-must-not-be-logged"):
        assert secret not in log
    assert '"key": "alice-op"' in log
