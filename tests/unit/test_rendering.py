"""The bodies the read model renders once are the bodies FastAPI would have rendered."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent_platform.readmodel import ReadModel
from agent_platform.rendering import render, render_page
from agent_platform.schemas import AgentList
from orchestrators.models import Agent, AgentStatus, Resources


def _agent(index: int, status: AgentStatus = AgentStatus.RUNNING) -> Agent:
    return Agent(
        id=f"{index:032x}",
        name=f"worker-{index}",
        owner="alice",
        image="img:1",
        status=status,
        detail='said "no" \u00e9\u2603' if status is AgentStatus.FAILED else None,
        exit_code=1 if status is AgentStatus.FAILED else None,
        created_at=datetime(2026, 12, 6, 9, 0, index, tzinfo=UTC),
        labels={"team": 'a"b\\c</script>', "emoji": "\u2603"},
        env={"MODE": "x"},
        secret_names=["token"],
        resources=Resources(cpus=0.5, memory_mb=64, pids=16),
        restart_policy="no",
        workspace=True,
        network="default",
        command=["sleep", "600"],
        orchestrator="docker",
    )


def _served() -> TestClient:
    app = FastAPI()
    agents = [_agent(0), _agent(1, AgentStatus.FAILED)]

    @app.get("/one", response_model=Agent)
    async def one() -> Agent:
        return agents[1]

    @app.get("/page", response_model=AgentList)
    async def page(cursor: str | None = None) -> AgentList:
        return AgentList(items=agents, next_cursor=cursor)

    return TestClient(app)


def test_an_agent_renders_as_fastapi_serves_it() -> None:
    with _served() as client:
        assert render(_agent(1, AgentStatus.FAILED)) == client.get("/one").content


def test_a_page_renders_as_fastapi_serves_it() -> None:
    bodies = [render(_agent(0)), render(_agent(1, AgentStatus.FAILED))]
    with _served() as client:
        assert render_page(bodies, None) == client.get("/page").content
        served = client.get("/page", params={"cursor": 'c"\u00e9'}).content
        assert render_page(bodies, 'c"\u00e9') == served
    assert render_page([], None) == AgentList(items=[], next_cursor=None).model_dump_json().encode()


def test_the_model_renders_an_agent_once_and_again_when_it_changes() -> None:
    model = ReadModel()
    running = _agent(0)
    model.rebuild([running], taken=datetime(2026, 12, 6, 9, tzinfo=UTC))
    first = model.rendered(running)
    assert model.rendered(running) is first
    stopped = _agent(0, AgentStatus.STOPPED)
    model.put(stopped)
    assert model.rendered(model.get(running.id, owner="alice")) == render(stopped)
    assert model.rendered(running) == first  # an answer read before the change still renders
    model.drop(running.id)
    assert model.rendered(stopped) == render(stopped)  # not held any more: rendered anew
