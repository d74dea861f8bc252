"""Type aliases the orchestrators package shares, written once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["JSON", "T", "JSONView"]

T = TypeVar("T")
#: a JSON object as the engine sends it or receives it (manifests, list entries, inspects)
JSON = dict[str, Any]
#: a JSON object only read
JSONView = Mapping[str, Any]
