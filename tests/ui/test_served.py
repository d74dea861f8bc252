"""How ``/ui`` is served (strict headers, only its own files) and ``/v1/whoami``."""

from __future__ import annotations

import re

from ..api.helpers import assert_problem
from ..conftest import Api

ASSET = re.compile(r'(?:src|href)="(/ui/[^"]+)"')
IMPORT = re.compile(r'from "\./([a-z]+\.js)"')


def test_the_page_and_its_assets_carry_a_strict_policy_and_report_their_weight(api: Api) -> None:
    page = api.anonymous.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    paths = set(ASSET.findall(page.text))
    assert {"/ui/app.css", "/ui/main.js"} <= paths
    pending, weight = sorted(paths), len(page.content)
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = api.anonymous.get(path)
        assert response.status_code == 200, path
        weight += len(response.content)
        if path.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript")
            assert "innerHTML" not in response.text
            assert "eval(" not in response.text
            pending += [f"/ui/{name}" for name in IMPORT.findall(response.text)]
    for response in (page, api.anonymous.get("/ui/main.js")):
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    print(f"\ndashboard page weight: {weight} bytes in {len(seen) + 1} files")


def test_only_the_shipped_files_are_served(api: Api) -> None:
    for path in ("/ui/nothing.js", "/ui/..%2fapp.py", "/ui/%2e%2e", "/ui/__init__.py"):
        assert api.anonymous.get(path).status_code == 404, path
    assert_problem(api.anonymous.get("/ui/nothing.js"), 404, "not_found")


def test_whoami_names_the_key_owner_and_role_never_the_key(api: Api) -> None:
    cases = [
        (api.admin, api.keys.admin, {"key_name": "admin", "role": "admin"}),
        (api.alice, api.keys.alice, {"key_name": "alice-op", "owner": "alice", "role": "operator"}),
        (api.viewer, api.keys.alice_viewer, {"owner": "alice", "role": "viewer"}),
    ]
    for client, key, expected in cases:
        response = client.get("/v1/whoami")
        assert response.status_code == 200
        assert expected.items() <= response.json().items()
        assert key not in response.text
    assert_problem(api.anonymous.get("/v1/whoami"), 401, "unauthorized")
    assert_problem(api.client("not-a-key").get("/v1/whoami"), 401, "unauthorized")
