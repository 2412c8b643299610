"""The ReAct loop: think (LLM), act (tools), observe (append results), until an answer.

Pure logic over ports. ``AgentLoop`` holds the order of things; its collaborators hold the
rest: ``ContextBuilder`` (what the model is shown), ``ToolActor`` (act and observe),
``ApprovalParking`` (park on an approval, resume on the decision), ``SessionReporter`` (state
changes and events). Every status change goes through the state machine and is published as a
``state`` event. The loop checkpoints after every ``checkpoint_every`` completed iterations and
whenever it parks for an approval, so a session resumes from its last checkpoint: a crash
mid-iteration re-runs that iteration (THINK with the same messages, ACT with the same
idempotency keys, which the tool gateway answers from its ledger).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from keel_agent_loop.domain.acting import OUTAGES, ToolActor
from keel_agent_loop.domain.budget import BudgetGuard
from keel_agent_loop.domain.catalogs import ToolCatalogs
from keel_agent_loop.domain.context import CachingCounter, EstimateCounter, TokenCounter
from keel_agent_loop.domain.context_builder import ContextBuilder
from keel_agent_loop.domain.guard_parking import GuardParking, held_by_guard
from keel_agent_loop.domain.guarding import GuardDecision, NoGuards, OutputGuards
from keel_agent_loop.domain.loop_config import LoopConfig
from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    LLMReply,
    SessionStatus,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_agent_loop.domain.parking import ApprovalParking
from keel_agent_loop.domain.persona import sampling_for
from keel_agent_loop.domain.plan_mode import PlanParking, PlanPort
from keel_agent_loop.domain.ports import (
    CancelSignal,
    CheckpointStore,
    EventSink,
    LLMPort,
    LoopObserver,
    MemoryPort,
    NeverCancelled,
    NoCheckpoints,
    NoTracing,
    NullObserver,
    StepTracer,
    ToolPort,
)
from keel_agent_loop.domain.progress import prompt_record
from keel_agent_loop.domain.prompts import approval_of, idempotency_key, preview
from keel_agent_loop.domain.reporter import SessionReporter
from keel_agent_loop.errors import ServiceOutage
from keel_contracts.canonical import sha256_hex
from keel_contracts.errors import KeelError
from keel_contracts.events import ApprovalDecided
from keel_contracts.events.plans import PlanFinished

__all__ = ["AgentLoop", "LoopConfig"]


class AgentLoop:
    def __init__(
        self,
        llm: LLMPort,
        tools: ToolPort,
        memory: MemoryPort,
        sink: EventSink,
        config: LoopConfig,
        observer: LoopObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
        *,
        checkpoints: CheckpointStore | None = None,
        cancels: CancelSignal | None = None,
        counter: TokenCounter | None = None,
        tracer: StepTracer | None = None,
        plans: PlanPort | None = None,
        guards: OutputGuards | None = None,
    ) -> None:
        self._llm = llm
        self._tracer = tracer or NoTracing()
        self._config = config
        self._observer = observer or NullObserver()
        self._clock = clock
        self._checkpoints = checkpoints or NoCheckpoints()
        self._catalogs = ToolCatalogs(tools)
        self._reporter = SessionReporter(sink, cancels or NeverCancelled(), config.preview_chars)
        # Each message counted once for the life of the loop: the history is re-fitted every step.
        counted = CachingCounter(counter or EstimateCounter())
        self._context = ContextBuilder(memory, config, counted, self._reporter)
        self._actor = ToolActor(
            tools, self._catalogs, self._reporter, self._observer, clock, config.preview_chars
        )
        self._parking = ApprovalParking(
            sink, self._checkpoints, self._catalogs, self._reporter, self._actor
        )
        self._plans = (
            PlanParking(plans, self._checkpoints, self._reporter, self._actor) if plans else None
        )
        self._guards: OutputGuards = guards or NoGuards()
        self._held = GuardParking(sink, self._checkpoints, self._reporter)

    async def run(self, state: AgentState) -> AgentState:
        """Run a session until it finishes or parks waiting for an approval. Tool failures
        never raise; an LLM or tool catalog answering with an error fails the session.
        ``ServiceOutage`` (the tool gateway, LLM gateway or memory unreachable) raises with
        the state consistent and nothing of the outage in the history: ``run`` on that state
        later continues at the very step that stalled (the same call, the same key; the model
        is not asked again). Bugs and sink or checkpoint errors raise too."""
        if state.status == "idle":
            if await self._reporter.stop_if_cancelled(state):
                return state
            await self._begin(state)
        elif state.status == "executing_tool":
            # A call an outage stalled: go on with the calls of that reply not yet answered.
            await self._act_from(state, _answered(state))
            if _status(state) == "processing_result":
                await self._iteration_done(state)
        while not state.finished and state.status not in PARKED:
            await self.step(state)
        return state

    async def step(self, state: AgentState) -> None:
        """One iteration: think, then act and observe each tool call, or finish."""
        if await self._reporter.stop_if_cancelled(state):
            return
        if state.iteration >= state.max_iterations:
            error = f"no final answer after {state.iteration} iterations"
            await self._reporter.failed(state, "iteration_limit", error)
            return
        if state.status != "planning":
            await self._reporter.move(state, "planning")
        if await self._escalated(state):
            return
        started = self._clock()
        state.iteration += 1
        try:
            with self._tracer.span(
                f"step {state.iteration}",
                {"keel.session.id": state.session_id, "keel.iteration": state.iteration},
            ):
                await self._iterate(state)
        finally:
            self._observer.step(self._clock() - started)

    async def decide(self, state: AgentState, decision: ApprovalDecided) -> AgentState:
        """Apply a reviewer's decision to a parked session, then run it on."""
        if held_by_guard(state):
            await self._held.resume(state, decision)
            return state if state.finished else await self.run(state)
        pending = await self._parking.resume(state, decision)
        if pending is None:
            return state
        await self._act_from(state, pending.index + 1)
        if _status(state) == "processing_result":
            await self._iteration_done(state)
        return await self.run(state)

    async def plan_finished(self, state: AgentState, finished: PlanFinished) -> AgentState:
        """Answer a session's parked ``plan`` call with its plan's end, then run it on."""
        pending = await self._plans.resume(state, finished) if self._plans else None
        if pending is None:
            return state
        await self._act_from(state, pending.index + 1)
        if _status(state) == "processing_result":
            await self._iteration_done(state)
        return await self.run(state)

    async def resubmit_plan(self, state: AgentState) -> None:
        """Submit a session's pending plan again (after a restart; a known plan is ignored)."""
        if self._plans is not None:
            await self._plans.resubmit(state)

    async def reask(self, state: AgentState) -> None:
        """Publish a parked session's approval request again (same approval id): after a
        restart nobody can tell whether the first one reached the broker."""
        if held_by_guard(state):
            await self._held.reask(state)
        else:
            await self._parking.reask(state)

    async def give_up(self, state: AgentState, error: str) -> None:
        """Fail a session a service outage held past the operator's limit."""
        if not state.finished:
            await self._reporter.failed(state, "infrastructure", error)

    async def cancel(self, state: AgentState, reason: str) -> None:
        """Cancel a session that is not running here (parked, or only checkpointed); one
        parked on its plan cancels the plan first."""
        if not state.finished:
            if self._plans is not None:
                await self._plans.cancel(state, reason)
            await self._reporter.cancelled(state, reason)

    async def resumed(self, state: AgentState, trigger: str) -> None:
        await self._reporter.emit(
            state,
            "resumed",
            {"status": state.status, "iteration": state.iteration, "trigger": trigger},
        )

    async def _begin(self, state: AgentState) -> None:
        memories = await self._context.open(state)
        await self._reporter.move(state, "planning")
        await self._reporter.emit(
            state,
            "started",
            {
                "goal": preview(state.goal, self._config.preview_chars),
                "agent_profile": state.agent_profile,
                "max_iterations": state.max_iterations,
                "memory_items": len(memories),
                # For replay: what was injected, and which system prompt (its hash, not its text).
                "memories": memories,
                "system_prompt_sha256": sha256_hex(self._config.system_prompt),
                "token_budget": state.token_budget,
                "cost_budget_usd": state.cost_budget_usd,
            },
        )

    async def _iterate(self, state: AgentState) -> None:
        try:
            catalog = await self._catalog(state)
            message = await self._think(state, catalog)
        except ServiceOutage:
            # Not started after all: the step is taken again, whole, when the session resumes.
            state.iteration -= 1
            raise
        except KeelError as exc:
            await self._reporter.failed(state, "error", str(exc))
            return
        if message is None:
            return
        guarded = None
        if not message.tool_calls:
            # Guarded before it is recorded anywhere: a redacted secret must not reach the
            # progress events or the checkpoint either.
            guarded = await self._guards.answer(state, message.content)
            message = message.model_copy(update={"content": guarded.text})
        # For replay: the prompt just sent (state.messages before the reply) and the reply whole.
        sent = prompt_record(state.messages, catalog, with_tools=state.iteration == 1)
        state.messages.append(message)
        await self._reporter.emit(
            state,
            "thought",
            {
                "content": preview(message.content, self._config.preview_chars),
                "tool_calls": [c.name for c in message.tool_calls],
                "message": message.model_dump(mode="json"),
                "usage": state.usage.model_dump(),
                **sent,
            },
        )
        if over := BudgetGuard.over_after_call(state):
            await self._reporter.failed(state, "budget", over)
        elif guarded is not None:
            await self._answer(state, guarded)
        else:
            await self._act_from(state, 0)
            if state.status == "processing_result":
                await self._iteration_done(state)

    async def _catalog(self, state: AgentState) -> list[ToolSpec]:
        try:
            catalog = await self._catalogs.fetch(state.agent_profile)
        except OUTAGES as exc:
            raise ServiceOutage("tool gateway", exc) from exc
        plan_tool = self._plans.tool_for(state) if self._plans else None
        return [*catalog, plan_tool] if plan_tool else catalog

    async def _ask(self, state: AgentState, catalog: list[ToolSpec]) -> LLMReply:
        """One model call; a session with sampling of its own (a debater) passes it on."""
        sampling = sampling_for(state.metadata)
        if sampling is None:
            return await self._llm.complete(state.context(), list(state.messages), catalog)
        return await self._llm.complete(state.context(), list(state.messages), catalog, sampling)

    async def _think(self, state: AgentState, catalog: list[ToolSpec]) -> ChatMessage | None:
        """The model's next message; None when the prompt would exceed the token budget (the
        session has failed then). Raises the LLM's ``KeelError``, or ``ServiceOutage``."""
        prompt_tokens = await self._context.fit(state, catalog)
        if over := BudgetGuard.over_before_call(state, prompt_tokens):
            await self._reporter.failed(state, "budget", over)
            return None
        self._observer.context_used(prompt_tokens, self._config.context_window_tokens)
        started = self._clock()
        try:
            reply = await self._ask(state, catalog)
        except KeelError as exc:
            self._observer.llm_call(self._clock() - started, ok=False)
            if isinstance(exc, OUTAGES):
                raise ServiceOutage("LLM gateway", exc) from exc
            raise
        self._observer.llm_call(self._clock() - started, ok=True)
        state.usage = state.usage + reply.usage
        # Every call needs an id so its observation can answer it; models sometimes omit them.
        calls = tuple(
            call if call.id else call.model_copy(update={"id": f"call_{state.iteration}_{i}"})
            for i, call in enumerate(reply.message.tool_calls)
        )
        return ChatMessage(role="assistant", content=reply.message.content, tool_calls=calls)

    async def _act_from(self, state: AgentState, start: int) -> None:
        """Run the calls of the latest reply from ``start`` on; stop when one parks."""
        message = next(m for m in reversed(state.messages) if m.role == "assistant")
        for index in range(start, len(message.tool_calls)):
            if await self._reporter.stop_if_cancelled(state):
                return
            call = message.tool_calls[index]
            if self._plans is not None and self._is_plan_call(state, call):
                if await self._plans.act(state, call, index):
                    return
                continue
            guarded = await self._guard_call(state, call, index)
            if guarded is None:
                continue
            call = guarded
            if _status(state) == "waiting_for_approval":
                return
            outcome = await self._actor.act(state, call, index)
            if outcome.status == "needs_approval":
                await self._parking.park(state, call, index, message.content, outcome)
                return

    async def _answer(self, state: AgentState, decision: GuardDecision) -> None:
        """The final answer as the guard stage decided: published (perhaps redacted), held for
        a person, or refused (the session fails with the rule's reason)."""
        if decision.verdict == "block":
            error = f"answer blocked by guard rule {decision.rule_id}: {decision.reason}"
            await self._reporter.failed(state, "error", error)
        elif decision.verdict == "require_approval":
            await self._held.hold_answer(state, decision)
        else:
            await self._reporter.completed(state, decision.text)

    async def _escalated(self, state: AgentState) -> bool:
        """Before thinking again: whether an escalation rule parked (or a guard failed) the
        session. Without guards nothing is asked, not even the catalog."""
        if isinstance(self._guards, NoGuards):
            return False
        offered = frozenset(tool.name for tool in await self._catalog(state))
        decision = await self._guards.progress(state, offered)
        if decision.verdict == "block":
            await self._reporter.failed(state, "error", f"stopped by guard: {decision.reason}")
        elif decision.verdict == "require_approval":
            await self._held.hold_session(state, decision)
        else:
            return False
        return True

    async def _guard_call(self, state: AgentState, call: ToolCall, index: int) -> ToolCall | None:
        """A call's arguments through the guard stage, before the tool gateway sees them: the
        call to run (perhaps redacted), or None when the guard refused it (the model reads
        why). A call the guard holds for a person parks the session (status tells). A call a
        person approved already is not guarded again."""
        key = idempotency_key(state.session_id, state.iteration, index)
        if approval_of(state.decided_approvals, key):
            return call
        decision = await self._guards.tool_call(state, call)
        if decision.verdict == "redact":
            return call.model_copy(update={"arguments_json": decision.text})
        if decision.verdict == "pass":
            return call
        rule = f"guard:{decision.rule_id}"
        await self._actor.announce(state, call, index)
        if decision.verdict == "require_approval":
            held = ToolOutcome(status="needs_approval", rule_id=rule, error=decision.reason)
            message = next(m for m in reversed(state.messages) if m.role == "assistant")
            await self._parking.park(state, call, index, message.content, held)
            return call
        refused = ToolOutcome(status="denied", rule_id=rule, error=decision.reason)
        text = f"BLOCKED by guard rule {decision.rule_id}: {decision.reason}; not executed"
        await self._actor.observe(state, call, key, refused, text)
        return None

    def _is_plan_call(self, state: AgentState, call: ToolCall) -> bool:
        tool = self._plans.tool_for(state) if self._plans else None
        return tool is not None and call.name == tool.name

    async def _iteration_done(self, state: AgentState) -> None:
        if state.iteration % self._config.checkpoint_every == 0:
            # Not awaited to the broker: losing it in a crash re-runs this iteration, whose tool
            # calls the tool gateway answers from its ledger. Parking and finishing are durable.
            await self._checkpoints.save(state, durable=False)


# A parked session holds no consumer: a decision or its plan's end resumes it.
PARKED: frozenset[SessionStatus] = frozenset({"waiting_for_approval", "waiting_for_plan"})


def _status(state: AgentState) -> SessionStatus:
    """The current status, read through a call so type narrowing from an earlier check does
    not outlive the awaits that change it."""
    return state.status


def _answered(state: AgentState) -> int:
    """How many calls of the latest reply have their ``tool`` message: the index of the
    next one to run."""
    answered = 0
    for message in reversed(state.messages):
        if message.role == "assistant":
            return answered
        if message.role == "tool":
            answered += 1
    return answered
