"""A target naming several replicas of a service (``ipv4:127.0.0.1:P1,127.0.0.1:P2``), as the
local stack hands a caller when a dependency runs more than once: mutual TLS checks the
replicas' shared certificate, calls spread over both, and one dying moves them to the other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from keel_core import trust
from keel_core.grpc.client import ClientCredentials, replica_options, secure_channel


class _Count(grpc.aio.ServerInterceptor):
    def __init__(self, calls: Counter[int], replica: int) -> None:
        self.calls, self.replica = calls, replica

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        self.calls[self.replica] += 1
        return await continuation(handler_call_details)


async def test_calls_reach_every_replica_and_survive_one_dying(tmp_path: Path) -> None:
    material = trust.TrustMaterial(trust.generate(tmp_path / "t"))
    served = material.tls_identity("memory")
    calls: Counter[int] = Counter()
    servers, ports = [], []
    for replica in (1, 2):
        server = grpc.aio.server(interceptors=[_Count(calls, replica)])
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
        credentials = grpc.ssl_server_credentials(
            [(served.key, served.cert)], root_certificates=served.ca, require_client_auth=True
        )
        ports.append(server.add_secure_port("127.0.0.1:0", credentials))
        await server.start()
        servers.append(server)
    target = f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    channel = secure_channel(target, ClientCredentials(material.tls_identity("agent-loop")))
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(6):
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert calls[1] > 0
        assert calls[2] > 0

        await servers[0].stop(None)
        before = calls[2]
        for _ in range(3):
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert calls[2] == before + 3
    finally:
        await channel.close()
        for server in servers:
            await server.stop(None)


def test_a_single_address_keeps_the_default_options() -> None:
    assert replica_options("127.0.0.1:50051") == []
    assert replica_options("ipv4:127.0.0.1:1,127.0.0.1:2") == [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.ssl_target_name_override", "127.0.0.1"),
    ]
