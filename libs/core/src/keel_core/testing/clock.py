"""A clock a test moves by hand, so expiry, deadlines and ages are exact and nothing sleeps."""

from __future__ import annotations

from datetime import UTC, datetime


class FakeClock:
    """Seconds since the epoch (``clock()``, as ``time.time`` answers) or an aware UTC
    datetime (``clock.utcnow()``): code under test takes whichever its real clock is."""

    def __init__(self, start: float | datetime = 1_767_225_600.0) -> None:
        self.now = start.timestamp() if isinstance(start, datetime) else float(start)

    def __call__(self) -> float:
        return self.now

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now, tz=UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds
