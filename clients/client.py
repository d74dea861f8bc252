"""``AgentClient``: the synchronous Python client of agent-api."""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from . import calls
from .base import ClientBase
from .calls import Call
from .config import DEFAULT_TIMEOUT
from .errors import NotFoundError, error_from_transport
from .follow import FollowResume
from .models import (
    Agent,
    AgentEvent,
    AgentPage,
    AgentStats,
    AgentStatus,
    ChangeResult,
    Health,
    NetworkChoice,
    ResourceRequest,
    RestartPolicy,
    RevisionList,
    WaitUntil,
    Whoami,
)
from .retry import RetryPolicy
from .sse import RECONNECTS, EventReader

__all__ = ["AgentClient"]


class AgentClient(ClientBase):
    """Every call of the agent-api contract, over one httpx connection pool.

    ``url`` and ``key`` default to ``AGENT_API_URL`` and ``AGENT_API_KEY``. Errors are
    ``clients.errors.AgentAPIError`` subclasses. Calls that are safe to repeat are retried
    under ``retry`` (see ``clients.retry``). Close it, or use it as a context manager.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, key, timeout=timeout, retry=retry)
        self._http = httpx.Client(transport=transport, **self._client_options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _once(self, request: httpx.Request, call: Call, *, retried: bool) -> httpx.Response:
        try:
            response = self._http.send(request, stream=call.stream)
            if call.stream and not response.is_success:
                try:
                    response.read()
                finally:
                    response.close()
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.url) from exc
        return self._accept(response, call, retried=retried)

    def _send(self, call: Call) -> httpx.Response:
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params,
            json=call.body,
            headers=dict(call.headers),
            timeout=self._timeout_for(call),
        )
        tries = 0

        def once() -> httpx.Response:
            nonlocal tries
            tries += 1
            return self._once(request, call, retried=tries > 1)

        return self._policy_for(call).retrying()(once)

    def _fetch_agent(self, call: Call) -> Agent:
        return calls.parse(Agent, self._send(call))

    def spawn(
        self,
        name: str,
        image: str,
        *,
        command: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        resources: ResourceRequest | Mapping[str, Any] | None = None,
        restart_policy: RestartPolicy | None = None,
        workspace: bool | None = None,
        network: NetworkChoice | None = None,
        ttl_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> Agent:
        """Create and start an agent; options left out take the server's defaults.

        ``network="none"`` cuts the agent off from every network; ``ttl_seconds`` has the
        server stop it after that long (refused by servers that do not support it). Every
        spawn carries an ``Idempotency-Key`` (a random one unless given), so a spawn
        whose answer was lost is retried without making a second agent.
        """
        request = calls.spawn_request(
            name,
            image,
            command=command,
            env=env,
            secrets=secrets,
            labels=labels,
            resources=resources,
            restart_policy=restart_policy,
            workspace=workspace,
            network=network,
            ttl_seconds=ttl_seconds,
        )
        key = idempotency_key or uuid.uuid4().hex
        return self._fetch_agent(calls.spawn_call(request, idempotency_key=key))

    def list_agents(
        self,
        *,
        status: AgentStatus | str | None = None,
        labels: Mapping[str, str] | None = None,
        owner: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AgentPage:
        """One page of agents, oldest first; pass ``next_cursor`` back for the next."""
        call = calls.list_call(
            status=status, labels=labels, owner=owner, limit=limit, cursor=cursor
        )
        return calls.parse(AgentPage, self._send(call))

    def iter_agents(
        self,
        *,
        status: AgentStatus | str | None = None,
        labels: Mapping[str, str] | None = None,
        owner: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Agent]:
        """Every matching agent, fetching pages as needed."""
        cursor: str | None = None
        while True:
            page = self.list_agents(
                status=status, labels=labels, owner=owner, limit=page_size, cursor=cursor
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def get(self, agent: str, *, owner: str | None = None) -> Agent:
        """One agent, by id or name."""
        return self._fetch_agent(calls.get_call(agent, owner=owner))

    def start(self, agent: str, *, owner: str | None = None) -> Agent:
        """Start the agent (nothing to do if it runs)."""
        return self._fetch_agent(calls.start_call(agent, owner=owner))

    def stop(self, agent: str, *, timeout: int | None = None, owner: str | None = None) -> Agent:
        """Stop the agent, killing it after ``timeout`` seconds of grace (server default)."""
        return self._fetch_agent(calls.stop_call(agent, timeout=timeout, owner=owner))

    def restart(self, agent: str, *, timeout: int | None = None, owner: str | None = None) -> Agent:
        """Restart the agent (starts it if stopped). Not retried: it is not idempotent."""
        return self._fetch_agent(calls.restart_call(agent, timeout=timeout, owner=owner))

    def renew(self, agent: str, *, ttl_seconds: int, owner: str | None = None) -> Agent:
        """Move the agent's deadline to ``ttl_seconds`` from now (agents spawned with a TTL).

        An agent whose deadline passed refuses ``start`` and ``restart`` (``ConflictError``
        ``agent_expired``) until it is renewed.
        """
        return self._fetch_agent(calls.renew_call(agent, ttl_seconds=ttl_seconds, owner=owner))

    def delete(self, agent: str, *, owner: str | None = None, missing_ok: bool = False) -> None:
        """Remove the agent and what it owns.

        A 404 after a retry counts as done (the lost attempt removed it); a 404 on the
        first try raises ``NotFoundError`` unless ``missing_ok``.
        """
        call = calls.delete_call(agent, owner=owner)
        try:
            self._send(call).close()
        except NotFoundError:
            if not missing_ok:
                raise

    def logs(
        self,
        agent: str,
        *,
        tail: int | None = None,
        since: str | datetime | None = None,
        timestamps: bool = False,
        follow: bool = False,
        owner: str | None = None,
    ) -> Generator[str, None, None]:
        """The agent's output, line by line, as it arrives.

        With ``follow`` the iterator ends when the agent stops; leave early by closing it
        (``contextlib.closing``) or by breaking out of the loop. When the server ends a
        follow at its ceiling, the iterator reconnects from the last line it gave, so the
        stream goes on unbroken. The request is made when iteration starts; errors are
        raised from there.
        """
        if follow:
            return self._follow(
                FollowResume(agent, tail=tail, since=since, timestamps=timestamps, owner=owner)
            )
        return self._lines(
            calls.logs_call(
                agent, tail=tail, since=since, timestamps=timestamps, follow=follow, owner=owner
            )
        )

    def _lines(self, call: Call) -> Generator[str, None, None]:
        response = self._send(call)
        try:
            yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.url) from exc
        finally:
            response.close()

    def _follow(self, resume: FollowResume) -> Generator[str, None, None]:
        while True:
            started = time.monotonic()
            response = self._send(resume.call())
            try:
                for line in response.iter_lines():
                    shown = resume.accept(line)
                    if shown is not None:
                        yield shown
            except httpx.TransportError as exc:
                raise error_from_transport(exc, self.url) from exc
            finally:
                response.close()
            if not resume.ended_at_ceiling(response.headers, time.monotonic() - started):
                return

    def wait(
        self,
        agent: str,
        *,
        until: WaitUntil = "exited",
        timeout: float = 30,
        owner: str | None = None,
    ) -> Agent:
        """The agent once it is ``running``, has ``exited`` (exited or failed: see its
        ``exit_code``) or is ``stopped`` (not running, for any reason).

        ``WaitTimeoutError`` after ``timeout`` seconds without it; wait again to go on.
        """
        return self._fetch_agent(calls.wait_call(agent, until=until, timeout=timeout, owner=owner))

    def events(
        self,
        *,
        agent: str | None = None,
        types: list[str] | None = None,
        owner: str | None = None,
        last_event_id: str | None = None,
    ) -> Generator[AgentEvent, None, None]:
        """The agents' lifecycle events as they happen, without end; close it to stop.

        The stream is open when this returns (a refusal raises here), so nothing that
        happens afterwards is missed. ``last_event_id`` resumes after an event seen before
        (an ``AgentEvent.id``). A dropped stream is resumed after the last event given, so
        none is lost or repeated; when the server no longer has them, a ``reset`` event
        comes instead: list the agents again.
        """
        reader = EventReader(
            agent=agent, types=types or (), owner=owner, last_event_id=last_event_id
        )
        return self._events(reader, self._send(reader.call()))

    def _events(
        self, reader: EventReader, response: httpx.Response
    ) -> Generator[AgentEvent, None, None]:
        failures = 0
        while True:
            try:
                for line in response.iter_lines():
                    event = reader.feed(line)
                    if event is not None:
                        failures = 0
                        yield event
            except httpx.TransportError as exc:
                failures += 1
                if failures >= RECONNECTS:
                    raise error_from_transport(exc, self.url) from exc
            finally:
                response.close()
            response = self._send(reader.call())

    def update(
        self,
        agent: str,
        *,
        image: str | None = None,
        command: list[str] | None = None,
        env: Mapping[str, str | None] | None = None,
        secrets: Mapping[str, str | None] | None = None,
        labels: Mapping[str, str | None] | None = None,
        resources: ResourceRequest | Mapping[str, Any] | None = None,
        restart_policy: RestartPolicy | None = None,
        ttl_seconds: int | None = None,
        if_match: int | str | None = None,
        owner: str | None = None,
    ) -> ChangeResult:
        """Change the agent: only what is given changes; in ``env``, ``labels`` and
        ``secrets`` None removes a name. With ``if_match`` (a revision, or the ETag of a
        read) a change made since raises ``PreconditionFailedError``. The answer says
        whether the agent's process was restarted."""
        change = calls.change_request(
            image=image,
            command=command,
            env=env,
            secrets=secrets,
            labels=labels,
            resources=resources,
            restart_policy=restart_policy,
            ttl_seconds=ttl_seconds,
        )
        call = calls.update_call(agent, change, if_match=if_match, owner=owner)
        return calls.parse(ChangeResult, self._send(call))

    def revisions(self, agent: str, *, owner: str | None = None) -> RevisionList:
        """The agent's revisions, newest first (secret names, never values)."""
        return calls.parse(RevisionList, self._send(calls.revisions_call(agent, owner=owner)))

    def rollback(
        self,
        agent: str,
        *,
        revision: int | None = None,
        if_match: int | str | None = None,
        owner: str | None = None,
    ) -> ChangeResult:
        """Back to the previous revision's spec (or ``revision``'s), as a new revision."""
        call = calls.rollback_call(agent, revision=revision, if_match=if_match, owner=owner)
        return calls.parse(ChangeResult, self._send(call))

    def stats(self, agent: str, *, owner: str | None = None) -> AgentStats:
        """One sample of the agent's CPU, memory, pids, network and block I/O."""
        return calls.parse(AgentStats, self._send(calls.stats_call(agent, owner=owner)))

    def whoami(self) -> Whoami:
        """``/v1/whoami``: the key's name, owner and role (what it may see and do)."""
        return calls.parse(Whoami, self._send(calls.whoami_call()))

    def health(self) -> Health:
        """``/healthz``: the server process answers (no key needed)."""
        return calls.parse(Health, self._send(calls.health_call()))

    def ready(self) -> Health:
        """``/readyz``: the server reaches its engine; ``ServerUnavailableError`` if not."""
        return calls.parse(Health, self._send(calls.ready_call()))
