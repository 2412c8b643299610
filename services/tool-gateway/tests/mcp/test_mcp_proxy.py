"""The declared-host proxy's rules on their own: which targets it admits and which address it
connects to (name resolution is replaced, so public names can be tried without a network),
and the seccomp program that lets only AF_INET sockets through for it."""

from __future__ import annotations

import socket

import pytest

from keel_tool_gateway.adapters.mcp.proxy import HostProxy, Refused, parse_host
from keel_tool_gateway.adapters.sandbox.seccomp import (
    BPF_RET_K,
    SECCOMP_RET_KILL_PROCESS,
    build_program,
)

PUBLIC = "93.184.216.34"
PRIVATE = "10.0.0.7"


class Resolver:
    """What DNS would answer, by name; records every lookup."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = {name.replace("_", "."): found for name, found in answers.items()}
        self.asked: list[str] = []

    async def __call__(self, host: str, _port: int) -> list[str]:
        self.asked.append(host)
        return self.answers[host]


async def test_a_declared_public_name_is_admitted_at_the_address_checked() -> None:
    resolver = Resolver(api_example_com=[PUBLIC])
    proxy = HostProxy("t", ["API.example.com:443"], resolver)
    assert await proxy.admit("api.EXAMPLE.com", 443) == PUBLIC


async def test_a_name_with_any_private_address_is_refused() -> None:
    resolver = Resolver(rebind_example_com=[PUBLIC, PRIVATE], meta_example_com=["169.254.169.254"])
    proxy = HostProxy("t", ["rebind.example.com:443", "meta.example.com:80"], resolver)
    with pytest.raises(Refused, match="not a public address"):
        await proxy.admit("rebind.example.com", 443)
    with pytest.raises(Refused, match="not a public address"):
        await proxy.admit("meta.example.com", 80)


async def test_undeclared_hosts_and_ports_are_refused_before_any_lookup() -> None:
    resolver = Resolver()
    proxy = HostProxy("t", ["api.example.com:443", f"{PRIVATE}:8080"], resolver)
    for host, port in (("api.example.com", 80), ("other.example.com", 443), (PRIVATE, 22)):
        with pytest.raises(Refused, match="not declared"):
            await proxy.admit(host, port)
    assert resolver.asked == []  # nothing was even looked up
    assert await proxy.admit(PRIVATE, 8080) == PRIVATE  # a literal is taken as declared


def test_host_entries_need_a_port() -> None:
    assert parse_host("[::1]:8443") == ("::1", 8443)
    for bad in ("api.example.com", "api.example.com:0", ":443", "api.example.com:https"):
        with pytest.raises(ValueError, match="not host:port"):
            parse_host(bad)


def test_the_filter_with_socket_domains_keeps_every_jump_inside() -> None:
    program = build_program(("socketpair",), (socket.AF_INET,))
    assert program[-1] == (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)
    for index, (code, jt, jf, _) in enumerate(program):
        if code & 0x07 == 0x05:  # BPF_JMP
            assert index + 1 + max(jt, jf) < len(program)
            assert max(jt, jf) <= 255
    with pytest.raises(ValueError, match="not in the seccomp table"):
        build_program(("read",))
