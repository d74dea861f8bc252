"""Times and values as people read them (``5 minutes ago``), shared by the CLI and the tool."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ago", "human_bytes", "human_duration"]


def human_duration(seconds: float) -> str:
    """A duration the way ``docker ps`` words it: ``About a minute``, ``3 hours``, ``2 weeks``."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = round(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def ago(when: datetime, *, now: datetime | None = None) -> str:
    """``when`` relative to ``now`` (default: the current time), e.g. ``2 minutes ago``."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    elapsed = ((now or datetime.now(UTC)) - aware).total_seconds()
    return f"{human_duration(max(0.0, elapsed))} ago"


def human_bytes(count: float | None) -> str:
    """A size the way ``docker stats`` shows it: ``12.5MiB``; ``-`` when unknown."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}TiB"  # pragma: no cover - the loop always returns
