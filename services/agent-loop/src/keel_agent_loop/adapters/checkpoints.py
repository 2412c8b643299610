"""CheckpointStore over the compacted ``keel.checkpoints`` (key = session id).

Every replica loads the whole topic at start and follows it, so a session checkpointed by a
process that died is visible to the replica that takes over its partition.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from keel_agent_loop.domain.models import AgentState
from keel_contracts.events import SessionCheckpoint
from keel_core.bus.table import Table

log = logging.getLogger(__name__)


class TableCheckpoints:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, session_id: str) -> AgentState | None:
        envelope = self._table.get(session_id)
        if envelope is None:
            return None
        try:
            checkpoint = envelope.parse(SessionCheckpoint)
            return AgentState.model_validate(checkpoint.state)
        except (ValidationError, ValueError) as exc:
            # Unusable (another schema, a bug): starting over beats never running the session.
            log.warning("ignoring unreadable checkpoint of %s: %s", session_id, exc)
            return None

    def keys(self) -> list[str]:
        return self._table.keys()

    async def save(self, state: AgentState, durable: bool = True) -> None:
        checkpoint = SessionCheckpoint(
            status=state.status,
            iteration=state.iteration,
            state=state.model_dump(mode="json"),
        )
        await self._table.put(
            state.session_id,
            checkpoint,
            session_id=state.session_id,
            trace=state.trace,
            wait=durable,
        )

    async def delete(self, session_id: str) -> None:
        await self._table.delete(session_id)
