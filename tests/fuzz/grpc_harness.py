"""What the gRPC fuzz tests share: every method of a service read from its descriptor, a call
of any method over a generic channel (a server-streaming one is opened, read a bounded amount
and cancelled), and the statuses a service may answer on purpose.

A server that crashes in a handler answers ``INTERNAL`` (keel_core's interceptor, unary) or
``UNKNOWN`` (grpc itself, a stream that raised); a handler that hangs runs into the call's
deadline. None of the three is a deliberate answer, so none is allowed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import ModuleType

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

# The statuses that say "I understood you and refuse" (or "done").
DELIBERATE = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        # A budget or size limit said no (the LLM gateway's budgets). Refusals that echo a huge
        # field back are cut by keel_core's error interceptor, so they keep their own status.
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# A unary call that takes longer than this is hung (the fakes behind it answer at once).
CALL_DEADLINE_S = 20.0
# A stream is read for at most this many messages, each awaited at most this long: a watch of
# something that never changes sends nothing, and waiting for it is what it is meant to do.
STREAM_READS = 3
STREAM_IDLE_S = 0.05


@dataclass(frozen=True)
class Method:
    """One RPC of a service, with the classes its request and reply decode to."""

    path: str
    name: str
    request: type[Message]
    reply: type[Message]
    streaming: bool

    def __str__(self) -> str:
        return self.path


def methods_of(pb2: ModuleType, service: str) -> list[Method]:
    """Every method of ``service`` as the generated module declares it."""
    return [_method(m) for m in pb2.DESCRIPTOR.services_by_name[service].methods]


def _method(descriptor: MethodDescriptor) -> Method:
    if descriptor.client_streaming:  # none in Keel's contracts; would need its own driver
        raise NotImplementedError(f"client streaming: {descriptor.full_name}")
    return Method(
        path=f"/{descriptor.containing_service.full_name}/{descriptor.name}",
        name=descriptor.name,
        request=GetMessageClass(descriptor.input_type),
        reply=GetMessageClass(descriptor.output_type),
        streaming=descriptor.server_streaming,
    )


@dataclass(frozen=True)
class Answer:
    """What a call came back with: its status and, for a stream, the messages read."""

    code: grpc.StatusCode
    details: str
    replies: tuple[Message, ...] = ()


async def call(channel: grpc.aio.Channel, method: Method, request: Message) -> Answer:
    """Send ``request``; a stream is read until it ends, ``STREAM_READS`` messages came, or
    it stays quiet for ``STREAM_IDLE_S``, and then cancelled (an open stream is an answer)."""
    if not method.streaming:
        unary = channel.unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.reply.FromString,
        )
        try:
            reply = await unary(request, timeout=CALL_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            return Answer(exc.code(), exc.details() or "")
        return Answer(grpc.StatusCode.OK, "", (reply,))
    stream = channel.unary_stream(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.reply.FromString,
    )(request, timeout=CALL_DEADLINE_S)
    replies: list[Message] = []
    try:
        while len(replies) < STREAM_READS:
            try:
                item = await asyncio.wait_for(stream.read(), STREAM_IDLE_S)
            except TimeoutError:
                break
            if item is grpc.aio.EOF:
                return Answer(await stream.code(), await stream.details() or "", tuple(replies))
            replies.append(item)
    except grpc.aio.AioRpcError as exc:
        return Answer(exc.code(), exc.details() or "", tuple(replies))
    finally:
        stream.cancel()
    return Answer(grpc.StatusCode.OK, "", tuple(replies))


def describe(method: Method, request: Message, answer: Answer) -> str:
    """A failure line: the method, the status and the request (cut: some carry 100k chars)."""
    shown = repr(request)[:400]
    return f"{method.path} -> {answer.code.name} {answer.details[:300]!r} for {shown}"
