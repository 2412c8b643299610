"""The agent loop's ports, answered from a recording: the real ``AgentLoop`` runs over these,
so a replay exercises today's loop code (prompt building, trimming, budgets, approvals).

Divergence is not a ``KeelError``: the loop turns those into a failed session, while a replay
must stop at the first difference and say where it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from keel_agent_loop.domain.models import (
    ChatMessage,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    Usage,
)
from keel_agent_loop.domain.ports import LLMPort, MemoryType
from keel_agent_loop.domain.progress import prompt_record
from keel_agent_loop.replay.recording import CancelPoint, Recording
from keel_contracts.errors import KeelError
from keel_contracts.events import ApprovalRequested, TaskProgress
from keel_contracts.events.plans import Sampling


@dataclass(frozen=True)
class Prompt:
    """What the loop sent at one step, with the digests the loop records for it."""

    messages: list[ChatMessage]
    tools: list[ToolSpec]
    digest: str
    tools_digest: str
    message_digests: list[str]

    @classmethod
    def of(cls, messages: list[ChatMessage], tools: list[ToolSpec]) -> Prompt:
        record = prompt_record(messages, tools, with_tools=False)
        return cls(
            list(messages),
            list(tools),
            str(record["prompt_digest"]),
            str(record["tools_digest"]),
            [str(d) for d in record["message_digests"]],
        )


class Diverged(Exception):  # noqa: N818 - a signal, like StopIteration
    """The replay stopped: ``kind`` says what differs at ``step`` (1-based LLM call)."""

    def __init__(self, step: int, kind: str, summary: str, prompt: Prompt | None = None):
        super().__init__(f"step {step}: {summary}")
        self.step = step
        self.kind = kind
        self.summary = summary
        self.prompt = prompt


class RecordingEnded(Exception):  # noqa: N818 - a signal, like StopIteration
    """An unfinished session (still running, or its events cut short) ran out of record."""


class ReplayAborted(Exception):
    """The replay could not go on for a reason outside the recording (the live LLM failed)."""


class ReplayLLM:
    """Answers step k with the recorded reply of step k, after checking that the prompt the
    loop built is the recorded one. With ``live`` (another model behind the LLM gateway), it
    also asks that model and stops at the first answer that differs from the recorded one."""

    def __init__(self, recording: Recording, live: LLMPort | None = None) -> None:
        self._recording = recording
        self._live = live
        self.prompts: list[Prompt] = []
        # Steps whose prompt (and live answer, if asked) matched the recording.
        self.verified = 0

    @property
    def current_step(self) -> int:
        return len(self.prompts)

    async def complete(
        self,
        ctx: RequestContext,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        sampling: Sampling | None = None,
    ) -> LLMReply:
        prompt = Prompt.of(messages, tools)
        self.prompts.append(prompt)
        step = len(self.prompts)
        steps = self._recording.steps
        if step > len(steps):
            self._raise_recorded_failure(step)
        recorded = steps[step - 1]
        if prompt.digest != recorded.prompt_digest:
            raise Diverged(step, "prompt", "the prompt differs from the recorded one", prompt)
        if self._live is not None:
            await self._ask_live(step, ctx, prompt, recorded.message)
        self.verified = step
        before = steps[step - 2].usage if step > 1 else Usage()
        return LLMReply(message=recorded.message, usage=_minus(recorded.usage, before))

    def _raise_recorded_failure(self, step: int) -> None:
        """Past the recorded steps: the session failed here (the LLM or the catalog answered
        with an error), so fail the same way; anything else means the loop went further."""
        terminal = self._recording.terminal
        if terminal.kind == "failed" and terminal.reason == "error" and terminal.iteration == step:
            raise KeelError(terminal.error)
        if terminal.kind == "unfinished":
            raise RecordingEnded
        raise Diverged(
            step,
            "steps",
            f"the loop asked the model for step {step}, "
            f"but the session had {len(self._recording.steps)} step(s)",
        )

    async def _ask_live(
        self, step: int, ctx: RequestContext, prompt: Prompt, recorded: ChatMessage
    ) -> None:
        assert self._live is not None
        try:
            reply = await self._live.complete(ctx, prompt.messages, prompt.tools)
        except KeelError as exc:
            raise ReplayAborted(f"the LLM gateway failed at step {step}: {exc}") from exc
        if answer_key(reply.message) != answer_key(recorded):
            summary = (
                f"the model's answer differs from the recorded one\n"
                f"    recorded: {describe_answer(recorded)}\n"
                f"    now:      {describe_answer(reply.message)}"
            )
            raise Diverged(step, "answer", summary, prompt)


class ReplayTools:
    """The recorded catalog, and Execute answered by idempotency key from the recording."""

    def __init__(self, recording: Recording, steps: ReplayLLM) -> None:
        self._recording = recording
        self._steps = steps

    async def list_tools(self, profile: str) -> list[ToolSpec]:
        return list(self._recording.catalog)

    async def execute(
        self,
        ctx: RequestContext,
        call: ToolCall,
        idempotency_key: str,
        approval_id: str = "",
        *,
        task_text: str = "",
    ) -> ToolOutcome:
        table = self._recording.approved_outcomes if approval_id else self._recording.first_outcomes
        outcome = table.get(idempotency_key)
        if outcome is None:
            if self._recording.terminal.kind == "unfinished":
                raise RecordingEnded
            raise Diverged(
                self._steps.current_step,
                "tool",
                f"the loop called {call.name} as {idempotency_key}, which the session never ran",
            )
        return outcome


@dataclass
class ReplayMemory:
    """Retrieval answers what the session injected; nothing is stored."""

    items: list[str]

    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]:
        return list(self.items)

    async def store(
        self, ctx: RequestContext, content: str, memory_type: MemoryType, metadata: dict[str, str]
    ) -> str:
        return ""


@dataclass
class ReplaySink:
    """Keeps the replayed events in memory (nothing reaches Kafka)."""

    events: list[TaskProgress] = field(default_factory=list)
    approvals: list[ApprovalRequested] = field(default_factory=list)
    thought: int = 0
    results: int = 0

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None:
        self.events.append(event)
        if event.kind == "thought":
            self.thought, self.results = event.iteration, 0
        elif event.kind == "tool_result" and event.detail.get("status") != "needs_approval":
            self.results += 1

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None:
        self.approvals.append(request)


@dataclass
class ReplayCancel:
    """Raised where the session was cancelled: once the replay has reached the same thought
    and number of tool results (a cancel of a parked session is applied by the engine)."""

    point: CancelPoint | None
    sink: ReplaySink

    def requested(self, session_id: str) -> str | None:
        point = self.point
        if point is None or point.parked:
            return None
        if (self.sink.thought, self.sink.results) >= (point.iteration, point.results):
            return point.reason
        return None


def answer_key(message: ChatMessage) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What counts as the same answer: the tool calls with their arguments (ids and key
    order aside) when there are calls; else the final content."""
    if message.tool_calls:
        return "", tuple((c.name, _normal_arguments(c.arguments_json)) for c in message.tool_calls)
    return " ".join(message.content.split()), ()


def describe_answer(message: ChatMessage) -> str:
    if message.tool_calls:
        calls = (f"{c.name} {_normal_arguments(c.arguments_json)}" for c in message.tool_calls)
        return f"calls {', '.join(calls)}"
    text = " ".join(message.content.split())
    return repr(text if len(text) <= 160 else text[:159] + "…")


def _normal_arguments(arguments_json: str) -> str:
    try:
        return json.dumps(json.loads(arguments_json or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        return arguments_json


def _minus(total: Usage, before: Usage) -> Usage:
    return Usage(
        prompt_tokens=total.prompt_tokens - before.prompt_tokens,
        completion_tokens=total.completion_tokens - before.completion_tokens,
        cost_usd=total.cost_usd - before.cost_usd,
    )
