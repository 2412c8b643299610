"""What happens when a session ends, in an order that survives a crash at any point:

1. the session's end marker (``SessionFinished``, durable) replaces its checkpoint: it holds
   the result's envelope, id included, and the terminal state;
2. that envelope on ``keel.results`` (after the session's progress is flushed);
3. the audit record, the episodic memory (best effort), the finish hooks;
4. the marker is marked ``done`` (and drops the state).

A redelivered task, decision or cancel finds the marker (in this process or any other) and
never runs the session again. A marker that is not ``done`` (a crash between 1 and 4) has
2-4 completed by the redelivery: the IDENTICAL envelope (same id) is published again, so a
reader dedupes by envelope id; the hooks are idempotent. A ``done`` marker publishes nothing.
Markers are tombstoned after a grace period (``adapters.checkpoints.FinishedSweeper``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.episodes import episode
from keel_agent_loop.domain.models import AgentState, FinishedSession
from keel_agent_loop.domain.ports import CheckpointStore, MemoryPort
from keel_agent_loop.domain.prompts import preview
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.metrics import AgentMetrics
from keel_contracts.canonical import sha256_hex
from keel_contracts.events import Envelope, TaskCompleted, TaskFailed
from keel_contracts.topics import RESULTS
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Publisher

log = logging.getLogger(__name__)

SOURCE = "agent-loop"

FinishHook = Callable[[AgentState, TaskCompleted | TaskFailed], Awaitable[None]]


def result_of(state: AgentState) -> TaskCompleted | TaskFailed:
    if state.status == "completed":
        return TaskCompleted(
            answer=state.answer,
            iterations=state.iteration,
            prompt_tokens=state.usage.prompt_tokens,
            completion_tokens=state.usage.completion_tokens,
            cost_usd=state.usage.cost_usd,
        )
    return TaskFailed(
        reason=state.failure_reason or "error", error=state.error, iterations=state.iteration
    )


class Finisher:
    def __init__(
        self,
        store: SessionStore,
        publisher: Publisher,
        audit: AuditEmitter,
        metrics: AgentMetrics,
        checkpoints: CheckpointStore,
        cancels: CancelFlags,
        memory: MemoryPort | None,
        hooks: list[FinishHook],
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._audit = audit
        self._metrics = metrics
        self._checkpoints = checkpoints
        self._cancels = cancels
        self._memory = memory
        self.hooks = hooks

    async def started(self, state: AgentState) -> None:
        self._store.started(state)
        await self._audit.record(
            "task.started",
            actor=state.agent_id,
            subject=state.session_id,
            session_id=state.session_id,
            trace=state.trace,
            details={
                "goal": preview(state.goal, 500),
                "agent_profile": state.agent_profile,
                "tenant": state.tenant,
                "max_iterations": state.max_iterations,
                "token_budget": state.token_budget,
                "cost_budget_usd": state.cost_budget_usd,
            },
        )

    async def finish(self, state: AgentState) -> None:
        """End a session that has just reached a terminal status."""
        result = Envelope.wrap(
            result_of(state), source=SOURCE, session_id=state.session_id, trace=state.trace
        )
        marker = FinishedSession(result=result, state=state)
        await self._checkpoints.save_finished(marker)
        await self.complete(marker)

    async def complete(self, marker: FinishedSession) -> None:
        """Steps 2-4 of a finish whose marker is written (again, after a crash: the same
        envelope is published again)."""
        state = marker.state
        if state is None:  # cannot happen for a marker that is not done; publish at least
            await self._publish(marker.result)
            return
        result = marker.payload()
        await self._publish(marker.result)
        await self._record(state, result)
        await self._remember(state)
        for hook in self.hooks:
            await hook(state, result)
        # Losing this write in a crash only means steps 2-4 run again, with the same envelope.
        await self._checkpoints.save_finished(
            marker.model_copy(update={"state": None, "done": True}), durable=False
        )
        self._store.finished(state, result)
        self._metrics.session_finished(state)
        self._cancels.forget(state.session_id)

    async def _publish(self, result: Envelope) -> None:
        await self._publisher.flush()  # the session's progress events land before its result
        await self._publisher.publish(RESULTS, result, key=result.session_id)

    async def _record(self, state: AgentState, result: TaskCompleted | TaskFailed) -> None:
        details: dict[str, object] = {"iterations": state.iteration, **state.usage.model_dump()}
        if isinstance(result, TaskCompleted):
            details["answer_sha256"] = sha256_hex(result.answer)
        else:
            details.update(reason=result.reason, error=preview(result.error, 500))
        await self._audit.record(
            "task.completed" if isinstance(result, TaskCompleted) else "task.failed",
            actor=state.agent_id,
            subject=state.session_id,
            session_id=state.session_id,
            trace=state.trace,
            details=details,
        )

    async def _remember(self, state: AgentState) -> None:
        """The episodic memory of the session; a memory service that fails never fails it."""
        if self._memory is None:
            return
        content, metadata = episode(state)
        try:
            await self._memory.store(state.context(), content, "episodic", metadata)
        except Exception as exc:  # noqa: BLE001 - memory is best effort, the result stands
            log.warning("could not store the episode of %s: %s", state.session_id, exc)
