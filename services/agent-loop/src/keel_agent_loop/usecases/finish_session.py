"""What happens when a session ends, in an order that survives a crash at any point:

1. a terminal checkpoint (so a redelivered task finishes the finish instead of re-running),
2. the result on ``keel.results`` (after the session's progress is flushed),
3. the audit record, the episodic memory (best effort), the finish hooks,
4. the tombstone of the checkpoint.

A crash before 4 repeats 2-4 on redelivery: results and hooks are at-least-once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.episodes import episode
from keel_agent_loop.domain.models import AgentState
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
        result = result_of(state)
        await self._checkpoints.save(state)
        await self.republish(state.session_id, state.trace, result)
        await self._record(state, result)
        await self._remember(state)
        for hook in self.hooks:
            await hook(state, result)
        await self._checkpoints.delete(state.session_id)
        # Last: until here a redelivered task finds the terminal checkpoint and runs this whole
        # finish again (hooks included — they are idempotent), instead of only republishing the
        # result; a plan would otherwise never hear that its node ended.
        self._store.finished(state, result)
        self._metrics.session_finished(state)
        self._cancels.forget(state.session_id)

    async def republish(
        self, session_id: str, trace: str, result: TaskCompleted | TaskFailed
    ) -> None:
        envelope = Envelope.wrap(result, source=SOURCE, session_id=session_id, trace=trace)
        await self._publisher.flush()  # the session's progress events land before its result
        await self._publisher.publish(RESULTS, envelope, key=session_id)

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
