"""Where plan state lives between events: the compacted ``keel.checkpoints`` in production
(``keel_core.bus.table.CompactedTable`` fits this port as it is), a dict in tests."""

from __future__ import annotations

from typing import Protocol

from keel_agent_loop.plans.scheduler import PlanState
from keel_contracts.events import Envelope, EventData
from keel_contracts.events.plans import PlanCheckpoint

KEY_PREFIX = "plan:"


def state_key(plan_id: str) -> str:
    """Plans share keel.checkpoints with sessions; the prefix keeps their keys apart."""
    return KEY_PREFIX + plan_id


class PlanStore(Protocol):
    def get(self, key: str) -> Envelope | None: ...

    async def put(
        self, key: str, payload: EventData, *, session_id: str = "", trace: str = ""
    ) -> Envelope: ...


class MemoryPlanStore:
    """The port over a dict: unit tests and single-process experiments."""

    def __init__(self) -> None:
        self.values: dict[str, Envelope] = {}

    def get(self, key: str) -> Envelope | None:
        return self.values.get(key)

    async def put(
        self, key: str, payload: EventData, *, session_id: str = "", trace: str = ""
    ) -> Envelope:
        envelope = Envelope.wrap(payload, source="test", session_id=session_id or key, trace=trace)
        self.values[key] = envelope
        return envelope


def load_state(store: PlanStore, plan_id: str) -> PlanState | None:
    envelope = store.get(state_key(plan_id))
    if envelope is None or envelope.type != PlanCheckpoint.event_type:
        return None
    return PlanState.model_validate(envelope.parse(PlanCheckpoint).state)


async def save_state(store: PlanStore, state: PlanState, trace: str = "") -> None:
    checkpoint = PlanCheckpoint(status=state.status, state=state.model_dump(mode="json"))
    await store.put(state_key(state.plan_id), checkpoint, session_id=state.plan_id, trace=trace)
