"""Re-run a recorded session through the real agent loop and say whether, and where, it
would go differently today.

The loop gets replay ports (``ports.py``): the recorded replies, tool results and memory, no
Kafka. The first difference stops the replay: a prompt whose digest is not the recorded one,
a live model's answer that is not the recorded one, a tool call the session never made, or a
different ending.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel_agent_loop.domain.loop import AgentLoop, LoopConfig
from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.domain.ports import LLMPort
from keel_agent_loop.domain.prompts import same_call
from keel_agent_loop.replay.ports import (
    Diverged,
    Prompt,
    RecordingEnded,
    ReplayCancel,
    ReplayLLM,
    ReplayMemory,
    ReplaySink,
    ReplayTools,
)
from keel_agent_loop.replay.recording import Recording, Terminal
from keel_contracts.events import ApprovalDecided


@dataclass(frozen=True)
class Divergence:
    step: int
    kind: str
    summary: str
    # The prompt the loop built at ``step`` (prompt and answer divergences).
    prompt: Prompt | None = None


@dataclass(frozen=True)
class ReplayReport:
    steps: int
    ending: Terminal
    divergence: Divergence | None
    prompts: list[Prompt]

    @property
    def identical(self) -> bool:
        return self.divergence is None


async def replay(
    recording: Recording, config: LoopConfig, live: LLMPort | None = None
) -> ReplayReport:
    """Raises ``ReplayAborted`` when the live model fails (nothing to compare)."""
    llm = ReplayLLM(recording, live)
    sink = ReplaySink()
    loop = AgentLoop(
        llm,
        ReplayTools(recording, llm),
        ReplayMemory(recording.memories),
        sink,
        config,
        cancels=ReplayCancel(recording.cancel, sink),
    )
    state = recording.initial_state()
    try:
        await _drive(loop, state, recording)
    except RecordingEnded:
        return ReplayReport(llm.verified, recording.terminal, None, llm.prompts)
    except Diverged as exc:
        stopped = Divergence(exc.step, exc.kind, exc.summary, exc.prompt)
        return ReplayReport(llm.verified, ending_of(state), stopped, llm.prompts)
    ending = ending_of(state)
    divergence = None
    if not same_ending(ending, recording.terminal):
        divergence = Divergence(
            llm.verified,
            "ending",
            f"the session ends {describe_ending(ending)}; "
            f"it ended {describe_ending(recording.terminal)}",
        )
    return ReplayReport(llm.verified, ending, divergence, llm.prompts)


async def _drive(loop: AgentLoop, state: AgentState, recording: Recording) -> None:
    """Run, and feed recorded decisions to every approval the session parked on."""
    await loop.run(state)
    while state.status == "waiting_for_approval" and state.pending_approval is not None:
        decision = _recorded_decision(recording, state)
        if decision is not None:
            await loop.decide(state, decision)
            continue
        if recording.cancel is not None and recording.cancel.parked:
            await loop.cancel(state, recording.cancel.reason)
        return


def _recorded_decision(recording: Recording, state: AgentState) -> ApprovalDecided | None:
    """The recorded decision on the parked call. Approval ids are random, so the replay parked
    under another id than the recording did (the key-derived prefix matches): the parked call
    takes the recorded id back, so what the model reads of the decision is what it read."""
    pending = state.pending_approval
    if pending is None:
        return None
    for recorded, decision in recording.decisions.items():
        if same_call(recorded, pending.approval_id):
            state.pending_approval = pending.model_copy(update={"approval_id": recorded})
            return decision
    return None


def ending_of(state: AgentState) -> Terminal:
    if state.status == "completed":
        return Terminal(kind="completed", iteration=state.iteration)
    if state.status in ("failed", "cancelled"):
        return Terminal(
            kind="failed" if state.status == "failed" else "cancelled",
            iteration=state.iteration,
            reason=state.failure_reason or "",
            error=state.error,
        )
    if state.status == "waiting_for_approval":
        return Terminal(kind="parked", iteration=state.iteration)
    return Terminal(kind="unfinished", iteration=state.iteration)


def same_ending(replayed: Terminal, recorded: Terminal) -> bool:
    """An unfinished recording (still running, or cut short) matches wherever the replay ran
    out of recorded steps; otherwise kind, iteration and failure must agree."""
    if recorded.kind == "unfinished":
        return True
    return (replayed.kind, replayed.iteration, replayed.reason, replayed.error) == (
        recorded.kind,
        recorded.iteration,
        recorded.reason,
        recorded.error,
    )


def describe_ending(ending: Terminal) -> str:
    if ending.kind == "completed":
        return f"completed at step {ending.iteration}"
    if ending.kind == "parked":
        return f"waiting for an approval at step {ending.iteration}"
    if ending.kind == "cancelled":
        return f"cancelled at step {ending.iteration}: {ending.error}"
    if ending.kind == "failed":
        return f"failed ({ending.reason}) at step {ending.iteration}: {ending.error}"
    return f"unfinished at step {ending.iteration}"
