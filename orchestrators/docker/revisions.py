"""An agent's revisions on Docker, where a container's labels can never change.

Each revision is recorded as an empty named volume (no process, no space), like the TTL
leases, named after the agent and the revision number and labelled with the spec at that
revision (secret *names* only), what changed, and how: ``live`` (the engine changed the
running container in place, so its own labels still say the revision before) or
``replace`` (a new container carries the revision in its labels).

The record is also the lock of a change: the engine creates a volume name once, and a
second create of the same name answers the first volume, labels and all. A writer that
finds another writer's claim token on "its" revision lost the race. A ``replace`` record
newer than every container of its agent is a change in flight; the sweep completes it
(the new container exists) or undoes it (it does not) once older than the grace period.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import docker.errors
from docker import APIClient

from .. import labels as L
from ..models import Revision, StoredSpec

__all__ = ["AgentRevisions", "Record", "claim", "forget", "read_records"]

LIVE, REPLACE = "live", "replace"


@dataclass(frozen=True, slots=True)
class Record:
    """One revision record, read back from its volume."""

    volume: str
    agent_id: str
    owner: str
    number: int
    written: datetime
    spec_text: str
    changes: tuple[str, ...]
    mode: str
    was_running: bool
    claim: str

    @property
    def spec(self) -> StoredSpec:
        return StoredSpec.model_validate_json(self.spec_text)

    def public(self) -> Revision:
        return Revision(
            number=self.number,
            created_at=self.written,
            changes=list(self.changes),
            restarted=self.mode == REPLACE and self.was_running and bool(self.changes),
            spec=self.spec,
        )


@dataclass(frozen=True, slots=True)
class AgentRevisions:
    """What the records say of one agent next to the revision its container was made at."""

    container_revision: int
    records: Sequence[Record]  # newest first

    def committed(self, record: Record) -> bool:
        return record.mode == LIVE or record.number <= self.container_revision

    def kept(self) -> list[Revision]:
        """The committed revisions, newest first (none: never changed)."""
        return [r.public() for r in self.records if self.committed(r)]

    @property
    def pending(self) -> Record | None:
        """A replacement claimed but not (yet) made: a change in flight."""
        return next(
            (r for r in self.records if r.mode == REPLACE and r.number > self.container_revision),
            None,
        )

    @property
    def in_place(self) -> Record | None:
        """The newest change made in place since the container was made, if any."""
        return next(
            (r for r in self.records if r.mode == LIVE and r.number > self.container_revision),
            None,
        )

    @property
    def number(self) -> int:
        """The agent's current revision."""
        done = [r.number for r in self.records if self.committed(r)]
        return max([self.container_revision, *done])

    def spec_text(self, label_spec: str) -> str:
        """The agent's spec now: the newest in-place change's, else its container's."""
        live = self.in_place
        return live.spec_text if live is not None else label_spec


def _record(volume: dict[str, object]) -> Record | None:
    labels = volume.get("Labels") or {}
    assert isinstance(labels, dict)
    try:
        return Record(
            volume=str(volume["Name"]),
            agent_id=labels[L.ID],
            owner=labels[L.OWNER],
            number=int(labels[L.REVISION]),
            written=L.parse_moment(labels[L.CREATED_AT]),
            spec_text=labels[L.SPEC],
            changes=tuple(c for c in labels.get(L.CHANGES, "").split(",") if c),
            mode=labels.get(L.CHANGE_MODE, REPLACE),
            was_running=labels.get(L.WAS_RUNNING) == "true",
            claim=labels.get(L.CLAIM, ""),
        )
    except (KeyError, ValueError):
        return None


def _terms(instance: str) -> list[str]:
    return [
        f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}",
        f"{L.INSTANCE}={instance}",
        f"{L.KIND}={L.Kind.REVISION.value}",
    ]


def read_records(
    api: APIClient, instance: str, agent_id: str | None = None
) -> dict[str, list[Record]]:
    """The revision records of every agent (of one if ``agent_id``), newest first. One call."""
    terms = _terms(instance)
    if agent_id is not None:
        terms.append(f"{L.ID}={agent_id}")
    answer = api.volumes(filters={"label": terms}) or {}
    found: dict[str, list[Record]] = {}
    for volume in answer.get("Volumes") or []:
        if (record := _record(volume)) is not None:
            found.setdefault(record.agent_id, []).append(record)
    for records in found.values():
        records.sort(key=lambda r: r.number, reverse=True)
    return found


def claim(
    api: APIClient,
    *,
    prefix: str,
    instance: str,
    agent_id: str,
    owner: str,
    number: int,
    spec: StoredSpec,
    changes: tuple[str, ...],
    mode: str,
    was_running: bool,
    now: datetime,
) -> Record | None:
    """Record revision ``number``; None when another writer recorded it first."""
    token = uuid.uuid4().hex
    name = f"{prefix}rev-{agent_id}-{number:06d}"
    answer = api.create_volume(
        name,
        labels=L.revision_labels(
            instance=instance,
            agent_id=agent_id,
            owner=owner,
            number=number,
            written=now,
            spec=spec,
            changes=changes,
            mode=mode,
            was_running=was_running,
            claim=token,
        ),
    )
    record = _record(answer)
    return record if record is not None and record.claim == token else None


def forget(api: APIClient, records: Iterable[Record]) -> None:
    """Remove records (an undone change, revisions past the number kept)."""
    for record in records:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            api.remove_volume(record.volume, force=True)
