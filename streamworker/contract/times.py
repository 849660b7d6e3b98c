"""How the contract writes and reads timestamps: UTC, ISO 8601 with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z` suffix."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The inverse of `iso` (for events read back from the log or the topic)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
