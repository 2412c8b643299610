"""Client of the standard ``grpc.health.v1.Health`` service every Keel server runs."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from keel_clients.call import Caller, CallOptions


class HealthClient:
    def __init__(self, channel: grpc.aio.Channel, options: CallOptions | None = None) -> None:
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._caller = Caller(options or CallOptions(timeout_s=2.0))

    async def serving(self, service: str = "") -> bool:
        """True when the server says it serves ``service`` ("" = the server as a whole)."""
        request = health_pb2.HealthCheckRequest(service=service)
        reply = await self._caller.unary(self._stub.Check, request)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
