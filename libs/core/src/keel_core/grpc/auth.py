"""The server interceptor that knows the caller: the mTLS peer's identity or a bearer token's
subject, checked against the authorization table, with tenant, agent and profile bound to
the authenticated identity.

A refused call ends UNAUTHENTICATED (no valid credential) or PERMISSION_DENIED (a valid one
that may not do this) with the reason, and leaves a ``security.denied`` audit record; the
handler never runs. The admitted caller is readable by the handler (``current_principal``),
so e.g. the approval service records the token's subject as the reviewer.

Tenant binding: a token caller's request carries the token's tenant; a request field naming
another tenant is refused, an empty one is filled in. A token whose tenant claim is ``*`` (an
operator's) may address any tenant. A service caller (mTLS) is trusted with the
``RequestContext`` it sends: the agent loop took the tenant from the Submit token or the task
record, so the trust boundary between services is the service identity.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple, NoReturn

import grpc

from keel_contracts.errors import KeelError, PermissionDenied, Unauthenticated
from keel_core.grpc.authorization import AUTHORIZATION, Rule
from keel_core.grpc.interceptors import MethodInterceptor
from keel_core.grpc.tokens import Principal, TokenVerifier, bearer

log = logging.getLogger(__name__)

ANY_TENANT = "*"
DENIED = "security.denied"

# (method, who, reason, status name) -> a record somewhere (the service's audit emitter).
DeniedHook = Callable[[str, str, str, str], Awaitable[None]]

_principal: ContextVar[Principal | None] = ContextVar("keel_grpc_principal", default=None)


def current_principal() -> Principal | None:
    """The caller admitted for the call in progress; None on an unsecured server."""
    return _principal.get()


class AuthInterceptor(MethodInterceptor):
    def __init__(
        self,
        verifier: TokenVerifier,
        on_denied: DeniedHook | None = None,
        table: Mapping[str, Rule] = AUTHORIZATION,
    ) -> None:
        self._verifier = verifier
        self._on_denied = on_denied
        self._table = table

    def _other_kind(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        # Keel serves no client- or bidi-streaming RPC; refuse rather than pass unchecked.
        return grpc.unary_unary_rpc_method_handler(self._refuse_unknown(method))

    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            # Decided without awaiting: only a refusal awaits (its audit record).
            judged = self._judge(method, request, context)
            if isinstance(judged, _Refused):
                await self._deny(method, judged.who, judged.error)
            token = _principal.set(judged)
            try:
                return await behaviour(request, context)
            finally:
                _principal.reset(token)

        return wrapped

    def _wrap_stream(self, method: str, behaviour: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            judged = self._judge(method, request, context)
            if isinstance(judged, _Refused):
                await self._deny(method, judged.who, judged.error)
            token = _principal.set(judged)
            try:
                async for item in behaviour(request, context):
                    yield item
            finally:
                _principal.reset(token)

        return wrapped

    def _refuse_unknown(self, method: str) -> Any:
        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._deny(method, "?", PermissionDenied(f"{method}: streaming not allowed"))

        return refuse

    def _judge(
        self, method: str, request: Any, context: grpc.aio.ServicerContext
    ) -> Principal | _Refused:
        """The caller, or why not and who asked. Synchronous: an admitted call is decided
        without awaiting anything (only a refusal awaits, for its audit record)."""
        who = "?"
        try:
            principal = self._authenticate(context)
            who = principal.name
            rule = self._table.get(method)
            if rule is None:
                raise PermissionDenied(f"{method} is in no row of the authorization table")
            if principal.kind == "token":
                if not rule.admits_roles(principal.roles):
                    raise PermissionDenied(
                        f"{principal.describe()} may not call {method}: "
                        f"it needs one of the roles {sorted(rule.roles)}"
                    )
                bind_to_token(request, principal)
            elif not rule.services:
                raise Unauthenticated(f"{method} needs a bearer token (none was sent)")
            elif not rule.admits_service(principal.name):
                raise PermissionDenied(f"{principal.describe()} may not call {method}")
        except (Unauthenticated, PermissionDenied) as exc:
            return _Refused(who, exc)
        return principal

    def _authenticate(self, context: grpc.aio.ServicerContext) -> Principal:
        token = bearer(context.invocation_metadata())
        if token is not None:
            return self._verifier.verify(token)
        peer = peer_identity(context)
        if not peer:
            raise Unauthenticated("no client certificate identity and no bearer token")
        return Principal(peer, "service")

    async def _deny(self, method: str, who: str, exc: KeelError) -> NoReturn:
        code = "UNAUTHENTICATED" if isinstance(exc, Unauthenticated) else "PERMISSION_DENIED"
        log.warning("refused %s from %s: %s", method, who, exc)
        if self._on_denied is not None:
            try:
                await self._on_denied(method, who, str(exc), code)
            except Exception:  # the refusal stands even if its record could not be written
                log.exception("could not audit the refusal of %s", method)
        raise exc


class _Refused(NamedTuple):
    who: str
    error: KeelError


def peer_identity(context: grpc.aio.ServicerContext) -> str:
    """The verified client certificate's CN (the server requires and checks the chain)."""
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else ""


# Request fields bound to a token's claims: (field, claim).
_BOUND = (("tenant", "tenant"), ("agent_profile", "profile"), ("agent_id", "agent"))


def bind_to_token(request: Any, principal: Principal) -> None:
    """Fill the request's tenant (and agent/profile, when the token names them) from the token;
    a field that names another is refused. Looks at the request and its ``RequestContext``."""
    holders = [request]
    if _has_field(request, "context"):
        holders.append(request.context)
    for holder in holders:
        for name, claim in _bound_fields(getattr(holder, "DESCRIPTOR", None)):
            bound: str = getattr(principal, claim)
            if not bound or bound == ANY_TENANT:
                continue
            claimed = getattr(holder, name)
            if claimed and claimed != bound:
                raise PermissionDenied(
                    f"the request's {name} {claimed!r} is not the token's {claim} {bound!r}"
                )
            setattr(holder, name, bound)


def _has_field(message: Any, name: str) -> bool:
    descriptor = getattr(message, "DESCRIPTOR", None)
    return descriptor is not None and name in descriptor.fields_by_name


@functools.cache
def _bound_fields(descriptor: Any) -> tuple[tuple[str, str], ...]:
    """The (field, claim) pairs of ``_BOUND`` a message type has: found once per type (there
    are a few dozen), not by descriptor lookups on every call."""
    if descriptor is None:
        return ()
    return tuple((name, claim) for name, claim in _BOUND if name in descriptor.fields_by_name)
