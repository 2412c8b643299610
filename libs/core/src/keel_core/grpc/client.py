"""Client side: channels that carry the trace, plaintext or mutual TLS. Typed errors,
deadlines and per-client tokens are the clients' (``keel_clients.call``), written once there.

A process has one client identity (a service's certificate, the CLI's operator certificate and
token), installed once at start (``use_client_credentials``) by the runtime or the CLI, so the
code that dials a service does not carry key material around. A test harness that holds every
key installs a resolver that picks, per target, the identity that normally calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from keel_core.tracing import current_traceparent
from keel_core.trust import TlsIdentity

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ClientCredentials:
    """A certificate to present (mutual TLS) and, optionally, a bearer token every call of the
    channel carries unless the call sets its own (``CallOptions.token``)."""

    tls: TlsIdentity
    token: str = ""

    def __repr__(self) -> str:
        return f"ClientCredentials({self.tls.name!r}, token={'<set>' if self.token else ''})"


Resolver = Callable[[str], ClientCredentials | None]
_resolver: Resolver | None = None


def use_client_credentials(credentials: ClientCredentials | Resolver | None) -> None:
    """This process's identity for every channel opened without explicit credentials (None:
    plaintext again)."""
    global _resolver
    if credentials is None or callable(credentials):
        _resolver = credentials
    else:
        _resolver = lambda _target: credentials  # noqa: E731


def current_resolver() -> Resolver | None:
    return _resolver


def default_credentials(target: str) -> ClientCredentials | None:
    return _resolver(target) if _resolver is not None else None


def replica_options(target: str) -> list[tuple[str, Any]]:
    """Channel options for a target naming several replicas (``ipv4:H:P1,H:P2``): calls are
    spread round-robin over the replicas that answer, so one dying moves its callers to the
    others. The TLS name checked is the first address's host: every replica of a service
    serves the same certificate, and gRPC would otherwise check the whole address list."""
    scheme, _, addresses = target.partition(":")
    if scheme not in ("ipv4", "ipv6") or "," not in addresses:
        return []
    first = addresses.lstrip("/").split(",")[0]
    host = first.rsplit(":", 1)[0].strip("[]")
    return [("grpc.lb_policy_name", "round_robin"), ("grpc.ssl_target_name_override", host)]


def insecure_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[("grpc.enable_retries", 1), *replica_options(target)],
        interceptors=[_TraceUnaryUnary(), _TraceUnaryStream()],
    )


def secure_channel(target: str, credentials: ClientCredentials) -> grpc.aio.Channel:
    """Mutual TLS: the server's certificate must chain to the CA, ours is presented."""
    tls = credentials.tls
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    interceptors: list[Any] = [_TraceUnaryUnary(), _TraceUnaryStream()]
    if credentials.token:
        interceptors += [_TokenUnaryUnary(credentials.token), _TokenUnaryStream(credentials.token)]
    return grpc.aio.secure_channel(
        target,
        channel_credentials,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            *replica_options(target),
        ],
        interceptors=interceptors,
    )


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    """The channel's token, unless the call brought its own."""
    metadata = list(details.metadata or ())
    if any(key == "authorization" for key, _ in metadata):
        return details
    metadata.append(("authorization", f"Bearer {token}"))
    return _with_metadata(details, metadata)


def _with_metadata(
    details: grpc.aio.ClientCallDetails, metadata: list[tuple[str, str]]
) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata),
        details.credentials,
        details.wait_for_ready,
    )


class _TokenUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_token(details, self._token), request)


class _TokenUnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_token(details, self._token), request)


def _with_traceparent(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The call carries the span in progress as its parent (replacing a traceparent the caller
    put there, which can only be older: the session's, not the step's)."""
    traceparent = current_traceparent()
    if not traceparent:
        return details
    metadata = [(k, v) for k, v in (details.metadata or ()) if k != "traceparent"]
    metadata.append(("traceparent", traceparent))
    return _with_metadata(details, metadata)


class _TraceUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_traceparent(details), request)


class _TraceUnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_traceparent(details), request)
