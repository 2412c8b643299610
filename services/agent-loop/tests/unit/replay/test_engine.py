"""The replay engine over sessions recorded in memory by the real agent loop: identical when
nothing changed, and the first diverging step when a prompt, a tool result or an answer did."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, ToolOutcome, ToolSpec, Usage
from keel_agent_loop.domain.models import ChatMessage, LLMReply
from keel_agent_loop.domain.prompts import approval_id_for, same_call
from keel_agent_loop.replay import (
    NotReplayable,
    Recording,
    build_recording,
    replay,
    replay_and_explain,
)
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_contracts.errors import InvalidArgument
from keel_contracts.events import ApprovalDecided, TaskProgress, TaskSubmitted, ToolResultRecorded

SYSTEM = "You are a careful agent.\nUse tools when they help."
CONFIG = LoopConfig(SYSTEM, memory_token_budget=300)
CATALOG = [ToolSpec(name="calculator", description="arithmetic"), ToolSpec(name="send_email")]
GOAL = "What is (17 * 23) + 4?"


class CancelAfterFirstThought:
    def __init__(self, llm: ScriptedLLM) -> None:
        self._llm = llm

    def requested(self, session_id: str) -> str | None:
        return "operator said stop" if self._llm.calls else None


async def record(
    replies: list[LLMReply | Exception],
    outcomes: dict[str, Any] | None = None,
    *,
    memory: list[str] | None = None,
    config: LoopConfig = CONFIG,
    decide: str | None = None,
    cancel: bool = False,
    ledger: dict[str, ToolResultRecorded] | None = None,
) -> Recording:
    """Run a session through the real loop over fakes, then build its recording from the
    events as they would come back from Kafka (a JSON round trip)."""
    llm = ScriptedLLM(replies)
    tools = FakeTools(
        outcomes or {"calculator": ToolOutcome(status="ok", output="395")}, specs=CATALOG
    )
    tools.approved_outcomes["send_email"] = ToolOutcome(status="ok", output="queued")
    sink = RecordingSink()
    loop = AgentLoop(
        llm,
        tools,
        FakeMemory(items=memory or []),
        sink,
        config,
        cancels=CancelAfterFirstThought(llm) if cancel else None,
    )
    task = TaskSubmitted(goal=GOAL, agent_profile="default", max_iterations=5)
    state = await loop.run(
        AgentState(session_id="s1", goal=task.goal, max_iterations=task.max_iterations)
    )
    if decide is not None and state.pending_approval is not None:
        decision = ApprovalDecided(
            approval_id=state.pending_approval.approval_id, outcome=decide, reviewer="ann"
        )
        await loop.decide(state, decision)
    events = [TaskProgress.model_validate_json(e.model_dump_json()) for _, e in sink.events]
    return build_recording("s1", task, events, ledger or {})


def calculator_session() -> list[LLMReply | Exception]:
    return [
        call_tools(("calculator", {"expression": "(17 * 23) + 4"}), usage=Usage(prompt_tokens=9)),
        answer("The answer is 395.", usage=Usage(prompt_tokens=30, completion_tokens=5)),
    ]


async def test_an_unchanged_session_replays_identical() -> None:
    recording = await record(calculator_session())
    report = await replay(recording, CONFIG)
    assert report.identical
    assert report.steps == 2
    assert report.ending.kind == "completed"
    verdict = await replay_and_explain(recording, CONFIG)
    assert verdict.exit_code == 0
    assert verdict.lines[-1] == "replayed 2 steps, identical"


async def test_a_changed_system_prompt_diverges_at_step_1_with_a_diff_of_the_system_message() -> (
    None
):
    recording = await record(calculator_session())
    changed = dataclasses.replace(
        CONFIG, system_prompt="You are a pirate.\nUse tools when they help."
    )
    report = await replay(recording, changed)
    assert report.divergence is not None
    assert (report.divergence.step, report.divergence.kind) == (1, "prompt")
    assert report.steps == 0

    verdict = await replay_and_explain(recording, changed, baseline=CONFIG)
    assert verdict.exit_code == 1
    text = "\n".join(verdict.lines)
    assert "diverged at step 1: the prompt differs from the recorded one" in text
    assert "message 0 (system) differs:" in text
    assert "-You are a careful agent." in text
    assert "+You are a pirate." in text
    # Unchanged lines are context, not change.
    assert " Use tools when they help." in text


async def test_without_the_recorded_prompt_text_the_hashes_say_which_prompt_ran() -> None:
    recording = await record(calculator_session())
    changed = dataclasses.replace(CONFIG, system_prompt="You are a pirate.")
    verdict = await replay_and_explain(recording, changed)
    text = "\n".join(verdict.lines)
    assert "message 0 (system) differs:" in text
    assert "the system prompt is not the one the session ran with" in text
    assert "+ You are a pirate." in text


async def test_a_changed_tool_result_diverges_at_the_step_that_reads_it() -> None:
    recording = await record(calculator_session())
    key = "s1:1:0"
    assert recording.first_outcomes[key].output == "395"
    recording.first_outcomes[key] = ToolOutcome(status="ok", output="394")
    verdict = await replay_and_explain(recording, CONFIG, baseline=CONFIG)
    report = verdict.report
    assert report.divergence is not None
    assert (report.divergence.step, report.divergence.kind) == (2, "prompt")
    assert report.steps == 1
    # system, goal, the model's call, then the tool's answer: the fourth message.
    assert "message 3 (tool) differs:" in "\n".join(verdict.lines)


async def test_a_changed_model_answer_diverges_at_the_next_prompt() -> None:
    recording = await record(
        calculator_session()
        + [answer("unused")],  # the scripted model would have more to say; the loop stops
    )
    step = recording.steps[0]
    edited = step.message.model_copy(
        update={
            "tool_calls": (
                step.message.tool_calls[0].model_copy(
                    update={"arguments_json": '{"expression": "1+1"}'}
                ),
            )
        }
    )
    recording.steps[0] = step.model_copy(update={"message": edited})
    report = await replay(recording, CONFIG)
    assert report.divergence is not None
    assert (report.divergence.step, report.divergence.kind) == (2, "prompt")


class LiveModel:
    """Another model: answers like the recording except at ``differ_at``."""

    def __init__(self, recording: Recording, differ_at: int | None) -> None:
        self._recording = recording
        self._differ_at = differ_at
        self.asked = 0

    async def complete(
        self, ctx: Any, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> LLMReply:
        self.asked += 1
        if self.asked == self._differ_at:
            return answer("I think it is 400.")
        recorded = self._recording.steps[self.asked - 1].message
        # Same calls with other ids and key order: still the same answer.
        return LLMReply(
            message=recorded.model_copy(
                update={
                    "tool_calls": tuple(
                        c.model_copy(update={"id": f"other_{i}"})
                        for i, c in enumerate(recorded.tool_calls)
                    )
                }
            )
        )


async def test_a_live_model_that_answers_differently_is_reported_at_that_step() -> None:
    recording = await record(calculator_session())
    same = LiveModel(recording, differ_at=None)
    assert (await replay(recording, CONFIG, same)).identical
    assert same.asked == 2

    other = LiveModel(recording, differ_at=2)
    verdict = await replay_and_explain(recording, CONFIG, live=other)
    report = verdict.report
    assert report.divergence is not None
    assert (report.divergence.step, report.divergence.kind) == (2, "answer")
    text = "\n".join(verdict.lines)
    assert "recorded: 'The answer is 395.'" in text
    assert "now:      'I think it is 400.'" in text


async def test_a_live_model_that_calls_another_tool_differs_at_step_1() -> None:
    recording = await record(calculator_session())
    report = await replay(recording, CONFIG, LiveModel(recording, differ_at=1))
    assert report.divergence is not None
    assert (report.divergence.step, report.divergence.kind) == (1, "answer")
    assert 'calls calculator {"expression": "(17 * 23) + 4"}' in report.divergence.summary


async def test_injected_memory_is_replayed_and_a_smaller_memory_budget_diverges() -> None:
    recording = await record(calculator_session(), memory=["17 * 23 is 391", "be brief"])
    assert recording.memories == ["17 * 23 is 391", "be brief"]
    assert (await replay(recording, CONFIG)).identical
    tight = dataclasses.replace(CONFIG, memory_token_budget=6)
    verdict = await replay_and_explain(recording, tight, baseline=CONFIG)
    assert verdict.report.divergence is not None
    assert verdict.report.divergence.step == 1
    assert "message 2 (user) differs:" in "\n".join(verdict.lines)


async def test_a_session_that_waited_for_an_approval_replays_the_decision() -> None:
    needs = ToolOutcome(status="needs_approval", error="a person must approve", rule_id="mail")
    replies = [
        call_tools(("send_email", {"to": "bob@example.com"}), content="sending"),
        answer("Sent."),
    ]
    recording = await record(replies, {"send_email": needs}, decide="approved")
    [(approval, decision)] = recording.decisions.items()
    assert same_call(approval, approval_id_for("s1:1:0"))
    assert decision.outcome == "approved"
    assert recording.first_outcomes["s1:1:0"].status == "needs_approval"
    assert recording.approved_outcomes["s1:1:0"].output == "queued"
    report = await replay(recording, CONFIG)
    assert report.identical, report.divergence
    assert report.ending.kind == "completed"

    rejected = await record(replies, {"send_email": needs}, decide="rejected")
    assert (await replay(rejected, CONFIG)).identical


async def test_a_parked_session_replays_up_to_its_approval() -> None:
    needs = ToolOutcome(status="needs_approval", error="a person must approve")
    recording = await record(
        [call_tools(("send_email", {"to": "bob@example.com"}))], {"send_email": needs}
    )
    assert recording.terminal.kind == "parked"
    report = await replay(recording, CONFIG)
    assert report.identical
    assert report.ending.kind == "parked"


async def test_a_session_that_failed_on_the_model_fails_the_same_way() -> None:
    recording = await record([calculator_session()[0], InvalidArgument("llm-gateway refused")])
    assert recording.terminal.kind == "failed"
    report = await replay(recording, CONFIG)
    assert report.identical, report.divergence
    assert report.ending.error == "llm-gateway refused"


async def test_a_cancelled_session_stops_at_the_same_point() -> None:
    recording = await record(calculator_session(), cancel=True)
    assert recording.terminal.kind == "cancelled"
    report = await replay(recording, CONFIG)
    assert report.identical, report.divergence
    assert report.steps == 1
    assert report.ending.kind == "cancelled"


async def test_the_ledger_supplies_outputs_the_event_only_previewed() -> None:
    long_output = "x" * 2000
    outcomes = {"calculator": ToolOutcome(status="ok", output=long_output)}
    clipped = await record(calculator_session(), outcomes)
    assert clipped.clipped_keys == ["s1:1:0"]
    report = await replay(clipped, CONFIG)
    assert report.divergence is not None
    assert report.divergence.step == 2

    ledger = {
        "s1:1:0": ToolResultRecorded(
            idempotency_key="s1:1:0",
            tool="calculator",
            fingerprint="f",
            status="ok",
            output=long_output,
        )
    }
    whole = await record(calculator_session(), outcomes, ledger=ledger)
    assert whole.clipped_keys == []
    assert (await replay(whole, CONFIG)).identical


async def test_a_loop_that_would_take_more_steps_than_recorded_diverges() -> None:
    recording = await record(calculator_session())
    recording.steps[1] = recording.steps[1].model_copy(
        update={"message": recording.steps[0].message}
    )
    report = await replay(recording, CONFIG)
    assert report.divergence is not None
    # Step 2 now asks for the calculator again: a call the session never made.
    assert (report.divergence.step, report.divergence.kind) == (2, "tool")


async def test_sessions_recorded_before_replay_support_are_refused() -> None:
    old = [
        TaskProgress(kind="started", iteration=0, detail={"goal": GOAL, "memory_items": 0}),
        TaskProgress(kind="thought", iteration=1, detail={"content": "", "tool_calls": []}),
    ]
    with pytest.raises(NotReplayable, match="before replay support"):
        build_recording("s1", None, old, {})
    with pytest.raises(NotReplayable, match="no 'started' event"):
        build_recording("s1", None, old[1:], {})


async def test_a_session_still_running_replays_as_far_as_it_went() -> None:
    sink_events = await _events_of(calculator_session())
    cut = next(i for i, e in enumerate(sink_events) if e.kind == "tool_call")
    recording = build_recording("s1", None, sink_events[: cut + 1], {})
    assert recording.terminal.kind == "unfinished"
    report = await replay(recording, CONFIG)
    assert report.identical, report.divergence
    assert report.steps == 1


async def _events_of(replies: list[LLMReply | Exception]) -> list[TaskProgress]:
    sink = RecordingSink()
    loop = AgentLoop(ScriptedLLM(replies), FakeTools(specs=CATALOG), FakeMemory(), sink, CONFIG)
    await loop.run(AgentState(session_id="s1", goal=GOAL, max_iterations=5))
    return [e for _, e in sink.events]
