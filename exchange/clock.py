"""Time, injectable: services take a `Clock` so tests can stand on any date.

Production uses `SystemClock`; there is no setting that replaces it (tests pass their own
clock to `create_app`). Calendar logic uses the Europe/London date of an instant
(`consent.md`), which `london_date` gives.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


class Clock(Protocol):
    """A source of the current instant."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        return datetime.now(UTC)


def london_date(instant: datetime) -> date:
    """The Europe/London calendar date of an instant (BST or GMT as it falls)."""
    return instant.astimezone(LONDON).date()
