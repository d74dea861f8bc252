"""The baseline NetworkPolicy of a default-network agent, compared as data (no API server)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from orchestrators import labels as L
from orchestrators.config import KubernetesConfig
from orchestrators.kubernetes.network import build_baseline_policy, denied_blocks

from .test_objects import AGENT_ID, agent_spec, schema_of

CREATED = {"metadata": {"name": "hive-researcher-x", "uid": "u-1"}}


def baseline(settings: KubernetesConfig | None = None) -> dict[str, Any]:
    spec = agent_spec()
    return build_baseline_policy(
        prefix="hive-",
        deployment=CREATED,
        labels=schema_of(spec),
        settings=settings or KubernetesConfig(),
    )


def excepted(policy: dict[str, Any]) -> set[str]:
    (_dns, _owners, everywhere) = policy["spec"]["egress"]
    return {c for peer in everywhere["to"] for c in peer["ipBlock"].get("except", [])}


def reachable(policy: dict[str, Any], address: str) -> bool:
    """Whether an ipBlock rule of the policy lets the agent open a connection to it."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block is None or ip not in ipaddress.ip_network(block["cidr"]):
                continue
            if not any(ip in ipaddress.ip_network(c) for c in block.get("except", [])):
                return True
    return False


def test_the_baseline_selects_the_agent_and_admits_only_its_owner_and_the_platform() -> None:
    policy = baseline()
    assert policy["metadata"]["name"] == f"hive-baseline-{AGENT_ID}"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert policy["metadata"]["labels"][L.KIND] == "network-policy"
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {L.MANAGED_BY: "agent-platform", L.INSTANCE: "hive", L.ID: AGENT_ID}
    }
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    owners_agents = {
        "podSelector": {
            "matchLabels": {L.MANAGED_BY: "agent-platform", L.INSTANCE: "hive", L.OWNER: "sol"}
        }
    }
    platform = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agent-platform"}}
    }
    assert spec["ingress"] == [{"from": [owners_agents, platform]}]
    dns, owners, _ = spec["egress"]
    assert dns == {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    assert owners == {"to": [owners_agents]}


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the node's identity on AKS
        "10.0.0.1",  # the cluster's services
        "10.244.3.7",  # pods (another owner's agents)
        "172.16.0.10",
        "192.168.1.1",
        "100.64.0.5",
        "fd00::1",
        "fe80::1",
    ],
)
def test_the_metadata_endpoint_and_private_ranges_are_not_reachable(address: str) -> None:
    assert not reachable(baseline(), address)


@pytest.mark.parametrize("address", ["1.1.1.1", "20.50.2.1", "2606:4700::1111"])
def test_the_public_internet_is(address: str) -> None:
    assert reachable(baseline(), address)


def test_the_metadata_endpoint_stays_denied_whatever_the_operator_allows() -> None:
    open_vnet = baseline(KubernetesConfig(kube_egress_denied_cidrs=["192.168.0.0/16"]))
    assert not reachable(open_vnet, "169.254.169.254")
    assert reachable(open_vnet, "10.1.2.3")
    assert excepted(open_vnet) == {"169.254.169.254/32", "192.168.0.0/16"}
    # Overlaps are merged: the /32 is inside link-local.
    assert "169.254.169.254/32" not in excepted(baseline())
    assert denied_blocks(()) == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}},
        {"ipBlock": {"cidr": "::/0"}},
    ]


def test_the_platform_namespaces_are_configurable() -> None:
    none = baseline(KubernetesConfig(kube_ingress_namespaces=[]))
    assert len(none["spec"]["ingress"][0]["from"]) == 1
    two = baseline(KubernetesConfig(kube_ingress_namespaces=["agent-platform", "gateway"]))
    assert [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in two["spec"]["ingress"][0]["from"][1:]
    ] == ["agent-platform", "gateway"]
