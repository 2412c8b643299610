"""Where ``http_fetch`` may connect: a host allow-list, and an address check at connect time.

The address check lives in the connection layer (an httpcore network backend), not before the
request: the backend resolves the host itself, refuses the connection if *any* address is
private, loopback, link-local, multicast, reserved or otherwise not global, and then connects
to an address it checked. So a redirect, a DNS answer that changes between a check and the
connect (rebinding), or a name that resolves to both a public and a private address, cannot
reach an internal service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpcore

from keel_tool_gateway.domain.registry import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> every address the host resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]


class BlockedDestination(ToolError):
    """The URL's host or one of its addresses is not allowed; nothing was sent to it."""


def host_allowed(host: str, allowed_domains: Sequence[str]) -> bool:
    """An entry allows its host and every subdomain (``example.com`` allows
    ``api.example.com``); ``*`` allows every host. Compared case-insensitively."""
    host = host.lower().rstrip(".")
    for entry in allowed_domains:
        domain = entry.lower().strip().rstrip(".")
        if domain == "*" or host == domain or host.endswith("." + domain):
            return True
    return False


def refusal_reason(address: IPAddress, exempt: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be reached, or None. ``exempt`` networks are always allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 is 127.0.0.1 on a dual-stack socket.
        address = address.ipv4_mapped
    if any(address in network for network in exempt):
        return None
    for attribute, reason in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that connects only to checked addresses.

    ``allow_private`` turns the address check off; ``exempt`` allows chosen networks (an
    internal API, a test server) while every other private address stays refused.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        exempt: Sequence[IPNetwork] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private
        self._exempt = tuple(exempt)
        self._resolver = resolver

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """Every address of ``host``; raises BlockedDestination if any one is refused."""
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise ToolError(f"cannot resolve {host!r}: {exc}") from exc
        if not addresses:
            raise ToolError(f"cannot resolve {host!r}: no addresses")
        if self._allow_private:
            return addresses
        for text in addresses:
            reason = refusal_reason(ipaddress.ip_address(text.split("%", 1)[0]), self._exempt)
            if reason is not None:
                raise BlockedDestination(
                    f"refused: {host} resolves to {text}, a {reason} address "
                    "(private and internal addresses are not fetched)"
                )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.checked_addresses(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
