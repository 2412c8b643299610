"""The session's goal travels with every ``Execute`` as the task text: the trusted source the
tool gateway's provenance check tells apart from what tools returned."""

from __future__ import annotations

from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.adapters.patience import Patience, PatientTools
from keel_agent_loop.adapters.peers import CachedCatalogTools
from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, ToolOutcome
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_clients import ToolClient, open_channel
from keel_clients.testing import FakeToolGateway, serving
from keel_contracts.chat import RequestContext, ToolCall

GOAL = "Mail the minutes to bob@corp.example"


async def test_every_execute_carries_the_goal_as_task_text() -> None:
    llm = ScriptedLLM(
        [
            call_tools(("send_email", {"to": "bob@corp.example"}), ("clock", {})),
            call_tools(("clock", {})),
            answer("done"),
        ]
    )
    tools = FakeTools({"clock": ToolOutcome(status="ok", output="12:00")})
    loop = AgentLoop(llm, tools, FakeMemory(), RecordingSink(), LoopConfig("system"))
    await loop.run(AgentState(session_id="s1", goal=GOAL))
    assert [e.task_text for e in tools.executions] == [GOAL, GOAL, GOAL]


async def test_the_adapters_put_it_on_the_wire() -> None:
    fake = FakeToolGateway()
    call = ToolCall(id="c1", name="clock", arguments_json="{}")
    async with serving((fake, tool_pb2_grpc.add_ToolGatewayServicer_to_server)) as target:
        async with open_channel(target) as channel:
            tools = PatientTools(CachedCatalogTools(ToolClient(channel)), Patience(5.0, 0.1, 0.5))
            await tools.execute(RequestContext(session_id="s1"), call, "s1:1:0", task_text=GOAL)
            await tools.execute(RequestContext(session_id="s1"), call, "s1:1:1")
    assert [c.task_text for c in fake.calls] == [GOAL, ""]
