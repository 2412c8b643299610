"""Payloads of the policy service's topics: named-list items and state reservations."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from keel_contracts.events.envelope import EventData

# A list name as policy files write it (no ":", so a key names its list unambiguously).
LIST_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"


def list_item_key(name: str, item: str) -> str:
    """The key of one item on ``keel.policy.lists``."""
    return f"{name}:{item}"


class PolicyListItem(EventData):
    """One item of a named policy list on ``keel.policy.lists`` (compacted; key
    ``<list>:<item>``, a tombstone removes the item). Written by ``keel policy list add``
    (operators) or a named service; read by the policy service for lists with ``topic: true``."""

    event_type: ClassVar[str] = "keel.policy.list_item"

    list: str = Field(pattern=LIST_NAME)
    item: str = Field(min_length=1)
    added_by: str = ""

    @property
    def key(self) -> str:
        return list_item_key(self.list, self.item)


class StateCharge(BaseModel):
    """One running total a call adds to: ``amount`` on ``meter`` for the caller ``key``."""

    meter: str
    key: str
    amount: float


class PolicyStateReserved(EventData):
    """A call policy let through, reserved on the running totals that ``state:`` conditions
    read (``keel.policy.state``, key = the call id). One record per call, so a reservation
    lands whole or not at all."""

    event_type: ClassVar[str] = "keel.policy.state_reserved"

    call_id: str
    # Epoch seconds (UTC) of the decision.
    at: float
    charges: list[StateCharge] = Field(default_factory=list)
