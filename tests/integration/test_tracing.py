"""One task's trace across all six services, exported over real OTLP/gRPC.

The session stack exports spans to the ``otlp`` fixture's receiver. A task that needs an
approval touches every service: memory (recall at start), the LLM gateway, the tool gateway,
policy, approval (the request on Kafka) and the agent loop itself; the reviewer decides
between the two halves, so the trace must also survive a session that parks and resumes.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack
from keel_clients import ApprovalClient, CallOptions, open_channel
from keel_contracts.events import Envelope, TaskCompleted, TaskSubmitted
from keel_contracts.topics import TASKS
from keel_core.bus.producer import EventProducer
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent, trace_id_of
from tests.integration.chaos import Watcher
from tests.otlp import ReceivedSpan, SpanCollector

pytestmark = pytest.mark.stack

SERVICES = {"agent-loop", "llm-gateway", "tool-gateway", "policy", "memory", "approval"}
SERVER, CLIENT, CONSUMER = 2, 3, 5  # OTLP SpanKind values


async def submit(kafka: KafkaSettings, goal: str) -> tuple[str, str]:
    session_id, traceparent = uuid.uuid4().hex, new_traceparent()
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        task = TaskSubmitted(goal=goal)
        envelope = Envelope.wrap(task, source="test", session_id=session_id, trace=traceparent)
        await producer.publish(TASKS, envelope)
    finally:
        await producer.stop()
    return session_id, trace_id_of(traceparent)


async def approve(stack: LocalStack, approval_id: str) -> None:
    async with open_channel(stack.target("approval")) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
        async with asyncio.timeout(30):
            while True:
                listed = await approvals.list()
                if approval_id in {a.id for a in listed}:
                    break
                await asyncio.sleep(0.2)
        await approvals.resolve(approval_id, "approve", reviewer="alice", comment="ok")


def named(spans: list[ReceivedSpan], prefix: str, service: str = "") -> list[ReceivedSpan]:
    return [s for s in spans if s.name.startswith(prefix) and (not service or s.service == service)]


def parent_of(spans: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan:
    return next(s for s in spans if s.span_id == span.parent_id)


async def test_one_task_is_one_trace_across_all_six_services(
    stack: LocalStack, kafka: KafkaSettings, otlp: SpanCollector
) -> None:
    async with SessionFollower(kafka, start="end") as follower:
        session_id, trace_id = await submit(kafka, "Email bob@example.com: traces are on")
        watcher = Watcher(follower, session_id)
        await watcher.until("approval_requested")
        await approve(stack, watcher.progress("approval_requested")[0].detail["approval_id"])
        result = await watcher.finished()
        watcher.stop()
    assert result.parse(TaskCompleted).answer

    # The second agent run's span ends with the session: it may come in a later batch.
    spans = await otlp.wait_for(
        trace_id, SERVICES, until=lambda s: len(named(s, "invoke_agent", "agent-loop")) == 2
    )
    assert {s.service for s in spans} >= SERVICES
    # Nothing of this session leaked into another trace.
    assert not [
        s
        for s in otlp.spans
        if s.attributes.get("keel.session.id") == session_id and s.trace_id != trace_id
    ]

    # GenAI conventions on the agent's own spans.
    agents = named(spans, "invoke_agent", "agent-loop")
    assert len(agents) == 2, "one run before the approval, one after"
    assert all(a.attributes["gen_ai.conversation.id"] == session_id for a in agents)
    chats = named(spans, "chat", "agent-loop")
    assert chats
    assert all(c.attributes["gen_ai.operation.name"] == "chat" for c in chats)
    assert all(c.kind == CLIENT and c.attributes["gen_ai.usage.input_tokens"] > 0 for c in chats)
    tool = named(spans, "execute_tool send_email", "agent-loop")
    assert tool
    assert tool[0].attributes["gen_ai.tool.name"] == "send_email"
    assert named(spans, "step 1", "agent-loop")
    assert named(spans, "retrieval keel.memory", "agent-loop")

    # Context crosses gRPC: each server span hangs off the calling span in the other process.
    llm_server = named(spans, "keel.llm.v1.LLMGateway/Complete", "llm-gateway")
    assert llm_server
    assert parent_of(spans, llm_server[0]).name.startswith("chat")
    assert llm_server[0].attributes["gen_ai.provider.name"] == "scripted"
    assert llm_server[0].attributes["gen_ai.usage.input_tokens"] > 0
    policy_server = named(spans, "keel.policy.v1.PolicyService/Evaluate", "policy")
    assert policy_server
    decision = parent_of(spans, policy_server[0])
    assert (decision.service, decision.name) == ("tool-gateway", "policy decision")
    assert {d.attributes["keel.policy.decision"] for d in named(spans, "policy decision")} >= {
        "require_approval"
    }
    memory_server = named(spans, "keel.memory.v1.MemoryService/Retrieve", "memory")
    assert memory_server
    assert parent_of(spans, memory_server[0]).service == "agent-loop"

    # ... and Kafka: the approval service consumed the request within the session's trace.
    consumed = named(spans, "process keel.approval.requests", "approval")
    assert consumed
    assert consumed[0].kind == CONSUMER

    # The person's time is a span of its own, from parking to the decision.
    waits = named(spans, "approval wait", "agent-loop")
    assert len(waits) == 1
    assert waits[0].attributes["keel.approval.outcome"] == "approved"
    assert waits[0].end_ns > waits[0].start_ns
