"""A finished (or parked) session as recorded on Kafka, in the shape a replay consumes.

Built from the session's progress events (``keel.task-events``), its task (``keel.tasks`` or
``keel.subtasks``) and the tool gateway's ledger (``keel.tool-results``). Pure: the Kafka
reading lives in ``source.py``, so the engine is tested over events made in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    ToolOutcome,
    ToolSpec,
    Usage,
)
from keel_contracts.events import ApprovalDecided, TaskProgress, TaskSubmitted, ToolResultRecorded

TerminalKind = Literal["completed", "failed", "cancelled", "parked", "unfinished"]


class NotReplayable(Exception):
    """The recording lacks what a faithful replay needs (an older session, expired topics)."""


class RecordedStep(BaseModel):
    """One LLM call: what the model answered and digests of the prompt it was sent."""

    iteration: int
    message: ChatMessage
    prompt_digest: str
    tools_digest: str
    message_digests: list[str]
    # Cumulative usage of the session after this call (the step's own is the difference).
    usage: Usage = Field(default_factory=Usage)
    tools: list[ToolSpec] | None = None


class CancelPoint(BaseModel):
    """Where the session was cancelled: after the thought of ``iteration`` and ``results`` of
    its tool results (iteration 0: before the first step)."""

    reason: str
    iteration: int
    results: int
    # Cancelled while waiting for an approval (``AgentLoop.cancel`` on the parked session).
    parked: bool = False


class Terminal(BaseModel):
    kind: TerminalKind
    iteration: int = 0
    reason: str = ""
    error: str = ""


class Recording(BaseModel):
    session_id: str
    state: AgentState
    memories: list[str]
    system_prompt_sha256: str = ""
    steps: list[RecordedStep]
    catalog: list[ToolSpec]
    # What Execute answered for each idempotency key: first without an approval, then with one.
    first_outcomes: dict[str, ToolOutcome] = Field(default_factory=dict)
    approved_outcomes: dict[str, ToolOutcome] = Field(default_factory=dict)
    # Keys whose output only the event's preview kept (no ledger entry): a replay may differ.
    clipped_keys: list[str] = Field(default_factory=list)
    decisions: dict[str, ApprovalDecided] = Field(default_factory=dict)
    cancel: CancelPoint | None = None
    terminal: Terminal

    def initial_state(self) -> AgentState:
        return self.state.model_copy(deep=True)


def build_recording(
    session_id: str,
    task: TaskSubmitted | None,
    events: Iterable[TaskProgress],
    ledger: Mapping[str, ToolResultRecorded],
) -> Recording:
    """Raises ``NotReplayable`` when the events do not carry what replay needs."""
    progress = list(events)
    started = next((e for e in progress if e.kind == "started"), None)
    if started is None:
        raise NotReplayable(f"no 'started' event for session {session_id} on keel.task-events")
    steps = _steps(progress)
    catalog = next((s.tools for s in steps if s.tools is not None), None)
    if steps and catalog is None:
        raise NotReplayable("the session was recorded before replay support (no tool catalog)")
    first, approved, clipped = _outcomes(progress, ledger)
    return Recording(
        session_id=session_id,
        state=_initial_state(session_id, task, started),
        memories=_memories(started),
        system_prompt_sha256=str(started.detail.get("system_prompt_sha256", "")),
        steps=steps,
        catalog=catalog or [],
        first_outcomes=first,
        approved_outcomes=approved,
        clipped_keys=clipped,
        decisions=_decisions(progress),
        cancel=_cancel_point(progress),
        terminal=_terminal(progress),
    )


def _initial_state(
    session_id: str, task: TaskSubmitted | None, started: TaskProgress
) -> AgentState:
    detail = started.detail
    goal = task.goal if task is not None else str(detail.get("goal", ""))
    if task is None and goal.endswith(" more chars]"):
        raise NotReplayable("the task has left keel.tasks and the event kept only part of its goal")
    return AgentState(
        session_id=session_id,
        goal=goal,
        agent_id=task.agent_id if task is not None else "agent",
        agent_profile=str(detail.get("agent_profile", task.agent_profile if task else "default")),
        tenant=task.tenant if task is not None else "default",
        max_iterations=int(detail.get("max_iterations", task.max_iterations if task else 8)),
        token_budget=detail.get("token_budget"),
        cost_budget_usd=detail.get("cost_budget_usd"),
        metadata=dict(task.metadata) if task is not None else {},
    )


def _memories(started: TaskProgress) -> list[str]:
    recorded = started.detail.get("memories")
    if isinstance(recorded, list):
        return [str(item) for item in recorded]
    if started.detail.get("memory_items", 0):
        raise NotReplayable("the session was recorded before replay support (memory not kept)")
    return []


def _steps(progress: list[TaskProgress]) -> list[RecordedStep]:
    """The last thought of each iteration (a session resumed after a crash re-runs the
    iteration it was in; the later run is the one that continued)."""
    by_iteration: dict[int, RecordedStep] = {}
    for event in progress:
        if event.kind != "thought":
            continue
        if "message" not in event.detail:
            raise NotReplayable("the session was recorded before replay support (no messages)")
        try:
            by_iteration[event.iteration] = RecordedStep(iteration=event.iteration, **event.detail)
        except ValidationError as exc:
            raise NotReplayable(f"unreadable thought of step {event.iteration}: {exc}") from exc
    steps = [by_iteration[i] for i in sorted(by_iteration)]
    if [s.iteration for s in steps] != list(range(1, len(steps) + 1)):
        raise NotReplayable("the recorded steps are not contiguous (events missing)")
    return steps


def _outcomes(
    progress: list[TaskProgress], ledger: Mapping[str, ToolResultRecorded]
) -> tuple[dict[str, ToolOutcome], dict[str, ToolOutcome], list[str]]:
    """Per idempotency key: the first answer of Execute and the answer once approved. The
    ledger holds whole outputs; events hold previews, so the ledger wins where it has the key."""
    first: dict[str, ToolOutcome] = {}
    done: dict[str, ToolOutcome] = {}
    for event in progress:
        detail = event.detail
        key = str(detail.get("idempotency_key", ""))
        if event.kind != "tool_result" or not key:
            continue
        outcome = _outcome_of(detail)
        if outcome.status == "needs_approval":
            first.setdefault(key, outcome)
        else:
            done[key] = outcome
    clipped: list[str] = []
    for key, outcome in done.items():
        stored = ledger.get(key)
        if stored is not None:
            done[key] = ToolOutcome(
                status=stored.status,
                output=stored.output,
                error=stored.error,
                rule_id=stored.rule_id,
            )
        elif outcome.output.endswith(" more chars]"):
            clipped.append(key)
    approved = {key: done[key] for key in first if key in done}
    for key, outcome in done.items():
        first.setdefault(key, outcome)
    return first, approved, clipped


def _outcome_of(detail: dict[str, Any]) -> ToolOutcome:
    try:
        return ToolOutcome(
            status=detail.get("status", "error"),
            output=str(detail.get("output") or ""),
            error=str(detail.get("error") or ""),
            rule_id=str(detail.get("rule_id") or ""),
        )
    except ValidationError as exc:
        raise NotReplayable(f"unreadable tool result: {exc}") from exc


def _decisions(progress: list[TaskProgress]) -> dict[str, ApprovalDecided]:
    decided: dict[str, ApprovalDecided] = {}
    for event in progress:
        if event.kind == "approval_decided":
            detail = event.detail
            decided[str(detail["approval_id"])] = ApprovalDecided(
                approval_id=str(detail["approval_id"]),
                outcome=detail["outcome"],
                reviewer=str(detail.get("reviewer", "")),
                comment=str(detail.get("comment", "")),
            )
    return decided


def _cancel_point(progress: list[TaskProgress]) -> CancelPoint | None:
    results = 0
    last_thought = 0
    parked = False
    for event in progress:
        if event.kind == "thought":
            last_thought, results = event.iteration, 0
        elif event.kind == "tool_result" and event.iteration == last_thought:
            if event.detail.get("status") != "needs_approval":
                results += 1
        elif event.kind in ("approval_requested", "approval_decided"):
            parked = event.kind == "approval_requested"
        elif event.kind == "cancelled":
            reason = str(event.detail.get("error", "")).removeprefix("cancelled: ")
            return CancelPoint(
                reason=reason, iteration=last_thought, results=results, parked=parked
            )
    return None


def _terminal(progress: list[TaskProgress]) -> Terminal:
    """How the recording ends: the last event that is not bookkeeping decides."""
    for event in reversed(progress):
        detail = event.detail
        if event.kind in ("state", "resumed", "history_trimmed"):
            continue
        if event.kind == "completed":
            return Terminal(kind="completed", iteration=event.iteration)
        if event.kind in ("failed", "cancelled"):
            return Terminal(
                kind="failed" if event.kind == "failed" else "cancelled",
                iteration=event.iteration,
                reason=str(detail.get("reason", "")),
                error=str(detail.get("error", "")),
            )
        if event.kind == "approval_requested":
            return Terminal(kind="parked", iteration=event.iteration)
        return Terminal(kind="unfinished", iteration=event.iteration)
    return Terminal(kind="unfinished")
