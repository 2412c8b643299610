"""ACT and OBSERVE: one tool call executed through the tool gateway, and its result added to
the history as a ``tool`` message the model reads as data.

A tool that ran and failed, or was denied, is a result like any other (``ERROR: ...``,
``DENIED ...``): data the model reads and reacts to. A tool gateway that cannot be reached
(``Unavailable``, ``DeadlineExceeded``) is not: it raises ``ServiceOutage`` before anything is
added to the history, and the session waits the outage out (``usecases.run_session``).
Any other error of the ``Execute`` call itself still reaches the model as
``ERROR: tool gateway: ...``.
"""

from __future__ import annotations

from collections.abc import Callable

from keel_agent_loop.domain.catalogs import ToolCatalogs
from keel_agent_loop.domain.models import AgentState, ChatMessage, ToolCall, ToolOutcome
from keel_agent_loop.domain.ports import LoopObserver, ToolPort
from keel_agent_loop.domain.prompts import approval_of, idempotency_key, observation, preview
from keel_agent_loop.domain.reporter import SessionReporter
from keel_agent_loop.errors import ServiceOutage
from keel_contracts.errors import DeadlineExceeded, KeelError, Unavailable

OUTAGES = (Unavailable, DeadlineExceeded)


class ToolActor:
    def __init__(
        self,
        tools: ToolPort,
        catalogs: ToolCatalogs,
        reporter: SessionReporter,
        observer: LoopObserver,
        clock: Callable[[], float],
        preview_chars: int,
    ) -> None:
        self._tools = tools
        self._catalogs = catalogs
        self._reporter = reporter
        self._observer = observer
        self._clock = clock
        self._preview_chars = preview_chars

    async def announce(self, state: AgentState, call: ToolCall, index: int) -> str:
        """The ``index``-th call of the latest reply is being acted on: the session moves to
        ``executing_tool`` (it already is when resuming a call an outage stalled), the
        ``tool_call`` progress event goes out and the tool is noted as used. Its key."""
        key = idempotency_key(state.session_id, state.iteration, index)
        if state.status != "executing_tool":
            await self._reporter.move(state, "executing_tool")
        await self._reporter.emit(
            state,
            "tool_call",
            {
                "tool": call.name,
                "call_id": call.id,
                "idempotency_key": key,
                "arguments": call.arguments_json,
            },
        )
        if call.name not in state.tools_used:
            state.tools_used.append(call.name)
        return key

    async def act(self, state: AgentState, call: ToolCall, index: int) -> ToolOutcome:
        """Execute the ``index``-th call of the latest reply and observe its result; a call
        that needs an approval is left unobserved (the caller parks the session)."""
        key = await self.announce(state, call, index)
        # Approved already: an approved call whose run an outage stalled is resumed here.
        approved = bool(approval_of(state.decided_approvals, key))
        outcome = await self.execute(state, call, key, approved=approved)
        if approved and outcome.status == "needs_approval":
            outcome = not_accepted(outcome)
        if outcome.status != "needs_approval":
            await self.observe(state, call, key, outcome)
        return outcome

    async def execute(
        self, state: AgentState, call: ToolCall, key: str, *, approved: bool
    ) -> ToolOutcome:
        """One ``Execute``; an approved call carries its approval id, which the gateway checks."""
        approval_id = approval_of(state.decided_approvals, key) if approved else ""
        started = self._clock()
        try:
            outcome = await self._tools.execute(
                state.context(), call, key, approval_id, task_text=state.goal
            )
        except OUTAGES as exc:
            raise ServiceOutage("tool gateway", exc) from exc
        except KeelError as exc:
            outcome = ToolOutcome(status="error", error=f"tool gateway: {exc}")
        label = self._catalogs.metric_label(state.agent_profile, call.name)
        self._observer.tool_call(label, outcome.status, self._clock() - started)
        return outcome

    async def observe(
        self,
        state: AgentState,
        call: ToolCall,
        key: str,
        outcome: ToolOutcome,
        content: str | None = None,
    ) -> None:
        """Answer the call with a ``tool`` message (``content`` overrides the usual text)."""
        await self._reporter.move(state, "processing_result")
        state.messages.append(
            ChatMessage(
                role="tool",
                content=observation(call, outcome) if content is None else content,
                tool_call_id=call.id,
                name=call.name,
            )
        )
        await self._reporter.emit(
            state,
            "tool_result",
            {
                "tool": call.name,
                "call_id": call.id,
                "idempotency_key": key,
                "status": outcome.status,
                "rule_id": outcome.rule_id,
                "error": outcome.error,
                "output": preview(outcome.output, self._preview_chars),
            },
        )


def not_accepted(outcome: ToolOutcome) -> ToolOutcome:
    """An approved call the gateway still holds for approval: an error the model reads."""
    return ToolOutcome(
        status="error",
        error="the tool gateway did not accept the approval",
        rule_id=outcome.rule_id,
    )
