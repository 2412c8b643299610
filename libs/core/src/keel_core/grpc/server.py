"""gRPC server bootstrap shared by every service: health, error mapping, metrics, a graceful
stop that lets in-flight calls finish, and the security profile.

Secured (``security`` given, the default of every service with trust material): mutual TLS
with the client certificate required and checked against the local CA, the authorization
interceptor, reflection off and bounded message sizes. Unsecured (the insecure dev mode and
in-process component tests): plaintext with reflection, as before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from keel_contracts.errors import ConfigError
from keel_core.grpc.auth import AuthInterceptor, DeniedHook
from keel_core.grpc.interceptors import (
    ErrorMappingInterceptor,
    GrpcMetrics,
    InterceptorChain,
    MethodInterceptor,
)
from keel_core.grpc.ratelimit import RateLimitInterceptor
from keel_core.grpc.tokens import TokenVerifier
from keel_core.ratelimit.limiter import RateLimiter
from keel_core.trust import TlsIdentity

AddServicer = Callable[[Any, grpc.aio.Server], None]

# The secured profile's bound on one message either way (the default receive cap is 4 MiB
# and sending is unbounded); large enough for a long chat history or a tool's output.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServerSecurity:
    """What a secured server needs: its certificate, the CA its clients' certificates must
    chain to, the bearer-token verifier, and where refusals are recorded."""

    tls: TlsIdentity
    verifier: TokenVerifier
    on_denied: DeniedHook | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.cert)],
            root_certificates=self.tls.ca,
            require_client_auth=True,
        )


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
        security: ServerSecurity | None = None,
    ) -> None:
        self._address = f"{host}:{port}"
        self._security = security
        interceptors: list[MethodInterceptor] = [ErrorMappingInterceptor(GrpcMetrics(registry))]
        options: list[tuple[str, Any]] = [("grpc.so_reuseport", 0)]
        if security is not None:
            # Inside the error mapping: a refusal is counted and traced like any status.
            interceptors.append(AuthInterceptor(security.verifier, security.on_denied))
            options += [
                ("grpc.max_receive_message_length", security.max_message_bytes),
                ("grpc.max_send_message_length", security.max_message_bytes),
            ]
        # Innermost: after authorization has bound the caller's tenant into the request, and
        # inside the error mapping, so a refusal is counted and traced like any status.
        self._rate_limits = RateLimitInterceptor()
        interceptors.append(self._rate_limits)
        # One interceptor for gRPC to call per call, the three in this order inside it.
        self._server = grpc.aio.server(
            interceptors=[InterceptorChain(interceptors)], options=options
        )
        self._health = HealthServicer()
        self._names = [name for _, _, name in services]
        for servicer, add, _ in services:
            add(servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if security is None:
            reflection.enable_server_reflection(
                [
                    *self._names,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ],
                self._server,
            )
        self.port = 0
        # What health reports once started: a part the service depends on (a required tool
        # server) can take it out of rotation without stopping it.
        self._serving = True
        self._started = False
        self._health_updates: set[asyncio.Task[None]] = set()

    def limit_calls(self, limiter: RateLimiter) -> None:
        """Count calls against ``limiter``'s gRPC rules from now on (docs/rate-limits.md)."""
        self._rate_limits.configure(limiter)

    @property
    def secured(self) -> bool:
        return self._security is not None

    async def start(self) -> None:
        try:
            if self._security is None:
                self.port = self._server.add_insecure_port(self._address)
            else:
                self.port = self._server.add_secure_port(
                    self._address, self._security.credentials()
                )
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen for gRPC on {self._address}: {exc}") from exc
        await self._server.start()
        self._started = True
        await self._publish_health()

    def set_serving(self, serving: bool) -> None:
        """SERVING or NOT_SERVING for every name (overall and each service) from now on; safe
        before start (applied then) and from synchronous callbacks (applied on the loop)."""
        self._serving = serving
        if self._started:
            task = asyncio.get_running_loop().create_task(self._publish_health())
            self._health_updates.add(task)
            task.add_done_callback(self._health_updates.discard)

    async def _publish_health(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self._serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self._names]:
            await self._health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        self._started = False
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
