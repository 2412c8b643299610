"""The six services as the gRPC fuzz meets them: each one's real ``build(settings, runtime)`` on
``InMemoryRuntime`` with its gRPC server on loopback, the services it calls faked in process
(``keel_clients.testing``), and for each method a well-formed request that must still be
answered OK after the fuzz (in order: a ``Get`` follows the ``Submit`` that made its id).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from google.protobuf.message import Message

from keel.agent.v1 import agent_pb2
from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_agent_loop import app as agent_app
from keel_agent_loop import config as agent_config
from keel_approval import app as approval_app
from keel_approval import config as approval_config
from keel_clients.testing import (
    FakeApprovalService,
    FakeLLMGateway,
    FakeMemoryService,
    FakePolicyService,
    FakeToolGateway,
    serving,
)
from keel_contracts.events import ApprovalRequested, Envelope
from keel_contracts.topics import APPROVAL_REQUESTS
from keel_core.testing import InMemoryRuntime
from keel_llm_gateway import app as llm_app
from keel_llm_gateway import config as llm_config
from keel_memory import app as memory_app
from keel_memory import config as memory_config
from keel_policy import app as policy_app
from keel_policy import config as policy_config
from keel_tool_gateway import app as tool_app
from keel_tool_gateway import config as tool_config
from keel_tool_gateway.adapters.memory import MemorySettings
from keel_tool_gateway.adapters.tools.files import FileSettings


@dataclass
class Served:
    """A built, running service: where it answers, and its well-formed requests."""

    target: str
    canaries: list[tuple[str, Message]]


@dataclass(frozen=True)
class Contract:
    """A gRPC contract and how to start the service that serves it."""

    pb2: ModuleType
    service: str
    start: Callable[[Path], AbstractAsyncContextManager[Served]]
    milvus: bool = False


CTX = common_pb2.RequestContext(session_id="s1", agent_id="a1", agent_profile="default")


@contextlib.asynccontextmanager
async def _running(runtime: InMemoryRuntime) -> AsyncIterator[str]:
    async with runtime.running():
        yield runtime.target


@contextlib.asynccontextmanager
async def llm_gateway(tmp: Path) -> AsyncIterator[Served]:
    settings = llm_config.Settings(
        provider="scripted", scenario_file=llm_config.DEMO_SCENARIOS, cache_enabled=True
    )
    runtime = InMemoryRuntime(llm_app.SERVICE, settings)
    llm_app.build(settings, runtime)
    request = llm_pb2.CompleteRequest(
        context=CTX,
        messages=[common_pb2.ChatMessage(role="user", content="What is (17 * 23) + 4?")],
    )
    async with _running(runtime) as target:
        yield Served(target, [("Complete", request), ("CompleteStream", request)])


@contextlib.asynccontextmanager
async def tool_gateway(tmp: Path) -> AsyncIterator[Served]:
    # Every tool that runs in process is allowed, so fuzzed calls reach the tools themselves;
    # the network (http_fetch) and the sandbox (python) are left to the default deny.
    policy = FakePolicyService(
        {
            name: "allow"
            for name in (
                "calculator",
                "clock",
                "noop",
                "count",
                "file_read",
                "file_write",
                "file_list",
                "memory_store",
                "memory_search",
            )
        }
        | {"send_email": "needs_approval"}
    )
    async with serving(
        (policy, policy_pb2_grpc.add_PolicyServiceServicer_to_server),
        (FakeApprovalService(), approval_pb2_grpc.add_ApprovalServiceServicer_to_server),
        (FakeMemoryService([]), memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as fakes:
        settings = tool_config.Settings(
            policy_target=fakes,
            approval_target=fakes,
            memory=MemorySettings(target=fakes),
            test_tools_dir=tmp / "counts",
            files=FileSettings(workspace_root=tmp / "workspaces"),
        )
        runtime = InMemoryRuntime(tool_app.SERVICE, settings)
        tool_app.build(settings, runtime)
        execute = tool_pb2.ExecuteRequest(
            context=CTX,
            call=common_pb2.ToolCall(
                name="calculator", arguments_json=json.dumps({"expression": "2+2"})
            ),
            idempotency_key="canary:0",
        )
        async with _running(runtime) as target:
            yield Served(
                target,
                [
                    ("ListTools", tool_pb2.ListToolsRequest(agent_profile="default")),
                    ("Execute", execute),
                ],
            )


POLICY = """
rules:
  - id: calc-ok
    priority: 10
    tool: calculator
    decision: allow
  - id: mail-asks
    priority: 20
    tool: send_email
    decision: require_approval
"""


@contextlib.asynccontextmanager
async def policy(tmp: Path) -> AsyncIterator[Served]:
    policy_file = tmp / "policy.yaml"
    policy_file.write_text(POLICY)
    settings = policy_config.Settings(policy_file=policy_file, reload_interval_s=0)
    runtime = InMemoryRuntime(policy_app.SERVICE, settings)
    policy_app.build(settings, runtime)
    evaluate = policy_pb2.EvaluateRequest(
        context=CTX, tool_name="calculator", arguments_json='{"expression": "1+1"}'
    )
    async with _running(runtime) as target:
        yield Served(
            target,
            [
                ("Evaluate", evaluate),
                ("Explain", evaluate),
                ("ExplainRules", policy_pb2.ExplainRulesRequest(agent_profile="default")),
            ],
        )


@contextlib.asynccontextmanager
async def memory(tmp: Path) -> AsyncIterator[Served]:
    settings = memory_config.Settings(
        milvus_uri=str(tmp / "milvus" / "memory.db"), embedder="hashing"
    )
    runtime = InMemoryRuntime(memory_app.SERVICE, settings)
    memory_app.build(settings, runtime)
    async with _running(runtime) as target:
        yield Served(
            target,
            [
                (
                    "Store",
                    memory_pb2.StoreRequest(
                        context=CTX, type=memory_pb2.MEMORY_TYPE_SEMANTIC, content="canary"
                    ),
                ),
                ("Retrieve", memory_pb2.RetrieveRequest(context=CTX, query="canary")),
                ("Forget", memory_pb2.ForgetRequest(context=CTX, session_id="canary")),
            ],
        )


def _requested(approval_id: str) -> bytes:
    event = ApprovalRequested(
        approval_id=approval_id,
        agent_id="a",
        tool_name="send_email",
        arguments={"to": "bob"},
        idempotency_key=f"{approval_id}:0",
    )
    return Envelope.wrap(event, source="t", session_id=f"session-{approval_id}").to_bytes()


@contextlib.asynccontextmanager
async def approval(tmp: Path) -> AsyncIterator[Served]:
    settings = approval_config.Settings(web_enabled=False)
    runtime = InMemoryRuntime(approval_app.SERVICE, settings)
    approval_app.build(settings, runtime)
    async with _running(runtime) as target:
        # Pending requests under names the fuzz draws (``ap-1``, ``ap-2``) reach Resolve's
        # deep path; ``canary`` is left for the well-formed calls afterwards.
        for approval_id in ("ap-1", "ap-2", "canary"):
            runtime.bus.append(APPROVAL_REQUESTS, _requested(approval_id), approval_id, [])
        await runtime.settle()
        resolve = approval_pb2.ResolveRequest(
            id="canary", outcome=approval_pb2.OUTCOME_APPROVE, reviewer="alice"
        )
        yield Served(
            target,
            [
                ("List", approval_pb2.ListRequest()),
                ("Get", approval_pb2.GetRequest(id="canary")),
                ("Watch", approval_pb2.WatchRequest()),
                ("Resolve", resolve),
            ],
        )


CANARY_PLAN = json.dumps({"goal": "after the fuzz", "nodes": [{"id": "a", "goal": "say hi"}]})


@contextlib.asynccontextmanager
async def agent_loop(tmp: Path) -> AsyncIterator[Served]:
    async with serving(
        (FakeLLMGateway(), llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (FakeToolGateway({"default": []}), tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (FakeMemoryService([]), memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as fakes:
        settings = agent_config.Settings(llm_target=fakes, tool_target=fakes, memory_target=fakes)
        runtime = InMemoryRuntime(agent_app.SERVICE, settings)
        agent_app.build(settings, runtime)
        async with _running(runtime) as target:
            yield Served(
                target,
                [
                    ("Submit", agent_pb2.SubmitRequest(goal="after the fuzz", session_id="canary")),
                    ("Get", agent_pb2.GetRequest(session_id="canary")),
                    ("StreamEvents", agent_pb2.StreamEventsRequest(session_id="canary")),
                    ("Cancel", agent_pb2.CancelRequest(session_id="canary", reason="canary")),
                    (
                        "SubmitPlan",
                        agent_pb2.SubmitPlanRequest(plan_json=CANARY_PLAN, plan_id="canary-plan"),
                    ),
                    ("GetPlan", agent_pb2.GetPlanRequest(plan_id="canary-plan")),
                ],
            )


CONTRACTS = {
    "agent-loop": Contract(agent_pb2, "AgentService", agent_loop),
    "llm-gateway": Contract(llm_pb2, "LLMGateway", llm_gateway),
    "tool-gateway": Contract(tool_pb2, "ToolGateway", tool_gateway),
    "policy": Contract(policy_pb2, "PolicyService", policy),
    "memory": Contract(memory_pb2, "MemoryService", memory, milvus=True),
    "approval": Contract(approval_pb2, "ApprovalService", approval),
}
