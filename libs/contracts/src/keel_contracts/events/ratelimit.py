"""Payload of ``keel.ratelimit.spend``: what one replica's rate limiter let through."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from keel_contracts.events.envelope import EventData


class RateLimitSpend(BaseModel):
    """``tokens`` taken from the bucket of ``kind`` for ``key``."""

    kind: str
    key: str
    tokens: float = Field(ge=0)


class RateLimitSpent(EventData):
    """Spend one replica (``replica``, a run's producer id) of ``service`` let through since
    its previous record; every replica of that service debits it from its own buckets, so a
    limit holds across replicas up to the publish and follow lag (ADR 0012)."""

    event_type: ClassVar[str] = "keel.ratelimit.spent"

    service: str
    replica: str
    # Epoch seconds (UTC) the record was made.
    at: float
    spends: list[RateLimitSpend] = Field(default_factory=list)
