"""The one envelope every Kafka message in Keel travels in (CloudEvents-like, versioned).

``data`` holds a typed payload (see ``keel_contracts.events.types``); the envelope's ``type`` names
which, so a consumer can validate the payload against the right model and dead-letter anything
else with a reason.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


class EventData(BaseModel):
    """Base of every payload. Subclasses set ``event_type``, the envelope's ``type``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]


DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    source: str
    time: datetime = Field(default_factory=_now)
    session_id: str
    trace: str = ""
    schema_version: int = SCHEMA_VERSION
    data: dict[str, Any]

    @classmethod
    def wrap(cls, payload: EventData, *, source: str, session_id: str, trace: str = "") -> Envelope:
        return cls(
            type=payload.event_type,
            source=source,
            session_id=session_id,
            trace=trace,
            data=payload.model_dump(mode="json"),
        )

    def parse(self, model: builtins.type[DataT]) -> DataT:
        """Validate ``data`` as ``model``; raises ``pydantic.ValidationError`` when it is not."""
        if self.type != model.event_type:
            raise ValueError(f"expected event type {model.event_type!r}, got {self.type!r}")
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)
