"""Multi-agent plans across real agent-loop workers on the real broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keel_agent_loop.plans import MODEL_PLAN_LIMITS, plan_from_call
from keel_cli.follow import SessionFollower
from keel_cli.plans import publish_plan
from keel_cli.stack import LocalStack
from keel_clients import CallOptions, LLMClient, open_channel
from keel_contracts.chat import ChatMessage, RequestContext
from keel_contracts.events import PlanNode, PlanSpec, TaskCompleted, TaskFailed, TaskProgress
from keel_core.settings import KafkaSettings
from tests.integration.helpers import run_task

pytestmark = pytest.mark.stack


async def keel(
    kafka: KafkaSettings, *args: str, stack: LocalStack | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "keel_cli", *args],
            env={**os.environ, "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        logs = stack.log_tail("agent-loop", 80) if stack else ""
        raise AssertionError(f"keel {args} hung; output: {exc.stdout!r}\n{logs}") from exc


def plan_id_of(stdout: str) -> str:
    return next(line.split()[1] for line in stdout.splitlines() if line.startswith("plan "))


async def test_a_debate_gives_each_stance_its_own_answer_and_the_verdict_cites_them(
    stack: LocalStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    question = "Should we ship on Friday?"
    done = await keel(kafka, "plan", "debate", question, "--agents", "3", stack=stack)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = done.stdout[done.stdout.index("answer: ") :].split("\n(timeline:")[0]
    assert answer.startswith("answer: Verdict:")
    # Each debater answered from its own stance (persona in its system prompt), and the judge
    # read every answer labelled with the stance that gave it.
    said = {
        line.split("]")[0].lstrip("["): line.split("): ", 1)[1]
        for line in answer.splitlines()
        if line.startswith("[")
    }
    assert set(said) == {"strict", "liberal", "risk-focused"}
    assert len(set(said.values())) == 3
    assert said["strict"].startswith("No: we should not ship on Friday")
    assert said["liberal"].startswith("Yes: we should ship on Friday")
    assert said["risk-focused"].startswith("Only with a rollback ready")
    assert "citing the stances by name" in answer
    plan_id = plan_id_of(done.stdout)

    svg = tmp_path / "timeline.svg"
    drawn = await keel(kafka, "plan", "timeline", plan_id, "--svg", str(svg))
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    for node in ("agent-1", "agent-2", "agent-3", "judge"):
        assert node in drawn.stdout
    assert svg.read_text().lstrip().startswith("<svg")


async def test_a_nested_plan_written_by_the_model_runs_across_real_workers(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    # Plan mode's path from the model's plan to its result: the scripted model writes a team
    # (a node that is itself a plan of two stances and a judge), the plan is checked against
    # the limits a model's plan is held to, and it runs on the real broker.
    async with open_channel(stack.target("llm-gateway")) as channel:
        llm = LLMClient(channel, CallOptions(timeout_s=10))
        asked = [ChatMessage(role="user", content="Team plan: Should we ship on Friday?")]
        reply = await llm.complete(RequestContext(session_id="planner"), asked)
    spec = plan_from_call(reply.message.content, MODEL_PLAN_LIMITS)
    assert spec.node("panel").kind == "plan"
    async with SessionFollower(kafka, start="end") as follower:
        plan_id = await publish_plan(kafka, spec)
        events = []

        async def collect() -> None:
            async for envelope in follower.events(plan_id):
                events.append(envelope)

        await asyncio.wait_for(collect(), 120)
    answer = events[-1].parse(TaskCompleted).answer
    assert answer.startswith("Summary: Verdict: Judge: cite the stances.")
    assert "[strict]: No: we should not ship on Friday" in answer
    assert "[liberal]: Yes: we should ship on Friday" in answer


async def test_plan_mode_parks_the_session_on_a_nested_plan_and_answers_from_it(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    # A "planner" session (a plan-mode profile by default) is offered the plan tool; the
    # scripted model calls it with a team, the session parks, the nested plan runs across
    # real workers, and its PlanFinished resumes the session, which answers from it.
    session_id, events = await run_task(
        kafka, "Plan mode: Should we ship on Friday?", timeout_s=120, agent_profile="planner"
    )
    answer = events[-1].parse(TaskCompleted).answer
    assert answer.startswith("From the plan: Summary: Verdict: Judge: cite the stances.")
    assert "[strict]: No: we should not ship on Friday" in answer
    assert "[liberal]: Yes: we should ship on Friday" in answer
    states = [
        e.parse(TaskProgress).detail.get("to")
        for e in events
        if e.type == TaskProgress.event_type and e.parse(TaskProgress).kind == "state"
    ]
    assert "waiting_for_plan" in states
    resumed = [
        e.parse(TaskProgress).detail
        for e in events
        if e.type == TaskProgress.event_type and e.parse(TaskProgress).kind == "resumed"
    ]
    assert resumed == [{"status": "waiting_for_plan", "iteration": 1, "trigger": "plan"}]
    drawn = await keel(kafka, "plan", "timeline", f"{session_id}.plan-1-0")
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    for node in ("panel", "strict", "liberal", "judge", "report"):
        assert node in drawn.stdout


async def test_a_pipeline_ends_with_the_last_stage_output(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    done = await keel(
        kafka, "plan", "pipeline", "What is 2 + 3?", "Summarise: {input}", stack=stack
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "answer: Summary: The answer is 5." in done.stdout


async def test_a_failed_node_cancels_its_dependents_and_fails_the_plan(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    spec = PlanSpec(
        goal="mixed",
        nodes=[
            PlanNode(id="doomed", goal="bench: run 5 no-op steps", max_iterations=2),
            PlanNode(id="after", goal="Summarise: {deps.doomed}", depends_on=["doomed"]),
            PlanNode(id="fine", goal="What is 1 + 1?"),
        ],
    )
    async with SessionFollower(kafka, start="end") as follower:
        plan_id = await publish_plan(kafka, spec)
        events = []

        async def collect() -> None:
            async for envelope in follower.events(plan_id):
                events.append(envelope)

        await asyncio.wait_for(collect(), 120)
    failed = events[-1].parse(TaskFailed)
    assert "doomed" in failed.error
    drawn = await keel(kafka, "plan", "timeline", plan_id)
    assert drawn.returncode == 0, drawn.stderr
    rows = {line.split()[0]: line for line in drawn.stdout.splitlines() if line.strip()}
    assert "cancelled" in rows.get("after", "")
    assert "succeeded" in rows.get("fine", "")


async def test_a_cyclic_plan_is_rejected_when_created(kafka: KafkaSettings, tmp_path: Path) -> None:
    plan = tmp_path / "cycle.yaml"
    plan.write_text(
        "goal: loop\nnodes:\n"
        "  - {id: a, goal: 'What is 1 + 1?', depends_on: [b]}\n"
        "  - {id: b, goal: 'What is 2 + 2?', depends_on: [a]}\n"
    )
    done = await keel(kafka, "plan", "submit", str(plan))
    assert done.returncode == 2
    assert "cycle" in done.stderr
