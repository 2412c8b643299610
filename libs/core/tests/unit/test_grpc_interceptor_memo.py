"""Server interceptors wrap a method's handler once and hand the same wrapper out on every call
while the handler beneath is the same (gRPC asks every interceptor on every call)."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from keel_core.grpc.interceptors import ErrorMappingInterceptor, GrpcMetrics

METHOD = "/keel.test.v1.Test/Echo"


async def echo(request: Any, context: Any) -> Any:
    return request


def details(method: str = METHOD) -> grpc.HandlerCallDetails:
    class Details(grpc.HandlerCallDetails):  # type: ignore[misc]
        def __init__(self) -> None:
            self.method = method
            self.invocation_metadata = ()

    return Details()


async def test_the_wrapped_handler_is_made_once_per_method_and_handler() -> None:
    interceptor = ErrorMappingInterceptor(GrpcMetrics(CollectorRegistry()))
    registered = grpc.unary_unary_rpc_method_handler(echo)

    async def continuation(_: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return registered

    first = await interceptor.intercept_service(continuation, details())
    again = await interceptor.intercept_service(continuation, details())
    assert first is again
    assert first is not registered
    assert first.unary_unary is not echo  # wrapped, not passed through

    replaced = grpc.unary_unary_rpc_method_handler(echo)

    async def other(_: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return replaced

    assert await interceptor.intercept_service(other, details()) is not first


async def test_an_unknown_method_is_still_none() -> None:
    interceptor = ErrorMappingInterceptor(GrpcMetrics(CollectorRegistry()))

    async def nothing(_: grpc.HandlerCallDetails) -> None:
        return None

    assert await interceptor.intercept_service(nothing, details("/nope/Nope")) is None
