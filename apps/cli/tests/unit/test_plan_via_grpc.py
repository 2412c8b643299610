"""``keel plan … --via grpc``: the plan goes to the agent loop's SubmitPlan (tenant and plan as
given) and its answer is awaited with GetPlan, against a recording AgentService on loopback."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

import grpc
import pytest

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_cli.plans import add_plan_parser, run_plan_via_grpc
from keel_contracts.errors import InvalidArgument
from keel_contracts.events.plans import PlanNode, PlanSpec

SPEC = PlanSpec(goal="g", nodes=[PlanNode(id="a", goal="{plan.goal}")])


class Recording(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.requests: list[object] = []

    async def SubmitPlan(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.requests.append(request)
        if "refuse" in request.plan_json:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid plan: cycle: a -> a")
        return agent_pb2.SubmitPlanResponse(plan_id=request.plan_id or "p1", nodes=1)

    async def GetPlan(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.requests.append(request)
        return agent_pb2.GetPlanResponse(
            plan_id=request.plan_id, status=agent_pb2.SESSION_STATUS_COMPLETED, answer="42"
        )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Recording, str]]:
    service = Recording()
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield service, f"127.0.0.1:{port}"
    await server.stop(None)


def test_via_grpc_and_tenant_are_plan_flags() -> None:
    parser = argparse.ArgumentParser()
    add_plan_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", "pipeline", "a", "b", "--via", "grpc", "--tenant", "acme"])
    assert (args.via, args.tenant) == ("grpc", "acme")
    assert parser.parse_args(["plan", "submit", "f.yaml"]).via == "kafka"  # unchanged default


async def test_the_plan_is_submitted_over_grpc_and_its_answer_awaited(
    served: tuple[Recording, str], capsys: pytest.CaptureFixture[str]
) -> None:
    service, target = served
    code = await run_plan_via_grpc(target, SPEC, "", False, 5.0, "acme")
    assert code == 0
    assert "answer: 42" in capsys.readouterr().out
    submit, get = service.requests
    assert isinstance(submit, agent_pb2.SubmitPlanRequest)
    assert submit.tenant == "acme"
    assert PlanSpec.model_validate(json.loads(submit.plan_json)) == SPEC
    assert isinstance(get, agent_pb2.GetPlanRequest)
    assert (get.plan_id, get.wait_s) == ("p1", 5.0)


async def test_no_wait_prints_the_plan_id_only(
    served: tuple[Recording, str], capsys: pytest.CaptureFixture[str]
) -> None:
    service, target = served
    assert await run_plan_via_grpc(target, SPEC, "mine", True, 5.0) == 0
    assert capsys.readouterr().out.strip() == "mine"
    assert len(service.requests) == 1


async def test_a_refused_plan_is_an_invalid_argument_with_the_reason(
    served: tuple[Recording, str],
) -> None:
    _, target = served
    refused = SPEC.model_copy(update={"goal": "refuse"})
    with pytest.raises(InvalidArgument, match="cycle: a -> a"):
        await run_plan_via_grpc(target, refused, "", False, 5.0)
