"""Parse the ``since`` query parameter of the logs route."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .problems import ProblemError

__all__ = ["parse_since"]

_RELATIVE = re.compile(r"^(\d{1,9})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """A moment from an RFC 3339 time, Unix seconds, or a duration back from now (``10m``)."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    if match := _RELATIVE.match(value):
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if re.fullmatch(r"\d{1,12}(\.\d{1,9})?", value):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProblemError(
            422,
            "validation_error",
            "since must be an RFC 3339 time, Unix seconds, or a duration such as 10m",
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
