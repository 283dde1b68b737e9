"""Times as the API server and the local backend's state files write them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 time, or None for anything else (missing, empty, malformed)."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def now() -> datetime:
    return datetime.now(UTC)


def log_stamp(moment: datetime) -> str:
    """An RFC 3339 timestamp with nanoseconds, as a CRI log line starts: 2026-01-01T00:00:00.000000000Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"
