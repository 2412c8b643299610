"""Payloads of the LLM gateway's budget ledger (``keel.llm.budget``, key = the tenant).

Every record of one tenant lands on one partition, so all reservations that could compete for
the same session, agent or tenant budget are ordered by the log; every gateway replica folds
that order the same way and so reaches the same verdict on each reservation (ADR 0015).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from keel_contracts.events.envelope import EventData


class BudgetScope(BaseModel):
    """One scope a request is charged to."""

    kind: Literal["session", "agent", "tenant"]
    name: str = Field(min_length=1)


class BudgetReserved(EventData):
    """A replica asks to hold ``tokens``/``cost_usd`` (an upper estimate) on every scope of a
    request. Not a grant: the fold of the log decides, in log order, whether it fits."""

    event_type: ClassVar[str] = "keel.llm.budget_reserved"

    reservation_id: str = Field(min_length=1)
    tenant: str = ""
    scopes: list[BudgetScope] = Field(default_factory=list)
    tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    # Epoch seconds (UTC) when it was asked for: the fold's clock for hold expiry.
    at: float


class BudgetSettled(EventData):
    """The held estimate of ``reservation_id`` is replaced by what the call really cost
    (``released``: the call failed, it cost nothing the gateway knows of)."""

    event_type: ClassVar[str] = "keel.llm.budget_settled"

    reservation_id: str = Field(min_length=1)
    tenant: str = ""
    tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    released: bool = False
    at: float
