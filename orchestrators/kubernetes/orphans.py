"""Objects an interrupted spawn or delete can leave behind on Kubernetes, found and removed.

An agent's Secret, claim and NetworkPolicies carry an owner reference to its Deployment, so
the garbage collector removes them with it; this sweep catches what it cannot: claims and
policies of this instance whose agent is gone, once older than a grace period (younger ones
may belong to a spawn in flight, here or in another replica). Secrets are never listed:
that would read every value in the namespace, and the Role does not allow it.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime, timedelta

from .. import labels as L
from .api import KubeApi
from .objects import created_at

__all__ = ["remove_orphans"]


def remove_orphans(
    kube: KubeApi,
    *,
    namespace: str,
    instance: str,
    live: Set[str],
    now: datetime,
    grace: timedelta,
) -> list[str]:
    """Remove this instance's claims and policies whose agent is not in ``live``; their names."""
    core, networking = kube.core, kube.networking
    kinds = [
        (
            core.list_namespaced_persistent_volume_claim,
            core.delete_namespaced_persistent_volume_claim,
        ),
        (networking.list_namespaced_network_policy, networking.delete_namespaced_network_policy),
    ]
    terms = {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: instance}
    removed: list[str] = []
    for lister, deleter in kinds:
        for obj in kube.list_items(lister, namespace, terms):
            labels = obj["metadata"].get("labels") or {}
            created = created_at(obj)
            if labels.get(L.ID) in live or created is None or now - created < grace:
                continue
            name = str(obj["metadata"]["name"])
            if kube.delete(deleter, name, namespace):
                removed.append(name)
    return removed
