"""Prometheus metrics of one app instance (its own registry, so instances never collide).

Every label value comes from a fixed set, so no request can add a label set: the method
from ``METHODS`` (anything else is ``other``), the route as its template or
``unmatched``, the status from ``STATUSES`` (anything else is ``other``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from orchestrators.viewcache import ViewCache

__all__ = ["METHODS", "OTHER", "STATUSES", "UNMATCHED", "Metrics", "method_label", "status_label"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUSES = frozenset(
    {
        200,
        201,
        204,
        304,
        400,
        401,
        403,
        404,
        405,
        408,
        409,
        412,
        413,
        415,
        422,
        429,
        500,
        501,
        502,
        503,
        504,
    }
)
UNMATCHED = "unmatched"
OTHER = "other"


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER


def status_label(status: int) -> str:
    return str(status) if status in STATUSES else OTHER


class Metrics:
    def __init__(self, view_cache: ViewCache[Any] | None = None) -> None:
        self.registry = CollectorRegistry()
        if view_cache is not None:
            cached = Gauge(
                "agent_api_view_cache_bytes",
                "Estimated bytes of the built agent views kept in memory",
                registry=self.registry,
            )
            cached.set_function(lambda: view_cache.bytes)
            budget = Gauge(
                "agent_api_view_cache_max_bytes",
                "Budget of the built agent views (AGENT_API_AGENT_CACHE_BYTES)",
                registry=self.registry,
            )
            budget.set_function(lambda: view_cache.max_bytes)
        self.requests = Counter(
            "agent_api_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agent_api_request_duration_seconds",
            "Time to answer an HTTP request (to the end of the body)",
            ["method", "route"],
            registry=self.registry,
        )
        # Each label set's two series, looked up once (prometheus_client's ``labels`` costs
        # more than the count itself).
        self._series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self.keys_file_valid = Gauge(
            "agent_api_keys_file_valid",
            "1 when the keys file was read and grants its keys (or none is configured), "
            "0 when it is broken or gone and grants nothing",
            registry=self.registry,
        )
        self.keys_file_valid.set(1)
        self.agents = Gauge(
            "agent_api_agents",
            "Agents by status and owner, from the watch-fed model (set at each scrape)",
            ["status", "owner"],
            registry=self.registry,
        )
        self.events = Counter(
            "agent_api_events_total",
            "Lifecycle events this replica derived from the engine's watch, by type",
            ["type"],
            registry=self.registry,
        )
        self.watch_reconnects = Counter(
            "agent_api_watch_reconnects_total",
            "Times the engine's watch broke and was started again",
            registry=self.registry,
        )
        self.ttl_stops = Counter(
            "agent_api_ttl_stops_total",
            "Agents stopped because their TTL passed (as observed)",
            registry=self.registry,
        )
        self.spawn_to_running = Histogram(
            "agent_api_spawn_to_running_seconds",
            "From an agent's creation to its first observed start",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.watching = Gauge(
            "agent_api_watch_live",
            "1 while the engine's watch feeds the read model, 0 while reads go to the engine",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request; ``route`` must be a route template or ``unmatched``."""
        labels = (method_label(method), route, status_label(status))
        series = self._series.get(labels)
        if series is None:  # once per label set, and the label sets are fixed (see above)
            series = (self.requests.labels(*labels), self.latency.labels(*labels[:2]))
            self._series[labels] = series
        series[0].inc()
        series[1].observe(seconds)

    def refused(self, status: int) -> None:
        """Count an answer the HTTP protocol gave before any request existed (``connguard``)."""
        self.observe(OTHER, UNMATCHED, status, 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
