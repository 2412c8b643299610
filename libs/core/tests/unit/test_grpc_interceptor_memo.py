"""Server interceptors wrap a method's handler once and hand the same wrapper out on every call
while the handler beneath is the same (gRPC asks every interceptor on every call); a server's
interceptors reach gRPC as one chain: one ``intercept_service`` per call, the same behaviour as
the interceptors given to gRPC one by one (first outermost)."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from keel_core.grpc.interceptors import (
    ErrorMappingInterceptor,
    GrpcMetrics,
    InterceptorChain,
    MethodInterceptor,
)
from keel_core.grpc.server import GrpcServer

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


class Recording(MethodInterceptor):
    """Appends its name to the call's trail on the way in and out."""

    def __init__(self, name: str, trail: list[str]) -> None:
        self.name = name
        self.trail = trail

    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        async def wrapped(request: Any, context: Any) -> Any:
            self.trail.append(f"{self.name}>")
            try:
                return await behaviour(request, context)
            finally:
                self.trail.append(f"<{self.name}")

        return wrapped


async def echo_trail(request: list[str], context: Any) -> str:
    request.append("echo")
    return "answer"


REGISTERED = grpc.unary_unary_rpc_method_handler(echo_trail)


async def _through(interceptors: list[Any], trail: list[str]) -> tuple[Any, Any]:
    """The handler gRPC would run for ``METHOD`` with ``interceptors``, the way its server
    chains them (each one's continuation is the next one), and the answer to one call."""

    async def run(index: int, call: grpc.HandlerCallDetails) -> Any:
        if index == len(interceptors):
            return REGISTERED
        return await interceptors[index].intercept_service(lambda d: run(index + 1, d), call)

    handler = await run(0, details())
    return handler, await handler.unary_unary(trail, None)


async def test_the_chain_runs_its_interceptors_as_grpc_runs_them_one_by_one() -> None:
    alone: list[str] = []
    separate = [Recording(name, alone) for name in "abc"]
    _, answer = await _through(separate, alone)
    chained: list[str] = []
    chain = InterceptorChain([Recording(name, chained) for name in "abc"])
    handler, chained_answer = await _through([chain], chained)
    assert (chained_answer, chained) == (answer, alone)
    assert chained == ["a>", "b>", "c>", "echo", "<c", "<b", "<a"]
    again, _ = await _through([chain], chained)
    assert again is handler  # made once per method


async def test_an_unknown_method_is_still_none_through_the_chain() -> None:
    chain = InterceptorChain([Recording("a", [])])

    async def nothing(_: grpc.HandlerCallDetails) -> None:
        return None

    assert await chain.intercept_service(nothing, details("/nope/Nope")) is None


async def test_the_server_gives_grpc_one_interceptor(monkeypatch: Any) -> None:
    given: list[list[Any]] = []
    real = grpc.aio.server

    def server(*, interceptors: list[Any], options: Any) -> Any:
        given.append(interceptors)
        return real(interceptors=interceptors, options=options)

    monkeypatch.setattr(grpc.aio, "server", server)
    GrpcServer("127.0.0.1", 0, [], CollectorRegistry())
    [interceptors] = given
    assert len(interceptors) == 1
    assert isinstance(interceptors[0], InterceptorChain)
    names = [type(i).__name__ for i in interceptors[0].interceptors]
    assert names == ["ErrorMappingInterceptor", "RateLimitInterceptor"]
