"""What a change or a rollback sends to the API server, and the revisions it keeps: pure.

A change is one JSON merge patch of the agent's Deployment carrying the ``resourceVersion``
it was planned from, so the API server applies it only if nothing changed the Deployment
meanwhile (another writer gets 409, which the backend answers as ``RevisionMismatch``).

The patch sets the Deployment's labels and annotations (the spec, the revision, the
history, user labels: no pod is touched) and, only when the pod would be different, the
whole pod template, which rolls out a new pod (``Recreate``: the old one goes first). The
template then carries the new revision as an annotation: a secret rotation changes nothing
else in the template, and the new pod is told from the old one by it. Kubernetes before
1.33 cannot resize a running pod, so a change of resources is a rollout too.

The history is an annotation of the Deployment: the newest ``KEPT_REVISIONS`` revisions,
newest first, each with the spec at that revision (secret names, never values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr, TypeAdapter

from .. import labels as L
from ..changes import KEPT_REVISIONS, spawned_revision
from ..models import Revision, StoredSpec
from .objects import Manifest, encode_secrets, split_metadata

__all__ = [
    "CHANGING",
    "change_patch",
    "claim_patch",
    "history_of",
    "pod_revision",
    "recorded",
    "release_patch",
    "secret_data_patch",
    "undo_patch",
]

# On the Deployment while a change that rotates secrets is under way (between the claim of
# the revision and the patch that makes it current): the time it started.
CHANGING = L.CHANGING
_HISTORY = TypeAdapter(list[Revision])


def history_of(schema: Mapping[str, str], created_at: datetime) -> list[Revision]:
    """The agent's kept revisions, newest first; an agent never changed has its spawn as
    revision 1."""
    text = schema.get(L.REVISIONS)
    if text:
        try:
            return _HISTORY.validate_json(text)
        except ValueError:
            pass  # not ours to trust: start again from the current spec
    current = StoredSpec.model_validate_json(schema[L.SPEC])
    return [spawned_revision(L.revision_of(schema), created_at, current)]


def recorded(history: Sequence[Revision], newest: Revision) -> str:
    """The history annotation with ``newest`` first, bounded to ``KEPT_REVISIONS``."""
    kept = [newest, *history][:KEPT_REVISIONS]
    return _HISTORY.dump_json(kept).decode()


# What a change (or its undoing) may take away: user labels, a TTL, the revision and its
# history (an agent at revision 1 has neither), the mark of a change under way. Any other
# key (another feature's, anyone else's) is left as it is.
_REMOVABLE = frozenset({L.EXPIRES_AT, L.REVISION, L.REVISIONS, CHANGING})


def _removable(mapping: Mapping[str, Any] | None) -> set[str]:
    return {k for k in (mapping or {}) if k.startswith(L.USER_PREFIX) or k in _REMOVABLE}


def change_patch(
    deployment: Manifest,
    schema: Mapping[str, str],
    template: Manifest | None,
) -> Manifest:
    """The conditional merge patch that makes ``deployment`` carry ``schema`` (the label
    schema after the change) and, when given, the pod ``template``; the platform's keys
    that ``schema`` does not have (user labels, the TTL, the revision and its history, the
    change mark) are removed; any other key is left alone."""
    metadata = deployment.get("metadata") or {}
    labels, annotations = split_metadata(schema)
    label_patch: dict[str, str | None] = {k: None for k in _removable(metadata.get("labels"))}
    label_patch.update(labels)
    annotation_patch: dict[str, str | None] = {
        k: None for k in _removable(metadata.get("annotations"))
    }
    annotation_patch.update(annotations)
    patch: Manifest = {
        "metadata": {
            "resourceVersion": metadata["resourceVersion"],
            "labels": label_patch,
            "annotations": annotation_patch,
        }
    }
    if template is not None:
        patch["spec"] = {"template": template}
    return patch


def undo_patch(patched: Manifest, schema: Mapping[str, str], template: Manifest) -> Manifest:
    """Back from ``patched`` to the labels ``schema`` and the pod ``template`` it had before
    a change, whatever moved since (the change's own answer decides it)."""
    metadata = dict(template.get("metadata") or {})
    annotations: dict[str, str | None] = dict(metadata.get("annotations") or {})
    # The change's marker goes too: its pods must not pass for those of a later revision.
    annotations.setdefault(L.REVISION, None)
    patch = change_patch(
        patched, schema, {**template, "metadata": {**metadata, "annotations": annotations}}
    )
    del patch["metadata"]["resourceVersion"]
    return patch


def claim_patch(deployment: Manifest, stamp: str) -> Manifest:
    """Marks ``deployment`` as being changed, only if it is still the version read."""
    return {
        "metadata": {
            "resourceVersion": deployment["metadata"]["resourceVersion"],
            "annotations": {CHANGING: stamp},
        }
    }


def release_patch(deployment: Manifest) -> Manifest:
    """Drops an abandoned claim, only if nothing moved since it was read."""
    return {
        "metadata": {
            "resourceVersion": deployment["metadata"]["resourceVersion"],
            "annotations": {CHANGING: None},
        }
    }


def pod_revision(template: Manifest, revision: int) -> Manifest:
    """``template`` marked with the revision that rolls it out."""
    metadata = dict(template.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), L.REVISION: str(revision)}
    return {**template, "metadata": metadata}


def secret_data_patch(
    values: Mapping[str, SecretStr], removed: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """A merge patch of the agent's Secret: values set or replaced, names removed."""
    data: dict[str, str | None] = {name: None for name in removed}
    data.update(encode_secrets(values))
    return {"data": data}
