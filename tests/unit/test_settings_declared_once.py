"""Each setting is declared once, and what repeats it elsewhere agrees with it.

``orchestrators.config`` declares the backends' knobs, ``Settings`` inherits them and adds
the HTTP layer's; ``.env.example`` lists every variable with its default, and the clients
(which ship without the server) repeat the few defaults they must agree with.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from agent_platform.backends import build_orchestrator
from agent_platform.settings import Settings
from clients import config as client_config
from orchestrators.config import DockerConfig, EngineConfig, KubernetesConfig
from orchestrators.docker import DockerOrchestrator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / ".env.example").read_text()
# The example's sections after the service's own: what compose and the clients read.
SERVICE_PART, _, REST = EXAMPLE.partition("# --- docker compose ---")
COMPOSE_PART, _, CLIENTS_PART = REST.partition("# --- clients ")
KEY = secrets.token_urlsafe(32)


def variables(text: str) -> dict[str, str]:
    """``NAME=value`` lines, commented out (``#NAME=``: optional, unset by default) or not."""
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE)
    }


def variable_of(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"AGENT_API_{field.upper()}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in {variable_of(field) for field in Settings.model_fields} | {"KUBECONFIG"}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENT_API_KEY", KEY)
    monkeypatch.chdir(ROOT / "tests")  # no .env is read from here
    return monkeypatch


def test_the_example_lists_exactly_the_settings() -> None:
    declared = {variable_of(field) for field in Settings.model_fields}
    assert set(variables(SERVICE_PART)) == declared


def test_the_rest_of_the_example_is_what_compose_and_the_clients_read() -> None:
    compose = (ROOT / "deployment" / "docker-compose.yml").read_text()
    assert set(variables(COMPOSE_PART)) <= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
    assert set(variables(CLIENTS_PART)) == {client_config.ENV_URL}  # the key is listed above


def test_the_example_values_are_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    listed = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^([A-Z][A-Z0-9_]*)=(.*)$", SERVICE_PART, flags=re.MULTILINE)
    }
    for field in Settings.model_fields:
        name = variable_of(field)
        if name == "AGENT_API_KEY" or name not in listed:
            continue  # the key is a placeholder to replace; a commented one is unset
        clean_env.setenv(name, listed[name])
        assert getattr(Settings(), field) == getattr(defaults, field), name
        clean_env.delenv(name)


def test_the_example_leaves_unset_what_is_unset_by_default() -> None:
    unset = {
        variable_of(field)
        for field, info in Settings.model_fields.items()
        if info.default is None and field != "key"
    }
    commented = set(variables(SERVICE_PART)) - set(
        re.findall(r"^([A-Z][A-Z0-9_]*)=", SERVICE_PART, flags=re.MULTILINE)
    )
    assert unset <= commented


def test_a_backend_knob_is_declared_once_and_inherited() -> None:
    backend_fields = set(DockerConfig.model_fields) | set(KubernetesConfig.model_fields)
    assert backend_fields <= set(Settings.model_fields)
    for cls in (DockerConfig, KubernetesConfig):
        own = set(cls.model_fields) - set(EngineConfig.model_fields)
        for field in own:
            assert field not in EngineConfig.model_fields
    # The Docker and the Kubernetes knobs share only what EngineConfig declares.
    shared = set(DockerConfig.model_fields) & set(KubernetesConfig.model_fields)
    assert shared == set(EngineConfig.model_fields)


@pytest.mark.anyio
async def test_the_backend_receives_its_section_whole(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENT_API_STOP_TIMEOUT", "3")
    clean_env.setenv("AGENT_API_AGENT_LOG_MAX_FILES", "7")
    clean_env.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # never called in this test
    settings = Settings()
    backend = build_orchestrator(settings)
    try:
        assert isinstance(backend, DockerOrchestrator)
        section: dict[str, Any] = backend.config.model_dump()
        assert section == {field: getattr(settings, field) for field in DockerConfig.model_fields}
        assert (section["stop_timeout"], section["agent_log_max_files"]) == (3, 7)
        assert section["docker_host"] == "tcp://127.0.0.1:1"
    finally:
        await backend.close()


def test_the_clients_defaults_agree_with_the_servers() -> None:
    server = {field: info.default for field, info in Settings.model_fields.items()}
    stop_grace, default_url = client_config.STOP_GRACE_DEFAULT, client_config.DEFAULT_URL
    # A stop or restart that names no grace gets the server's; the client waits that long.
    assert stop_grace == server["stop_timeout"]
    # A spawn may pull its image: the client waits at least the server's pull deadline.
    spawn_wait = client_config.DEFAULT_TIMEOUT + client_config.SPAWN_EXTRA_TIMEOUT
    assert spawn_wait >= server["pull_timeout"]
    # Any other call is at most a few engine calls: the client outwaits one.
    assert server["engine_timeout"] < client_config.DEFAULT_TIMEOUT
    # The client's default address is the server's default bind.
    assert default_url == f"http://{server['host']}:{server['port']}"


def test_the_deployments_name_only_declared_settings() -> None:
    declared = {variable_of(field) for field in Settings.model_fields}
    manifests = (ROOT / "deployment" / "kubernetes").glob("*.yaml")
    named: set[str] = set()
    for path in manifests:
        for document in yaml.safe_load_all(path.read_text()):
            named |= set(re.findall(r"\b((?:AGENT_API_|ORCHESTRATOR)[A-Z0-9_]*)\b", str(document)))
    compose = (ROOT / "deployment" / "docker-compose.yml").read_text()
    named |= set(re.findall(r"^\s+((?:AGENT_API_|ORCHESTRATOR)[A-Z0-9_]*):", compose, re.M))
    assert named, "the deployments set no setting: the pattern is out of date"
    assert named - {client_config.ENV_URL} <= declared
