"""Prometheus metrics of one app instance (its own registry, so instances never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.keys_file_valid = Gauge(
            "agent_api_keys_file_valid",
            "1 when the keys file was read and grants its keys (or none is configured), "
            "0 when it is broken or gone and grants nothing",
            registry=self.registry,
        )
        self.keys_file_valid.set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
