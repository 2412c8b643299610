"""The current time, in UTC or a named IANA time zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keel_tool_gateway.domain.registry import Tool


class ClockInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone such as 'Europe/Paris'; UTC when omitted.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            _zone(value)
        return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        # ValueError: keys that are not zone names at all, e.g. absolute or '..' paths.
        raise ValueError(f"unknown time zone {name!r}") from exc


def make_clock(now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Tool[ClockInput]:
    """The clock tool; ``now`` must return an aware datetime (tests pass a fixed one)."""

    def run(args: ClockInput) -> str:
        moment = now().astimezone(_zone(args.timezone) if args.timezone else UTC)
        return moment.isoformat(timespec="seconds")

    return Tool(
        name="clock",
        description="Current date and time as ISO-8601, in UTC or the given IANA time zone.",
        input_model=ClockInput,
        run=run,
        effects="read_only",
    )
