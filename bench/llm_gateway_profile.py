"""Where a secured LLM gateway call spends its CPU: cProfile of misses and hits in one process.

The real servicer, use case, cache, accounting and signed audit emitter (over an in-memory
publisher: the broker is not what is profiled) behind the secured gRPC server (mutual TLS, the
authorization interceptor, rate limits, metrics, tracing), called over loopback as the agent
loop (``--token``: as an operator with a bearer token). Client and server share the process, so
the listing includes the client's share; read the server's rows (``keel_*``, ``grpc/aio``).

Usage: python bench/llm_gateway_profile.py [--calls N] [--token] [--top K] [--cpu | --inproc]
Prints the top functions by own time for misses, then for hits. Numbers only. ``--cpu`` runs no
profiler: the server runs in a process of its own and the script prints the server's CPU per
call (from /proc: what the gateway process pays, without the client's share), the client's,
and wall time. ``--inproc``: the servicer called directly, no gRPC (the gateway's own work).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import multiprocessing
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_core import trust
from keel_core.grpc import ClientCredentials, GrpcServer, ServerSecurity, secure_channel
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import ROLES, mint_token
from keel_core.testing import in_memory_audit
from keel_llm_gateway.domain.cache import ResponseCache
from keel_llm_gateway.handlers.grpc_servicer import LLMGatewayServicer
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import FakeProvider
from keel_llm_gateway.usecases.completions import Completions
from keel_llm_gateway.usecases.gateway import Gateway

CONTEXT = common_pb2.RequestContext(session_id="bench", agent_id="bench", tenant="bench")


def request(index: int) -> llm_pb2.CompleteRequest:
    return llm_pb2.CompleteRequest(
        context=CONTEXT,
        model="mock-model",
        messages=[common_pb2.ChatMessage(role="user", content=f"What is (17 * 23) + {index}?")],
    )


async def start_server(
    material: trust.TrustMaterial, sync: bool
) -> tuple[GrpcServer, Any, Completions]:
    """The secured server with the real servicer, use case and signed audit emitter."""
    registry = CollectorRegistry()
    audit, _ = in_memory_audit("llm-gateway", signer=material.audit_signer("llm-gateway"))
    audit = type(audit)(
        audit._producer,  # noqa: SLF001 - the same publisher, without waiting for acks
        audit.producer_id,
        source="llm-gateway",
        identity="llm-gateway",
        signer=material.audit_signer("llm-gateway"),
        wait_for_ack=False,
    )
    audit.start()
    metrics = LLMMetrics(registry)
    gateway = Gateway.single(
        FakeProvider(replies=["The answer is 395."]),
        {},
        cache=ResponseCache(max_entries=100_000, ttl_s=600),
        observer=metrics,
    )
    try:
        completions = Completions(gateway, audit, metrics, audit_in_background=not sync)
    except TypeError:  # the code before the background audit (to compare with, --cpu)
        completions = Completions(gateway, audit, metrics)
    security = ServerSecurity(
        material.tls_identity("llm-gateway"), token_verifier(material, trust.TrustSettings())
    )
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                LLMGatewayServicer(completions),
                llm_pb2_grpc.add_LLMGatewayServicer_to_server,
                "keel.llm.v1.LLMGateway",
            )
        ],
        registry,
        security,
    )
    await server.start()
    return server, audit, completions


def credentials_for(args: argparse.Namespace, material: trust.TrustMaterial) -> ClientCredentials:
    token = ""
    identity = "agent-loop"
    if args.token:
        identity = "operator"
        token = mint_token(material.token_signing_key(), sub="bench", tenant="*", roles=ROLES)
    return ClientCredentials(material.tls_identity(identity), token)


async def profile(args: argparse.Namespace, material: trust.TrustMaterial) -> None:
    server, audit, completions = await start_server(material, args.sync)
    async with secure_channel(
        f"127.0.0.1:{server.port}", credentials_for(args, material)
    ) as channel:
        stub = llm_pb2_grpc.LLMGatewayStub(channel)
        for index in range(200):  # warm up: connection, code paths
            await stub.Complete(request(-index - 1))
        for name, first in (("miss", 0), ("hit", 0)):
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for index in range(first, first + args.calls):
                await stub.Complete(request(index))
            profiler.disable()
            elapsed = time.perf_counter() - started
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
            print(f"\n===== {name}: {args.calls} calls, {1e3 * elapsed / args.calls:.3f} ms each")
            print(out.getvalue())
    await server.stop(0)
    await completions.drain()
    await audit.close()


def serve_forever(directory: str, ports: Any, sync: bool) -> None:
    """The server process of ``--cpu``: serves until it is terminated."""

    async def run() -> None:
        server, _, _ = await start_server(trust.TrustMaterial(Path(directory)), sync)
        ports.put(server.port)
        await asyncio.Event().wait()

    asyncio.run(run())


def process_cpu_s(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (/proc, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(args: argparse.Namespace, directory: str) -> None:
    """The server in its own process, this one the client: the server's CPU per call (from
    /proc) apart from the client's, misses then hits, one call at a time."""
    material = trust.TrustMaterial(Path(directory))
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    child = context.Process(target=serve_forever, args=(directory, ports, args.sync))
    child.start()
    try:
        port = ports.get(timeout=60)
        async with secure_channel(f"127.0.0.1:{port}", credentials_for(args, material)) as channel:
            stub = llm_pb2_grpc.LLMGatewayStub(channel)
            for index in range(200):  # warm up: connection, code paths
                await stub.Complete(request(-index - 1))
            await cpu_per_call(stub, args.calls, child.pid or 0)
    finally:
        child.terminate()
        child.join()


async def cpu_per_call(stub: llm_pb2_grpc.LLMGatewayStub, calls: int, server_pid: int) -> None:
    """Server CPU (its process) and client CPU (this one) per call, and wall time."""
    for name, first in (("miss", 10**6), ("hit", 10**6)):
        walls = []
        server = process_cpu_s(server_pid)
        client = time.process_time()
        for index in range(first, first + calls):
            started = time.perf_counter()
            await stub.Complete(request(index))
            walls.append(time.perf_counter() - started)
        client = time.process_time() - client
        server = process_cpu_s(server_pid) - server
        walls.sort()
        p50, p99 = 1e3 * walls[len(walls) // 2], 1e3 * walls[int(0.99 * len(walls))]
        print(
            f"{name}: server {1e3 * server / calls:.3f} ms CPU per call "
            f"({calls / server:.0f} calls/s per core), client {1e3 * client / calls:.3f} ms, "
            f"wall p50 {p50:.3f} ms, p99 {p99:.3f} ms"
        )


async def in_process(args: argparse.Namespace, material: trust.TrustMaterial) -> None:
    """The gateway's own Python work per call, no gRPC: the servicer's ``Complete`` called
    directly (protobuf in and out, use case, cache, budgets, the signed audit record written
    behind the answer), CPU per call; the median of five rounds, misses then hits."""
    server, audit, completions = await start_server(material, args.sync)
    await server.stop(0)
    servicer = LLMGatewayServicer(completions)
    for index in range(200):  # warm up
        await servicer.Complete(request(-index - 1), None)
    await completions.drain()
    for name in ("miss", "hit"):
        rounds = []
        for _ in range(5):
            cpu = time.process_time()
            for index in range(10**6, 10**6 + args.calls):
                await servicer.Complete(request(index), None)
            await completions.drain()
            rounds.append(1e6 * (time.process_time() - cpu) / args.calls)
            if name == "miss":  # a fresh cache: every round misses
                fresh = ResponseCache(max_entries=100_000, ttl_s=600)
                completions.gateway._cache = fresh  # noqa: SLF001
        rounds.sort()
        print(f"in-process {name}: {rounds[2]:.1f} µs CPU per call (median of 5 rounds)")
    await audit.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime", help="a pstats sort key (cumulative, ...)")
    parser.add_argument("--token", action="store_true", help="call with an operator's token")
    parser.add_argument("--sync", action="store_true", help="audit awaited (AUDIT_SYNC)")
    parser.add_argument(
        "--cpu", action="store_true", help="server and client CPU per call, server apart"
    )
    parser.add_argument(
        "--inproc", action="store_true", help="the servicer called directly: our CPU per call"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        material = trust.TrustMaterial(trust.generate(Path(directory)))
        if args.inproc:
            asyncio.run(in_process(args, material))
        elif args.cpu:
            asyncio.run(measure(args, directory))
        else:
            asyncio.run(profile(args, material))


if __name__ == "__main__":
    main()
