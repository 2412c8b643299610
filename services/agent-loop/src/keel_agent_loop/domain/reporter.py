"""How a session tells the world what it does: every status change goes through the state
machine and is published as a ``state`` event, and the terminal ones (completed, failed,
cancelled) carry their own event. The loop and its collaborators share one reporter, so the
order of a session's events is the order in which they happen."""

from __future__ import annotations

import logging
from typing import Any

from keel_agent_loop.domain.models import AgentState, FailureReason, ProgressKind, SessionStatus
from keel_agent_loop.domain.ports import CancelSignal, EventSink
from keel_agent_loop.domain.progress import progress_event
from keel_agent_loop.domain.prompts import preview

log = logging.getLogger(__name__)


class SessionReporter:
    def __init__(self, sink: EventSink, cancels: CancelSignal, preview_chars: int) -> None:
        self._sink = sink
        self._cancels = cancels
        self._preview_chars = preview_chars

    async def emit(self, state: AgentState, kind: ProgressKind, detail: dict[str, Any]) -> None:
        await self._sink.progress(state.context(), progress_event(kind, state.iteration, detail))

    async def move(self, state: AgentState, to: SessionStatus) -> None:
        previous = state.move(to)
        await self._state_event(state, previous)

    async def stop_if_cancelled(self, state: AgentState) -> bool:
        """True when the session must not go on: it finished, or a cancel was requested (then
        it is stopped here, as cancelled)."""
        reason = self._cancels.requested(state.session_id)
        if reason is None or state.finished:
            return state.finished
        await self.cancelled(state, reason)
        return True

    async def cancelled(self, state: AgentState, reason: str) -> None:
        error = f"cancelled: {reason}"
        previous = state.fail("cancelled", error)
        await self._state_event(state, previous)
        log.info("session %s cancelled: %s", state.session_id, reason)
        await self.emit(
            state,
            "cancelled",
            {"reason": "cancelled", "error": error, "iterations": state.iteration},
        )

    async def completed(self, state: AgentState, answer: str) -> None:
        previous = state.complete(answer)
        await self._state_event(state, previous)
        await self.emit(
            state,
            "completed",
            {
                "answer": preview(answer, self._preview_chars),
                "iterations": state.iteration,
                **state.usage.model_dump(),
            },
        )

    async def failed(self, state: AgentState, reason: FailureReason, error: str) -> None:
        previous = state.fail(reason, error)
        await self._state_event(state, previous)
        log.warning("session %s failed (%s): %s", state.session_id, reason, error)
        await self.emit(
            state, "failed", {"reason": reason, "error": error, "iterations": state.iteration}
        )

    async def _state_event(self, state: AgentState, previous: SessionStatus) -> None:
        await self.emit(state, "state", {"from": previous, "to": state.status})
