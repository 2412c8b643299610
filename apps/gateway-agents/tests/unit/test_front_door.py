"""The front door client against a recording AgentService on loopback: what the agent loop is
sent (the caller's own token, on every call) and what a run still going at the deadline gives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from keel_agents_server.front_door import AgentFrontDoor

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_core.grpc.client import insecure_channel


class RecordingAgentService(agent_pb2_grpc.AgentServiceServicer):
    """Submit answers "s1"; StreamEvents sends one event, then ends (``finish``) or hangs."""

    def __init__(self, finish: bool) -> None:
        self.finish = finish
        self.tokens: list[tuple[str, str]] = []

    def _record(self, method: str, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        self.tokens.append((method, str(metadata.get("authorization", ""))))

    async def Submit(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Submit", context)
        return agent_pb2.SubmitResponse(session_id="s1")

    async def StreamEvents(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("StreamEvents", context)
        yield agent_pb2.TaskEvent(session_id="s1", type="started")
        if not self.finish:
            await asyncio.Event().wait()  # a session that never ends (cancelled by the client)

    async def Get(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Get", context)
        done = (
            agent_pb2.SESSION_STATUS_COMPLETED if self.finish else agent_pb2.SESSION_STATUS_RUNNING
        )
        return agent_pb2.GetResponse(
            session_id="s1", status=done, answer="42" if self.finish else ""
        )


async def _serve(service: RecordingAgentService) -> AsyncIterator[AgentFrontDoor]:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = insecure_channel(f"127.0.0.1:{port}")
    try:
        yield AgentFrontDoor(channel, run_timeout_s=0.5)
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def finishing() -> AsyncIterator[tuple[RecordingAgentService, AgentFrontDoor]]:
    service = RecordingAgentService(finish=True)
    async for front_door in _serve(service):
        yield service, front_door


@pytest.fixture
async def hanging() -> AsyncIterator[tuple[RecordingAgentService, AgentFrontDoor]]:
    service = RecordingAgentService(finish=False)
    async for front_door in _serve(service):
        yield service, front_door


async def test_every_call_carries_the_callers_own_token(
    finishing: tuple[RecordingAgentService, AgentFrontDoor],
) -> None:
    service, front_door = finishing
    seen: list[str] = []

    async def on_event(event: object) -> None:
        seen.append(getattr(event, "type", ""))

    view = await front_door.run("caller-jwt", "What is 6 * 7?", on_event=on_event)
    assert (view.status, view.answer) == ("completed", "42")
    assert seen == ["started"]
    assert service.tokens == [
        ("Submit", "Bearer caller-jwt"),
        ("StreamEvents", "Bearer caller-jwt"),
        ("Get", "Bearer caller-jwt"),
    ]


async def test_no_call_is_made_without_a_token(
    finishing: tuple[RecordingAgentService, AgentFrontDoor],
) -> None:
    service, front_door = finishing
    with pytest.raises(ValueError, match="caller's token"):
        await front_door.get("", "s1")
    assert service.tokens == []


async def test_a_run_still_going_at_the_deadline_comes_back_running(
    hanging: tuple[RecordingAgentService, AgentFrontDoor],
) -> None:
    _, front_door = hanging
    view = await front_door.run("caller-jwt", "forever")
    assert (view.session_id, view.status) == ("s1", "running")
