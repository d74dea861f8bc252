"""Which registry an image reference pulls from, and whether that registry is private.

A pull makes the engine connect to the registry named in the reference. A caller who may
spawn must not be able to make the engine connect to the engine host's loopback, to the
private network it sits in, or to link-local metadata services: a reference whose registry
is such an address (literally, ``localhost``, or a name that resolves to one) is refused
unless the operator allows private registries.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["is_private_address", "private_registry_address", "registry_host"]

_DEFAULT_REGISTRY = "docker.io"


def registry_host(image: str) -> str:
    """The registry host of ``image`` (without port), as Docker reads a reference: the first
    path component is a registry if it has a dot or a colon or is ``localhost``."""
    first, sep, _ = image.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        return _DEFAULT_REGISTRY
    if first.startswith("["):  # [::1]:5000
        return first[1:].partition("]")[0]
    host, _, port = first.rpartition(":")
    return host if host and port.isdigit() else first


def is_private_address(address: str) -> bool:
    """True for loopback, private, link-local, shared, unspecified or reserved addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_multicast
        or ip in ipaddress.ip_network("100.64.0.0/10")
    )


def private_registry_address(image: str, *, resolve: bool = True) -> str | None:
    """The private address ``image``'s registry is or resolves to, else None.

    ``localhost`` counts as loopback without a lookup. A name that does not resolve here is
    not refused (the pull will fail on its own)."""
    host = registry_host(image)
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return host
    if is_private_address(host):
        return host
    try:
        ipaddress.ip_address(host)
        return None  # a public address literal
    except ValueError:
        pass
    if not resolve or host == _DEFAULT_REGISTRY:
        return None
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for answer in answers:
        address = str(answer[4][0])
        if is_private_address(address):
            return address
    return None
