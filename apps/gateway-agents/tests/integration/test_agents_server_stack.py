"""The agents server on the running stack (six services as processes, real broker, scripted
model): a real MCP client (the official SDK's) and an A2A JSON-RPC client run an agent through
it, and each is turned away or kept to its own tenant exactly as a gRPC caller is."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types
import pytest
from keel_agents_server import AgentsServerSettings, serving
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from keel_cli.stack import LocalStack
from keel_core import trust
from keel_core.grpc.tokens import mint_token
from keel_core.trust import TrustSettings

pytestmark = pytest.mark.stack

GOAL = "What is (17 * 23) + 4?"


def _token(
    stack: LocalStack, sub: str, tenant: str, roles: tuple[str, ...] = ("submitter",)
) -> str:
    material = trust.TrustMaterial(stack.trust_dir)
    return mint_token(material.token_signing_key(), sub=sub, tenant=tenant, roles=roles)


@pytest.fixture
async def server(stack: LocalStack) -> AsyncIterator[str]:
    settings = AgentsServerSettings(
        port=0,
        agent_loop_target=stack.target("agent-loop"),
        profiles=["default"],
        run_timeout_s=60,
        trust=TrustSettings(dir=Path(stack.trust_dir)),
    )
    async with serving(settings) as url:
        yield url


@contextlib.asynccontextmanager
async def _mcp(url: str, token: str = "") -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP; the HTTP client (with the caller's token) is
    closed here, the SDK does not close one it was given."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            yield client


def _structured(result: mcp_types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_run_agent_over_mcp_returns_the_answer_with_progress(
    stack: LocalStack, server: str
) -> None:
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with _mcp(server, _token(stack, "ann", "acme")) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"run_agent", "get_session"} <= tools
        result = await client.call_tool("run_agent", {"goal": GOAL}, progress_callback=on_progress)
        session = _structured(result)
        assert session["status"] == "completed"
        assert "395" in session["answer"]
        again = _structured(
            await client.call_tool("get_session", {"session_id": session["session_id"]})
        )
        assert again["answer"] == session["answer"]
    assert any(m.startswith("started") for m in progress), progress


async def test_mcp_without_a_token_is_refused(server: str) -> None:
    """The SDK's client cannot even initialize: every request it sends is answered 401."""
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async with httpx2.AsyncClient(event_hooks={"response": [record]}) as http:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK raises a group of MCPError
            async with Client(streamable_http_client(f"{server}/mcp", http_client=http)) as c:
                await c.list_tools()
    assert statuses
    assert set(statuses) == {401}


async def test_a_tenant_cannot_read_another_tenants_session_over_mcp(
    stack: LocalStack, server: str
) -> None:
    async with _mcp(server, _token(stack, "ann", "acme")) as owner:
        session = _structured(await owner.call_tool("run_agent", {"goal": GOAL}))
    async with _mcp(server, _token(stack, "oscar", "other")) as stranger:
        hidden = await stranger.call_tool("get_session", {"session_id": session["session_id"]})
    assert hidden.is_error
    text = " ".join(c.text for c in hidden.content if isinstance(c, mcp_types.TextContent))
    assert "NotFound" in text
    # The answer (395) is not leaked; the error may echo the id asked about, whose random hex
    # can contain those digits.
    assert "395" not in text.replace(session["session_id"], "")


async def test_a2a_card_then_message_send_then_tasks_get(stack: LocalStack, server: str) -> None:
    acme = {"authorization": f"Bearer {_token(stack, 'ann', 'acme')}"}
    async with httpx.AsyncClient(base_url=server, timeout=60) as http:
        card = (await http.get("/.well-known/agent-card.json")).json()
        assert [s["id"] for s in card["skills"]] == ["default", "run_plan"]
        endpoint = card["url"]
        send = {
            "jsonrpc": "2.0",
            "id": "1",
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "role": "user",
                    "messageId": "m1",
                    "parts": [{"kind": "text", "text": GOAL}],
                    "metadata": {"skill": "default"},
                }
            },
        }
        assert (await http.post(endpoint, json=send)).status_code == 401
        task = (await http.post(endpoint, json=send, headers=acme)).json()["result"]
        assert task["kind"] == "task"
        assert task["status"]["state"] == "completed"
        assert "395" in task["artifacts"][0]["parts"][0]["text"]

        get = {"jsonrpc": "2.0", "id": "2", "method": "tasks/get", "params": {"id": task["id"]}}
        same = (await http.post(endpoint, json=get, headers=acme)).json()["result"]
        assert same["status"]["state"] == "completed"
        assert same["artifacts"] == task["artifacts"]

        other = {"authorization": f"Bearer {_token(stack, 'oscar', 'other')}"}
        hidden = (await http.post(endpoint, json=get, headers=other)).json()
        assert hidden["error"]["code"] == -32001
        assert "result" not in hidden


async def test_the_agent_loops_authorization_table_judges_the_forwarded_token(
    stack: LocalStack, server: str
) -> None:
    """A valid token without the submitter role passes this server's authentication but is
    refused by the agent loop (Submit admits submitter and operator): the call was made as the
    caller, not as a privileged identity of this server."""
    reviewer = {"authorization": f"Bearer {_token(stack, 'rita', 'acme', ('reviewer',))}"}
    send = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "message/send",
        "params": {"message": {"role": "user", "parts": [{"kind": "text", "text": GOAL}]}},
    }
    async with httpx.AsyncClient(base_url=server, timeout=60) as http:
        refused = (await http.post("/a2a", json=send, headers=reviewer)).json()
    assert "result" not in refused
    assert "PermissionDenied" in refused["error"]["message"]


async def test_a2a_message_stream_sends_the_task_progress_and_the_final_answer(
    stack: LocalStack, server: str
) -> None:
    acme = {"authorization": f"Bearer {_token(stack, 'ann', 'acme')}"}
    send = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "message/stream",
        "params": {"message": {"role": "user", "parts": [{"kind": "text", "text": GOAL}]}},
    }
    frames: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=server, timeout=60) as http,
        http.stream("POST", "/a2a", json=send, headers=acme) as reply,
    ):
        assert reply.headers["content-type"].startswith("text/event-stream")
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                frames.append(json.loads(line[6:]))
    assert all(f["id"] == 7 and "result" in f for f in frames), frames
    results = [f["result"] for f in frames]
    assert results[0]["kind"] == "task"
    assert results[0]["status"]["state"] == "submitted"
    working = [r for r in results if r["kind"] == "status-update" and not r["final"]]
    assert working
    assert {r["status"]["state"] for r in working} == {"working"}
    artifact = next(r for r in results if r["kind"] == "artifact-update")
    assert "395" in artifact["artifact"]["parts"][0]["text"]
    assert results[-1]["kind"] == "status-update"
    assert results[-1]["final"] is True
    assert results[-1]["status"]["state"] == "completed"
    assert {r.get("taskId", r.get("id")) for r in results} == {results[0]["id"]}


PLAN = {"goal": GOAL, "nodes": [{"id": "solve", "goal": "{plan.goal}"}]}


async def test_run_plan_over_mcp_returns_the_answer_and_only_its_tenant_reads_it(
    stack: LocalStack, server: str
) -> None:
    async with _mcp(server, _token(stack, "ann", "acme")) as owner:
        assert {"run_plan", "get_plan"} <= {t.name for t in (await owner.list_tools()).tools}
        plan = _structured(await owner.call_tool("run_plan", {"plan": json.dumps(PLAN)}))
        assert plan["status"] == "completed", plan
        assert "395" in plan["answer"]
        assert plan["nodes_run"] == 1
        again = _structured(await owner.call_tool("get_plan", {"plan_id": plan["plan_id"]}))
        assert again["answer"] == plan["answer"]
    async with _mcp(server, _token(stack, "oscar", "other")) as stranger:
        hidden = await stranger.call_tool("get_plan", {"plan_id": plan["plan_id"]})
    assert hidden.is_error
    text = " ".join(c.text for c in hidden.content if isinstance(c, mcp_types.TextContent))
    assert "NotFound" in text
    # The answer (395) is not leaked; the error may echo the id asked about, whose random hex
    # can contain those digits.
    assert "395" not in text.replace(plan["plan_id"], "")


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        ({"id": "a", "goal": "x", "agent_profile": "ghost"}, "unknown agent profile 'ghost'"),
        ({"id": "a", "goal": "x", "tools": ["shell"]}, "nodes.0.tools"),
        ({"id": "a", "goal": "x", "depends_on": ["a"]}, "cycle: a -> a"),
    ],
    ids=["unknown-profile", "unknown-field-tools", "cycle"],
)
async def test_run_plan_refuses_a_plan_that_cannot_run_with_the_reason(
    stack: LocalStack, server: str, node: dict[str, Any], reason: str
) -> None:
    async with _mcp(server, _token(stack, "ann", "acme")) as client:
        refused = await client.call_tool("run_plan", {"plan": json.dumps({"nodes": [node]})})
    assert refused.is_error
    text = " ".join(c.text for c in refused.content if isinstance(c, mcp_types.TextContent))
    assert reason in text


async def test_a2a_runs_a_plan_from_a_data_part_and_keeps_it_to_its_tenant(
    stack: LocalStack, server: str
) -> None:
    acme = {"authorization": f"Bearer {_token(stack, 'ann', 'acme')}"}
    other = {"authorization": f"Bearer {_token(stack, 'oscar', 'other')}"}
    send = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "messageId": "m1",
                "parts": [{"kind": "data", "data": {"plan": PLAN}}],
            }
        },
    }
    async with httpx.AsyncClient(base_url=server, timeout=60) as http:
        task = (await http.post("/a2a", json=send, headers=acme)).json()["result"]
        assert task["status"]["state"] == "completed"
        assert "395" in task["artifacts"][0]["parts"][0]["text"]
        get = {"jsonrpc": "2.0", "id": "2", "method": "tasks/get", "params": {"id": task["id"]}}
        same = (await http.post("/a2a", json=get, headers=acme)).json()["result"]
        assert same["artifacts"] == task["artifacts"]
        hidden = (await http.post("/a2a", json=get, headers=other)).json()
    assert hidden["error"]["code"] == -32001
