"""gRPC server bootstrap shared by every service: health, reflection, error mapping, metrics,
and a graceful stop that lets in-flight calls finish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from keel_contracts.errors import ConfigError
from keel_core.grpc.interceptors import ErrorMappingInterceptor, GrpcMetrics

AddServicer = Callable[[Any, grpc.aio.Server], None]


class GrpcServer:
    """Register servicers, then ``start()``; ``stop(grace)`` on shutdown.

    ``services`` pairs each servicer with its generated ``add_*Servicer_to_server`` function and
    the full service name (for health and reflection).
    """

    def __init__(
        self,
        host: str,
        port: int,
        services: Sequence[tuple[Any, AddServicer, str]],
        registry: CollectorRegistry,
    ) -> None:
        self._address = f"{host}:{port}"
        self._server = grpc.aio.server(
            interceptors=[ErrorMappingInterceptor(GrpcMetrics(registry))],
            options=[("grpc.so_reuseport", 0)],
        )
        self._health = HealthServicer()
        self._names = [name for _, _, name in services]
        for servicer, add, _ in services:
            add(servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [
                *self._names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self._server,
        )
        self.port = 0

    async def start(self) -> None:
        try:
            self.port = self._server.add_insecure_port(self._address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen for gRPC on {self._address}: {exc}") from exc
        await self._server.start()
        for name in ["", *self._names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
