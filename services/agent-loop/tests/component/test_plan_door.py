"""SubmitPlan / GetPlan as ``build`` wires them, on a secured (mutual TLS + tokens) server over
the in-memory bus: the plan is the token's tenant's and so is every session it starts, its
answer is awaited with GetPlan, another tenant cannot read it, a plan that cannot run is
INVALID_ARGUMENT with the reason, and the agents server's certificate admits nothing without
a caller's token."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.app import SERVICE, build
from keel_agent_loop.config import Settings
from keel_clients import AgentClient
from keel_clients.testing import FakeLLMGateway, FakeMemoryService, FakeToolGateway, serving
from keel_contracts.chat import ChatMessage, LLMReply, Usage
from keel_contracts.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from keel_contracts.events import AuditRecord, TaskSubmitted
from keel_contracts.events.plans import PlanSubmitted
from keel_contracts.sessions import TaskRequest
from keel_contracts.tools import ToolOutcome
from keel_contracts.topics import AUDIT, PLANS, SUBTASKS
from keel_core import trust
from keel_core.grpc import ClientCredentials, GrpcServer, ServerSecurity, secure_channel
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import mint_token
from keel_core.ratelimit import Limit, RateLimitSettings
from keel_core.runtime import GrpcService
from keel_core.testing import InMemoryRuntime

USAGE = Usage(prompt_tokens=1, completion_tokens=1, cost_usd=0.0)

PLAN = {
    "goal": "Say two things",
    "nodes": [
        {"id": "a", "goal": "first: {plan.goal}"},
        {"id": "b", "goal": "second, after {deps.a}", "depends_on": ["a"]},
    ],
}


def reply(text: str) -> LLMReply:
    return LLMReply(message=ChatMessage(role="assistant", content=text), usage=USAGE, model="m")


class SecuredRuntime(InMemoryRuntime):
    """The in-memory runtime whose gRPC server is secured as production's is: mutual TLS
    with the trust directory's certificates and bearer tokens judged by the table."""

    def __init__(self, settings: Any, material: trust.TrustMaterial) -> None:
        super().__init__(SERVICE, settings)
        self._security = ServerSecurity(
            material.tls_identity(SERVICE), token_verifier(material, trust.TrustSettings())
        )

    def serve_grpc(self, services: Sequence[GrpcService]) -> None:
        self.grpc = GrpcServer("127.0.0.1", 0, services, self.registry, self._security)


class Door:
    def __init__(self, runtime: SecuredRuntime, material: trust.TrustMaterial) -> None:
        self.runtime = runtime
        self.material = material

    @contextlib.asynccontextmanager
    async def client(
        self, tenant: str = "acme", roles: Sequence[str] = ("submitter",), *, token: bool = True
    ) -> AsyncIterator[AgentClient]:
        """A client presenting the agents server's certificate and, unless ``token`` is
        False, a caller's token (as the agents server forwards it)."""
        minted = (
            mint_token(self.material.token_signing_key(), sub="ann", tenant=tenant, roles=roles)
            if token
            else None
        )
        identity = self.material.tls_identity(trust.AGENTS_SERVER)
        async with secure_channel(
            self.runtime.target, ClientCredentials(identity, minted)
        ) as channel:
            yield AgentClient(channel)


@contextlib.asynccontextmanager
async def plan_door(limits: dict[str, Limit] | None = None) -> AsyncIterator[Door]:
    llm = FakeLLMGateway([reply(f"answer {n}") for n in range(1, 9)])
    tools = FakeToolGateway({}, lambda call: ToolOutcome(status="ok"))
    memory = FakeMemoryService([])
    async with serving(
        (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (tools, tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (memory, memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as target:
        settings: Any = Settings(
            llm_target=target,
            tool_target=target,
            memory_target=target,
            rate_limits=RateLimitSettings(limits=limits or {}),
        )
        assert settings.trust.dir is not None  # the root conftest sets KEEL_TRUST_DIR
        material = trust.TrustMaterial(settings.trust.dir)
        runtime = SecuredRuntime(settings, material)
        build(settings, runtime)
        async with runtime.running():
            yield Door(runtime, material)


async def test_a_plan_runs_as_the_tokens_tenant_and_its_answer_is_awaited() -> None:
    async with plan_door() as door:
        async with door.client("acme") as agent:
            plan_id = await agent.submit_plan(json.dumps(PLAN))
            view = await agent.get_plan(plan_id, wait_s=10)
    assert (view.session_id, view.status) == (plan_id, "completed")
    assert view.answer == "answer 2"  # the sink node's answer
    assert view.iterations == 2  # both nodes ran
    submitted = [
        e.parse(PlanSubmitted)
        for e in door.runtime.bus.envelopes(PLANS)
        if e.type == PlanSubmitted.event_type
    ]
    assert [(s.plan.plan_id, s.plan.tenant) for s in submitted] == [(plan_id, "acme")]
    subtasks = [e.parse(TaskSubmitted) for e in door.runtime.bus.envelopes(SUBTASKS)]
    assert [t.tenant for t in subtasks] == ["acme", "acme"]


async def test_the_audit_record_names_the_caller_and_the_agents_server() -> None:
    async with plan_door() as door:
        async with door.client("acme") as agent:
            plan_id = await agent.submit_plan(json.dumps(PLAN))
            await agent.get_plan(plan_id, wait_s=10)
    records = [
        e.parse(AuditRecord)
        for e in door.runtime.bus.envelopes(AUDIT)
        if e.type == AuditRecord.event_type
    ]
    submitted = [r for r in records if r.action == "plan.submitted"]
    assert len(submitted) == 1
    assert (submitted[0].actor, submitted[0].subject) == ("ann", plan_id)
    assert submitted[0].details["tenant"] == "acme"
    assert submitted[0].details["via"] == trust.AGENTS_SERVER


async def test_another_tenant_cannot_read_the_plan() -> None:
    async with plan_door() as door:
        async with door.client("acme") as agent:
            plan_id = await agent.submit_plan(json.dumps(PLAN))
        async with door.client("other") as intruder:
            with pytest.raises(NotFound, match="unknown plan"):
                await intruder.get_plan(plan_id)
        async with door.client("*", roles=("operator",)) as operator:
            assert (await operator.get_plan(plan_id, wait_s=10)).status == "completed"


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (
            {
                "nodes": [
                    {"id": "a", "goal": "x", "depends_on": ["b"]},
                    {"id": "b", "goal": "y", "depends_on": ["a"]},
                ]
            },  # noqa: E501
            "cycle: ",
        ),
        ({"nodes": []}, "plan has no nodes"),
        ({"nodes": [{"id": "a", "goal": "x", "tools": ["rm"]}]}, "nodes.0.tools"),
        ("not json", "not a plan"),
    ],
)
async def test_a_plan_that_cannot_run_is_invalid_argument_with_the_reason(
    plan: object, reason: str
) -> None:
    async with plan_door() as door:
        async with door.client("acme") as agent:
            text = plan if isinstance(plan, str) else json.dumps(plan)
            with pytest.raises(InvalidArgument, match=reason):
                await agent.submit_plan(text)
        assert door.runtime.bus.envelopes(PLANS) == []  # nothing was published


async def test_a_token_cannot_name_another_tenant_for_its_plan() -> None:
    async with plan_door() as door, door.client("acme") as agent:
        with pytest.raises(PermissionDenied, match="tenant 'other'"):
            await agent.submit_plan(json.dumps(PLAN), tenant="other")


async def test_the_agents_server_certificate_alone_admits_nothing() -> None:
    """Its certificate is in no row: without a caller's token every AgentService call is
    refused, so the agents server can only ever act as its callers."""
    async with plan_door() as door, door.client(token=False) as bare:
        with pytest.raises(Unauthenticated, match="needs a bearer token"):
            await bare.submit_plan(json.dumps(PLAN))
        with pytest.raises(Unauthenticated, match="needs a bearer token"):
            await bare.get_plan("p1")
        with pytest.raises(Unauthenticated, match="needs a bearer token"):
            await bare.submit(TaskRequest(goal="g"))


async def test_submit_plan_counts_against_the_tenants_submit_limit() -> None:
    async with plan_door({"submit": Limit(rate=0.01, burst=2)}) as door:
        async with door.client("acme") as agent:
            await agent.submit(TaskRequest(goal="a task"))
            await agent.submit_plan(json.dumps(PLAN))
            with pytest.raises(ResourceExhausted, match="retry after"):
                await agent.submit_plan(json.dumps(PLAN))
        async with door.client("beta") as other:
            await other.submit_plan(json.dumps(PLAN))
