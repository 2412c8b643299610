import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts import errors
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.grpc.errors import error_from_status


class Failing(policy_pb2_grpc.PolicyServiceServicer):
    async def Evaluate(self, request, context):  # type: ignore[no-untyped-def]
        if request.tool_name == "missing":
            raise errors.NotFound("no such tool")
        if request.tool_name.startswith("huge"):
            raise errors.NotFound(f"unknown tool {request.tool_name!r}")
        if request.tool_name == "bug":
            raise RuntimeError("boom")
        return policy_pb2.EvaluateResponse(rule_id="ok")


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    srv = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                Failing(),
                policy_pb2_grpc.add_PolicyServiceServicer_to_server,
                "keel.policy.v1.PolicyService",
            )
        ],
        registry,
    )
    await srv.start()
    yield srv, registry
    await srv.stop(0)


async def test_domain_errors_become_status_codes_and_back(server) -> None:  # type: ignore[no-untyped-def]
    srv, registry = server
    async with insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await stub.Evaluate(policy_pb2.EvaluateRequest(tool_name="missing"), timeout=5)
        assert raw.value.code() == grpc.StatusCode.NOT_FOUND
        mapped = error_from_status(raw.value.code(), raw.value.details() or "")
        assert isinstance(mapped, errors.NotFound)
        assert "no such tool" in str(mapped)
        with pytest.raises(grpc.aio.AioRpcError) as internal:
            await stub.Evaluate(policy_pb2.EvaluateRequest(tool_name="bug"), timeout=5)
        assert internal.value.code() == grpc.StatusCode.INTERNAL
        ok = await stub.Evaluate(policy_pb2.EvaluateRequest(tool_name="x"), timeout=5)
        assert ok.rule_id == "ok"
    handled = registry.get_sample_value(
        "keel_grpc_server_handled_total",
        {"method": "/keel.policy.v1.PolicyService/Evaluate", "code": "NOT_FOUND"},
    )
    assert handled == 1


async def test_health_reports_serving(server) -> None:  # type: ignore[no-untyped-def]
    srv, _ = server
    async with insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service="keel.policy.v1.PolicyService"), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_error_echoing_a_huge_field_keeps_its_status(server) -> None:  # type: ignore[no-untyped-def]
    """The message is cut: in full it would pass the client's metadata limit and arrive as
    RESOURCE_EXHAUSTED instead of NOT_FOUND (a fuzz finding)."""
    srv, _ = server
    async with insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await stub.Evaluate(
                policy_pb2.EvaluateRequest(tool_name="huge" + "x" * 100_000), timeout=5
            )
    assert raw.value.code() == grpc.StatusCode.NOT_FOUND
    details = raw.value.details() or ""
    assert details.startswith("unknown tool 'hugexxx")
    assert details.endswith(" more characters]")
    assert len(details) < 1100
