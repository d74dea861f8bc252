"""The times engines write (RFC 3339), read in one place for every backend."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["parse_rfc3339"]

_FRACTION = re.compile(r"(\.\d{6})\d+")  # Docker writes nanoseconds; datetime keeps micro


def parse_rfc3339(value: object) -> datetime | None:
    """An engine's time (``Z`` or an offset, up to nanoseconds) as an aware datetime, UTC if
    it names no zone; None for anything that is not such a time."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
