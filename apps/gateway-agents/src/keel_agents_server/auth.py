"""Who is calling: the same bearer JWTs as the gRPC front door, checked here first so that
an unauthenticated HTTP caller gets 401 without a gRPC call, and a foreign Host gets 400.

The token is then forwarded unchanged on the gRPC call, where the agent loop's interceptor
judges it again: tenant and roles always come from the caller's own token, never from an
identity of this server (which would widen the caller's tenant).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from keel_contracts.errors import Unauthenticated
from keel_core.grpc.tokens import Principal, TokenVerifier, bearer

log = logging.getLogger(__name__)

# Paths anyone may read: the A2A card says how to authenticate, so it is public (A2A spec).
PUBLIC_PATHS = frozenset({"/.well-known/agent-card.json"})


@dataclass(frozen=True)
class Caller:
    """A verified caller and the token to forward as them."""

    principal: Principal
    token: str


class Authenticator:
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    def caller(self, token: str | None) -> Caller:
        """``Unauthenticated`` for no token or one the verifier refuses."""
        if not token:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <JWT>)")
        return Caller(self._verifier.verify(token), token)

    def from_headers(self, headers: Mapping[str, str] | None) -> Caller:
        return self.caller(bearer(list((headers or {}).items())))


def host_allowed(host_header: str, allowed: Sequence[str]) -> bool:
    """The Host header's name (port dropped; IPv6 brackets kept) is on the allow-list."""
    name = host_header.strip().lower()
    if name.startswith("["):
        name = name[: name.find("]") + 1]
    else:
        name = name.rsplit(":", 1)[0] if ":" in name else name
    return name in {a.lower() for a in allowed}


class GuardMiddleware:
    """Host allow-list, then bearer authentication, before anything else runs (MCP and A2A
    alike). Handlers verify the token again from the headers they see (microseconds): the MCP
    SDK runs a tool in its session's task, not this request's, so nothing is handed over."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, allowed_hosts: Sequence[str]):
        self._app = app
        self._auth = authenticator
        self._allowed = list(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        address, port = scope.get("client") or ("?", "?")
        client = f"{address}:{port}"
        if not host_allowed(headers.get("host", ""), self._allowed):
            log.warning(
                "refused %s %s from %s: host not allowed", scope["method"], scope["path"], client
            )
            await _refuse(send, 400, "host not allowed")
            return
        if scope["path"] in PUBLIC_PATHS:
            await self._app(scope, receive, send)
            return
        try:
            self._auth.from_headers(headers)
        except Unauthenticated as exc:  # the reason names no token content
            log.warning("refused %s %s from %s: %s", scope["method"], scope["path"], client, exc)
            await _refuse(send, 401, str(exc), {"www-authenticate": 'Bearer realm="keel"'})
            return
        await self._app(scope, receive, send)


async def _refuse(
    send: Send, status: int, reason: str, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
