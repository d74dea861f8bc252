"""The baseline NetworkPolicy of an agent on the default network; pure functions, no I/O.

Every agent spawned with ``"network": "default"`` gets one NetworkPolicy of its own
(``<prefix>baseline-<id>``, owned by its Deployment) that selects its pod only:

- ingress only from the same owner's agents (of this deployment of the platform) and from
  the pods of the namespaces the operator lists (the platform's own, by default): another
  owner's agent cannot open a connection to it;
- egress to the cluster's DNS (kube-dns in kube-system, port 53), to the same owner's agents,
  and to every address except the denied ranges: the cloud metadata endpoint
  (169.254.169.254, always) and, by default, the private and link-local ranges, so that an
  agent reaches the public internet but not the node's identity, the VNet, the cluster's
  services or another owner's agents.

NetworkPolicies allow (they never deny): a pod selected by several policies gets the union.
So an agent with ``"network": "none"`` gets the deny-all policy only, never this one.

A NetworkPolicy is only data until a policy engine enforces it (on AKS: Azure NPM, Calico
or Cilium); the API server stores it either way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .. import labels as L
from ..config import KubernetesConfig
from .objects import Manifest, network_policy

__all__ = [
    "DNS_NAMESPACE",
    "DNS_POD_LABELS",
    "METADATA_ENDPOINT",
    "NAMESPACE_NAME_LABEL",
    "baseline_policy_name",
    "build_baseline_policy",
    "denied_blocks",
]

# The instance metadata service of Azure, AWS and GCP: it hands out the node's tokens.
METADATA_ENDPOINT = "169.254.169.254/32"
# The label every namespace carries with its own name (Kubernetes >= 1.21).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS: Mapping[str, str] = {"k8s-app": "kube-dns"}  # CoreDNS on AKS and kubeadm
_EVERYWHERE = {4: "0.0.0.0/0", 6: "::/0"}


def baseline_policy_name(prefix: str, agent_id: str) -> str:
    return f"{prefix}baseline-{agent_id}"


def denied_blocks(denied: Iterable[str]) -> list[dict[str, Any]]:
    """Peers for "everywhere but ``denied``": one ipBlock per address family, the metadata
    endpoint always among the exceptions, overlapping ranges merged."""
    networks = [ipaddress.ip_network(c, strict=True) for c in (*denied, METADATA_ENDPOINT)]
    blocks: list[dict[str, Any]] = []
    for family, everywhere in _EVERYWHERE.items():
        same = [n for n in networks if n.version == family]
        collapsed = ipaddress.collapse_addresses(same)  # type: ignore[type-var]
        block: dict[str, Any] = {"cidr": everywhere}
        excepted = sorted(str(n) for n in collapsed)
        if excepted:
            block["except"] = excepted
        blocks.append({"ipBlock": block})
    return blocks


def _owners_agents(labels: Mapping[str, str]) -> dict[str, Any]:
    """The pods of this owner's agents (of this deployment of the platform). The owner
    label is the platform's own: a user label lives under another prefix."""
    return {
        "podSelector": {
            "matchLabels": {
                L.MANAGED_BY: L.MANAGED_BY_VALUE,
                L.INSTANCE: labels[L.INSTANCE],
                L.OWNER: labels[L.OWNER],
            }
        }
    }


def build_baseline_policy(
    *,
    prefix: str,
    deployment: Manifest,
    labels: Mapping[str, str],
    settings: KubernetesConfig,
) -> Manifest:
    """The baseline policy of one agent on the default network (see the module)."""
    sources: list[dict[str, Any]] = [_owners_agents(labels)]
    sources += [_namespace(name) for name in settings.kube_ingress_namespaces]
    dns: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}},
        "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
    }
    return network_policy(
        baseline_policy_name(prefix, labels[L.ID]),
        deployment,
        labels,
        ingress=[{"from": sources}],
        egress=[
            {"to": [dns], "ports": _dns_ports()},
            {"to": [_owners_agents(labels)]},
            {"to": denied_blocks(settings.kube_egress_denied_cidrs)},
        ],
    )


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _dns_ports() -> Sequence[dict[str, Any]]:
    return [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
