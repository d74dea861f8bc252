"""Parse the ``since`` query parameter of the logs route."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .problems import ProblemError

__all__ = ["SINCE_PATTERN", "parse_since"]

_RELATIVE = re.compile(r"^(\d{1,9})([smhd])$")
# What the parser accepts, for the OpenAPI document; a time that fits is still checked.
SINCE_PATTERN = (
    r"^(\d{1,9}[smhd]|\d{1,12}(\.\d{1,9})?|"
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?)$"
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_since(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """A moment from an RFC 3339 time, Unix seconds, or a duration back from now (``10m``)."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    try:
        if match := _RELATIVE.match(value):
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return max(now - delta, _EPOCH) if delta < now - _EPOCH else _EPOCH
        if re.fullmatch(r"\d{1,12}(\.\d{1,9})?", value):
            return datetime.fromtimestamp(float(value), UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        raise ProblemError(
            422,
            "validation_error",
            "since must be an RFC 3339 time, Unix seconds, or a duration such as 10m",
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
