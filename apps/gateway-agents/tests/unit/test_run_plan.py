"""run_plan over MCP (the SDK's own client) and A2A (JSON-RPC over HTTP), against a recording
AgentService on a secured loopback server (mutual TLS + the authorization table, as the agent
loop serves): the plan goes as the caller's token through this server's own certificate, its
answer comes back, an unknown profile is refused before anything is sent, and the agent
loop's reason for refusing a plan reaches the caller."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import httpx2
import mcp_types
import pytest
from keel_agents_server import AgentsServerSettings, serving
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import CollectorRegistry

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_core import trust
from keel_core.grpc import GrpcServer, ServerSecurity
from keel_core.grpc.auth import current_principal, peer_identity
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import mint_token

PLAN = {"goal": "add", "nodes": [{"id": "solve", "goal": "{plan.goal}"}]}


@dataclass
class Seen:
    method: str
    tenant: str
    peer: str
    plan_json: str = ""


@dataclass
class RecordingPlans(agent_pb2_grpc.AgentServiceServicer):
    """SubmitPlan answers "p1" (INVALID_ARGUMENT for a plan with a cycle, as the agent loop
    does); GetPlan answers it completed with "42"; Get knows no session."""

    seen: list[Seen] = field(default_factory=list)
    knows_plans: bool = True

    def _record(self, method: str, context: grpc.aio.ServicerContext, plan: str = "") -> None:
        principal = current_principal()
        assert principal is not None
        assert principal.kind == "token"
        self.seen.append(Seen(method, principal.tenant, peer_identity(context), plan))

    async def SubmitPlan(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("SubmitPlan", context, request.plan_json)
        if "cycle" in request.plan_json:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid plan: cycle: a -> a")
        return agent_pb2.SubmitPlanResponse(plan_id="p1", nodes=1)

    async def GetPlan(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("GetPlan", context)
        if not self.knows_plans:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown plan {request.plan_id!r}")
        return agent_pb2.GetPlanResponse(
            plan_id=request.plan_id,
            status=agent_pb2.SESSION_STATUS_COMPLETED,
            answer="42",
            nodes_run=1,
        )

    async def Get(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._record("Get", context)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown session {request.session_id!r}")


def _material() -> trust.TrustMaterial:
    return trust.TrustMaterial(Path(os.environ["KEEL_TRUST_DIR"]))


def _token(tenant: str = "acme") -> str:
    return mint_token(
        _material().token_signing_key(), sub="ann", tenant=tenant, roles=["submitter"]
    )


@pytest.fixture
async def agents() -> AsyncIterator[tuple[RecordingPlans, str]]:
    """The recording agent loop and the agents server's base URL."""
    material = _material()
    service = RecordingPlans()
    security = ServerSecurity(
        material.tls_identity("agent-loop"), token_verifier(material, trust.TrustSettings())
    )
    name = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
    grpc_server = GrpcServer(
        "127.0.0.1",
        0,
        [(service, agent_pb2_grpc.add_AgentServiceServicer_to_server, name)],
        CollectorRegistry(),
        security,
    )
    await grpc_server.start()
    settings = AgentsServerSettings(
        port=0,
        agent_loop_target=f"127.0.0.1:{grpc_server.port}",
        profiles=["default", "researcher"],
        run_timeout_s=10,
        trust=trust.TrustSettings(dir=Path(os.environ["KEEL_TRUST_DIR"])),
    )
    try:
        async with serving(settings) as url:
            yield service, url
    finally:
        await grpc_server.stop(0)


@contextlib.asynccontextmanager
async def _mcp(url: str, token: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            yield client


def _text(result: mcp_types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, mcp_types.TextContent))


async def _a2a(url: str, params: dict[str, Any], method: str = "message/send") -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": "1", "method": method, "params": params}
    headers = {"authorization": f"Bearer {_token()}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        reply: dict[str, Any] = (await http.post("/a2a", json=body, headers=headers)).json()
    return reply


def _message(*parts: dict[str, Any], skill: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "messageId": "m1", "parts": list(parts)}
    if skill:
        message["metadata"] = {"skill": skill}
    return {"message": message}


async def test_mcp_run_plan_goes_as_the_caller_through_the_agents_server_identity(
    agents: tuple[RecordingPlans, str],
) -> None:
    service, url = agents
    async with _mcp(url, _token("acme")) as client:
        assert {"run_plan", "get_plan"} <= {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("run_plan", {"plan": json.dumps(PLAN)})
        assert not result.is_error, result.content
        assert result.structured_content == {
            "plan_id": "p1",
            "status": "completed",
            "answer": "42",
            "error": "",
            "nodes_run": 1,
        }
    assert [(s.method, s.tenant, s.peer) for s in service.seen] == [
        ("SubmitPlan", "acme", trust.AGENTS_SERVER),
        ("GetPlan", "acme", trust.AGENTS_SERVER),
    ]
    assert json.loads(service.seen[0].plan_json) == PLAN


async def test_mcp_run_plan_takes_yaml(agents: tuple[RecordingPlans, str]) -> None:
    service, url = agents
    yaml_plan = "goal: add\nnodes:\n  - id: solve\n    goal: '{plan.goal}'\n"
    async with _mcp(url, _token()) as client:
        result = await client.call_tool("run_plan", {"plan": yaml_plan})
    assert not result.is_error, result.content
    assert json.loads(service.seen[0].plan_json) == PLAN


async def test_mcp_a_plan_naming_an_unknown_profile_is_refused_before_any_call(
    agents: tuple[RecordingPlans, str],
) -> None:
    service, url = agents
    plan = {"nodes": [{"id": "a", "goal": "x", "agent_profile": "ghost"}]}
    async with _mcp(url, _token()) as client:
        refused = await client.call_tool("run_plan", {"plan": json.dumps(plan)})
    assert refused.is_error
    assert "unknown agent profile 'ghost'" in _text(refused)
    assert "offered: default, researcher" in _text(refused)
    assert service.seen == []


async def test_mcp_the_agent_loops_reason_for_refusing_a_plan_reaches_the_caller(
    agents: tuple[RecordingPlans, str],
) -> None:
    _, url = agents
    async with _mcp(url, _token()) as client:
        refused = await client.call_tool("run_plan", {"plan": '{"goal": "cycle", "nodes": []}'})
    assert refused.is_error
    assert "InvalidArgument" in _text(refused)
    assert "invalid plan: cycle: a -> a" in _text(refused)


async def test_a2a_a_data_part_runs_the_plan_and_tasks_get_reads_it(
    agents: tuple[RecordingPlans, str],
) -> None:
    service, url = agents
    reply = await _a2a(url, _message({"kind": "data", "data": {"plan": PLAN}}))
    task = reply["result"]
    assert (task["id"], task["status"]["state"]) == ("p1", "completed")
    assert task["artifacts"][0]["parts"][0]["text"] == "42"
    again = await _a2a(url, {"id": "p1"}, method="tasks/get")
    assert again["result"]["status"]["state"] == "completed"
    # tasks/get: not a session, so the plan of that id.
    assert [s.method for s in service.seen] == ["SubmitPlan", "GetPlan", "Get", "GetPlan"]


async def test_a2a_the_run_plan_skill_takes_the_plan_as_text(
    agents: tuple[RecordingPlans, str],
) -> None:
    service, url = agents
    reply = await _a2a(url, _message({"kind": "text", "text": json.dumps(PLAN)}, skill="run_plan"))
    assert reply["result"]["status"]["state"] == "completed"
    assert json.loads(service.seen[0].plan_json) == PLAN


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (
            {"nodes": [{"id": "a", "goal": "x", "agent_profile": "ghost"}]},
            "unknown agent profile 'ghost'",
        ),
        ({"goal": "cycle", "nodes": []}, "invalid plan: cycle: a -> a"),
    ],
)
async def test_a2a_a_plan_that_cannot_run_is_invalid_params_with_the_reason(
    agents: tuple[RecordingPlans, str], plan: dict[str, Any], reason: str
) -> None:
    _, url = agents
    reply = await _a2a(url, _message({"kind": "data", "data": {"plan": plan}}))
    assert "result" not in reply
    assert reply["error"]["code"] == -32602
    assert reason in reply["error"]["message"]


async def test_a2a_message_stream_of_a_plan_sends_the_task_then_the_answer(
    agents: tuple[RecordingPlans, str],
) -> None:
    _, url = agents
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "message/stream",
        "params": _message({"kind": "data", "data": {"plan": PLAN}}),
    }
    frames: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {_token()}"}
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        http.stream("POST", "/a2a", json=body, headers=headers) as reply,
    ):
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                frames.append(json.loads(line[6:])["result"])
    assert [f["kind"] for f in frames] == ["task", "artifact-update", "status-update"]
    assert frames[0]["status"]["state"] == "submitted"
    assert frames[1]["artifact"]["parts"][0]["text"] == "42"
    assert (frames[2]["final"], frames[2]["status"]["state"]) == (True, "completed")


async def test_a2a_tasks_get_of_an_unknown_id_is_still_the_sessions_not_found(
    agents: tuple[RecordingPlans, str],
) -> None:
    """The plan fallback changes nothing for an id that is neither: -32001 about the session."""
    service, url = agents
    service.knows_plans = False
    reply = await _a2a(url, {"id": "nobody"}, method="tasks/get")
    assert reply["error"]["code"] == -32001
    assert "unknown session 'nobody'" in reply["error"]["message"]
