"""Submitting tasks: straight to Kafka (``keel.tasks``) or through ``AgentService.Submit``."""

from __future__ import annotations

import uuid

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_contracts.events import Envelope, TaskSubmitted
from keel_contracts.topics import TASKS
from keel_core.bus.producer import EventProducer
from keel_core.grpc import call_with_errors, insecure_channel
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent


async def publish_task(settings: KafkaSettings, task: TaskSubmitted, session_id: str = "") -> str:
    session_id = session_id or uuid.uuid4().hex
    producer = EventProducer(settings, "cli")
    await producer.start()
    try:
        envelope = Envelope.wrap(
            task, source="keel-cli", session_id=session_id, trace=new_traceparent()
        )
        await producer.publish(TASKS, envelope)
    finally:
        await producer.stop()
    return session_id


async def submit_via_grpc(target: str, task: TaskSubmitted, timeout_s: float = 10.0) -> str:
    async with insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        request = agent_pb2.SubmitRequest(
            goal=task.goal,
            agent_profile=task.agent_profile,
            tenant=task.tenant,
            max_iterations=task.max_iterations,
            metadata=task.metadata,
        )
        reply = await call_with_errors(lambda: stub.Submit(request, timeout=timeout_s))
    return str(reply.session_id)
