"""``http_fetch``: GET or HEAD one URL on an allow-listed host, with a capped body.

Redirects are followed by hand, one hop at a time, so every hop's host is checked against the
allow-list before anything is sent to it; every connection goes through ``GuardedBackend``,
which refuses private and internal addresses (see ``http_guard``). Each call uses a fresh
client (no cookies or connections carried from one session's call to another's) that ignores
proxy environment variables, which would otherwise route around the address check.
"""

from __future__ import annotations

from typing import Literal

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.adapters.tools.http_guard import (
    BlockedDestination,
    GuardedBackend,
    IPNetwork,
    Resolver,
    host_allowed,
    system_resolver,
)
from keel_tool_gateway.domain.registry import Tool, ToolError
from keel_tool_gateway.domain.resilience.errors import RetryableToolError
from keel_tool_gateway.domain.resilience.spec import ToolResilience

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
TEXT_SUFFIXES = ("+json", "+xml")
REDIRECTS = (301, 302, 303, 307, 308)


class HttpFetchSettings(BaseModel):
    """Settings of ``http_fetch`` (env ``KEEL_TOOL_GATEWAY_HTTP_FETCH__…``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Hosts that may be fetched; an entry allows its subdomains too; "*" allows any host.
    # Empty (the default): every fetch is refused.
    allowed_domains: list[str] = Field(default_factory=list)
    # Fetch private, loopback, link-local... addresses too. Off outside tests.
    allow_private: bool = False
    # Networks reachable even with allow_private off (an internal API), e.g. "10.1.2.0/24".
    allowed_networks: list[IPNetwork] = Field(default_factory=list)
    # Most bytes of a body ever read, whatever a call asks for.
    max_bytes: int = Field(default=1_000_000, ge=1)
    max_redirects: int = Field(default=5, ge=0, le=20)
    # Connect/read time-out of each request; the tool's time-out is this plus 2 s.
    timeout_s: float = Field(default=10.0, gt=0)
    user_agent: str = "keel-tool-gateway/0.1 (http_fetch)"


class HttpFetchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=2048, description="http or https URL on an allowed host."
    )
    method: Literal["GET", "HEAD"] = Field(default="GET", description="GET or HEAD.")
    max_bytes: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Most bytes of the body to return."
    )


def make_http_fetch(
    settings: HttpFetchSettings, *, resolver: Resolver = system_resolver
) -> Tool[HttpFetchInput]:
    """The tool; ``resolver`` is replaceable so tests can give a name any addresses."""

    async def run(args: HttpFetchInput) -> str:
        backend = GuardedBackend(
            allow_private=settings.allow_private,
            exempt=settings.allowed_networks,
            resolver=resolver,
        )
        transport = _guarded_transport(backend)
        async with httpx.AsyncClient(
            transport=transport,
            timeout=settings.timeout_s,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": settings.user_agent},
        ) as client:
            try:
                return await _fetch(client, settings, args)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the server: GET and HEAD may be tried again.
                raise RetryableToolError(f"request failed: {type(exc).__name__}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise ToolError(f"request failed: {type(exc).__name__}: {exc}") from exc

    return Tool(
        name="http_fetch",
        description=(
            "Fetch a URL (GET or HEAD) from an allowed host; returns the status, final URL, "
            "content type and the body as text (capped)."
        ),
        input_model=HttpFetchInput,
        run=run,
        timeout_s=settings.timeout_s + 2.0,
        # GET and HEAD are safe to repeat; one breaker guards outbound HTTP as a whole.
        resilience=ToolResilience(idempotent=True, dependency="http"),
        effects="read_only",
    )


def _guarded_transport(backend: GuardedBackend) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend, so its pool is replaced by one with the guarded backend
    # (same TLS defaults); pinned httpx 0.28 keeps the pool in ``_pool``.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=backend
    )
    return transport


async def _fetch(
    client: httpx.AsyncClient, settings: HttpFetchSettings, args: HttpFetchInput
) -> str:
    url = _checked_url(args.url, settings)
    limit = min(args.max_bytes, settings.max_bytes)
    for _ in range(settings.max_redirects + 1):
        request = client.build_request(args.method, url)
        response = await client.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                url = _checked_url(str(response.url.join(location)), settings)
                continue
            body, truncated = await _read_capped(response, limit)
            return _render(response, body, truncated, limit)
        finally:
            await response.aclose()
    raise ToolError(f"more than {settings.max_redirects} redirects")


def _checked_url(text: str, settings: HttpFetchSettings) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ToolError(f"invalid URL: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs are fetched, not {url.scheme or 'none'!r}")
    host = url.host
    if not host:
        raise ToolError("the URL has no host")
    if url.userinfo:
        raise ToolError("URLs with credentials are not fetched")
    if not host_allowed(host, settings.allowed_domains):
        raise BlockedDestination(f"refused: host {host!r} is not on the allow-list")
    return url


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _render(response: httpx.Response, body: bytes, truncated: bool, limit: int) -> str:
    content_type = response.headers.get("content-type", "")
    lines = [
        f"status: {response.status_code} {response.reason_phrase}".rstrip(),
        f"url: {response.url}",
        f"content-type: {content_type or 'unknown'}",
        f"bytes: {len(body)}" + (f" (truncated at {limit})" if truncated else ""),
    ]
    if response.request.method == "HEAD":
        return "\n".join(lines)
    if not _is_text(content_type):
        return "\n".join([*lines, "", "[binary content not shown]"])
    text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    return "\n".join([*lines, "", text])


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return not kind or kind.startswith(TEXT_TYPES) or kind.endswith(TEXT_SUFFIXES)
