"""A fake tool gateway: a catalog per profile, and a function that runs each call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_clients.mapping import call_from_proto, context_from_proto
from keel_clients.tools import EXECUTE_STATUS
from keel_contracts.chat import RequestContext, ToolCall, ToolSpec
from keel_contracts.tools import ToolOutcome

TO_STATUS = {name: value for value, name in EXECUTE_STATUS.items()}


@dataclass(frozen=True)
class ExecuteCall:
    ctx: RequestContext
    call: ToolCall
    idempotency_key: str
    approval_id: str
    # The session's task text as the caller sent it (for provenance checks).
    task_text: str = ""


Run = Callable[[ExecuteCall], ToolOutcome]


def echo(execute: ExecuteCall) -> ToolOutcome:
    return ToolOutcome(status="ok", output=execute.call.arguments_json)


class FakeToolGateway(tool_pb2_grpc.ToolGatewayServicer):
    """Like the real one, a repeated idempotency key of a call that ran (ok or error) is
    answered from the first result without running the tool again; a denied call or one that
    needs approval is asked again (with its approval id, say). An ``unavailable`` count makes
    the next ``Execute`` calls fail with UNAVAILABLE without running anything (a gateway that
    is down); ``refused`` counts them."""

    def __init__(
        self,
        catalog: Mapping[str, Sequence[ToolSpec]] | None = None,
        run: Run = echo,
        *,
        unavailable: int = 0,
    ) -> None:
        self.unavailable = unavailable
        self.refused = 0
        self._catalog = catalog or {}
        self._run = run
        self._results: dict[str, ToolOutcome] = {}
        self.calls: list[ExecuteCall] = []
        self.listed: list[str] = []

    async def ListTools(
        self, request: tool_pb2.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> tool_pb2.ListToolsResponse:
        self.listed.append(request.agent_profile)
        tools = self._catalog.get(request.agent_profile or "default", ())
        return tool_pb2.ListToolsResponse(
            tools=[
                tool_pb2.ToolDescriptor(
                    name=t.name,
                    description=t.description,
                    parameters_json_schema=t.parameters_json_schema,
                )
                for t in tools
            ]
        )

    async def Execute(
        self, request: tool_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> tool_pb2.ExecuteResponse:
        if self.unavailable > 0:
            self.unavailable -= 1
            self.refused += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
        call = call_from_proto(request.call)
        key = request.idempotency_key
        outcome = self._results.get(key) if key else None
        if outcome is None:
            execute = ExecuteCall(
                context_from_proto(request.context),
                call,
                key,
                request.approval_id,
                request.task_text,
            )
            self.calls.append(execute)
            outcome = self._run(execute)
            if key and outcome.status in ("ok", "error"):
                self._results[key] = outcome
        return tool_pb2.ExecuteResponse(
            status=TO_STATUS[outcome.status],
            output=outcome.output,
            error=outcome.error,
            policy_rule=outcome.rule_id,
            duration_ms=outcome.duration_ms,
        )
