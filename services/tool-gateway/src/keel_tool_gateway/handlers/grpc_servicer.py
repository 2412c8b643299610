"""gRPC front of the tool gateway: protobuf in, a use case called, protobuf out.

Decisions, counting and auditing are the use cases' (``usecase.py``); errors they raise
(``InvalidArgument``, ``ResultNotRecorded``) become gRPC status codes in keel_core's server
interceptor.
"""

from __future__ import annotations

import grpc

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_tool_gateway.handlers.mapping import call_from_proto, catalog_to_proto, result_to_proto
from keel_tool_gateway.usecase import ExecuteToolCall, ListTools


class ToolGatewayServicer(tool_pb2_grpc.ToolGatewayServicer):
    def __init__(self, execute: ExecuteToolCall, list_tools: ListTools) -> None:
        self._execute = execute
        self._list_tools = list_tools

    async def ListTools(
        self, request: tool_pb2.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> tool_pb2.ListToolsResponse:
        return catalog_to_proto(self._list_tools(request.agent_profile))

    async def Execute(
        self, request: tool_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> tool_pb2.ExecuteResponse:
        return result_to_proto(await self._execute(call_from_proto(request)))
