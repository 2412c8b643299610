"""The floor of one gRPC hop on this machine: grpcio's asyncio stack against its sync stack.

Every hop of a Keel step is a grpcio-asyncio call with mutual TLS between two processes. The
issue-17 profiles show grpcio's own poller thread, its callbacks and its socket writes as the
largest frames of every service, so before deciding how the services serve their hot methods
this measures the transport with nothing of Keel's around it: an echo of a 1 KiB message (the
size of a policy request) over mutual TLS with the certificates ``keel dev trust`` makes, the
server in its own process, for each pairing of client and server stack:

* ``aio -> aio``: what every Keel hop is today;
* ``aio -> sync``: Keel's asyncio callers against a thread-pool server (what serving the hot
  methods from a sync server would give them);
* ``sync -> sync`` and ``sync -> aio``: the stack's floor, for reference.

For each: round trip p50/p99 one call at a time (a lone session's hop), and client and server
CPU per call read from /proc over the same calls; then 16 calls in flight at once (a busy
service) with the server's CPU per call. Numbers go to stdout and
``bench/results/grpc_transport.json``; the decision they fed is docs/adr/0019-grpc-transport.md.

    python bench/grpc_transport.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import own_cpu_seconds  # noqa: E402
from step_writes import summary  # noqa: E402

METHOD = "/keel.bench.Echo/Echo"
PAYLOAD = os.urandom(1024)
IN_FLIGHT = 16
RESULTS = Path(__file__).resolve().parent / "results" / "grpc_transport.json"


def _identity(trust: Path, name: str) -> tuple[bytes, bytes, bytes]:
    tls = trust / "tls"
    return (
        (tls / "ca.pem").read_bytes(),
        (tls / f"{name}.pem").read_bytes(),
        (tls / f"{name}.key").read_bytes(),
    )


def _server_credentials(trust: Path) -> grpc.ServerCredentials:
    ca, cert, key = _identity(trust, "policy")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def _channel_credentials(trust: Path) -> grpc.ChannelCredentials:
    ca, cert, key = _identity(trust, "tool-gateway")
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def _echo_handler(behaviour: Any) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "keel.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(behaviour)}
    )


# ---- the server process -----------------------------------------------------------------------


def serve(stack: str, trust: Path, port_file: Path) -> None:
    """Serve the echo until stdin closes; the bound port is written to ``port_file``."""
    if stack == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=IN_FLIGHT))
        server.add_generic_rpc_handlers((_echo_handler(lambda request, context: request),))
        port = server.add_secure_port("127.0.0.1:0", _server_credentials(trust))
        server.start()
        port_file.write_text(str(port))
        sys.stdin.read()
        server.stop(0)
        return

    async def main() -> None:
        async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return request

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_echo_handler(echo),))
        port = server.add_secure_port("127.0.0.1:0", _server_credentials(trust))
        await server.start()
        await asyncio.to_thread(port_file.write_text, str(port))
        await asyncio.to_thread(sys.stdin.read)
        await server.stop(0)

    asyncio.run(main())


class Server:
    """An echo server of one stack in a child process."""

    def __init__(self, stack: str, trust: Path) -> None:
        self._port_file = trust / f"port-{stack}"
        self._port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", stack, "--trust", str(trust)],
            stdin=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not self._port_file.exists() or not self._port_file.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the {stack} echo server did not start")
            time.sleep(0.05)
        self.target = f"localhost:{self._port_file.read_text()}"

    def cpu(self) -> float:
        return own_cpu_seconds(self.process.pid)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


# ---- the clients --------------------------------------------------------------------------------


class Meter:
    """Wall time and both processes' CPU over one run of calls: client CPU is this process's,
    server CPU the child's."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._client_cpu, self._server_cpu = time.process_time(), server.cpu()
        self._wall = time.perf_counter()

    def row(self, samples: list[float] | None, calls: int) -> dict[str, float]:
        """Latency percentiles for a run one call at a time, calls/s for a concurrent one."""
        wall = time.perf_counter() - self._wall
        row: dict[str, float] = summary(samples) if samples else {"calls_per_s": calls / wall}
        row["client_cpu_ms"] = (time.process_time() - self._client_cpu) / calls * 1000
        row["server_cpu_ms"] = (self._server.cpu() - self._server_cpu) / calls * 1000
        return row


def sync_client(server: Server, trust: Path, calls: int) -> dict[str, dict[str, float]]:
    per_worker = calls // IN_FLIGHT
    with grpc.secure_channel(server.target, _channel_credentials(trust)) as channel:
        echo = channel.unary_unary(METHOD)
        for _ in range(200):
            echo(PAYLOAD)

        meter, samples = Meter(server), []
        for _ in range(calls):
            started = time.perf_counter()
            echo(PAYLOAD)
            samples.append(time.perf_counter() - started)
        one_at_a_time = meter.row(samples, calls)

        def worker() -> None:
            for _ in range(per_worker):
                echo(PAYLOAD)

        meter = Meter(server)
        threads = [threading.Thread(target=worker) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "one_at_a_time": one_at_a_time,
            "in_flight": meter.row(None, per_worker * IN_FLIGHT),
        }


def aio_client(server: Server, trust: Path, calls: int) -> dict[str, dict[str, float]]:
    per_worker = calls // IN_FLIGHT

    async def main() -> dict[str, dict[str, float]]:
        async with grpc.aio.secure_channel(server.target, _channel_credentials(trust)) as channel:
            echo = channel.unary_unary(METHOD)
            for _ in range(200):
                await echo(PAYLOAD)

            meter, samples = Meter(server), []
            for _ in range(calls):
                started = time.perf_counter()
                await echo(PAYLOAD)
                samples.append(time.perf_counter() - started)
            one_at_a_time = meter.row(samples, calls)

            async def worker() -> None:
                for _ in range(per_worker):
                    await echo(PAYLOAD)

            meter = Meter(server)
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            in_flight = meter.row(None, per_worker * IN_FLIGHT)
            return {"one_at_a_time": one_at_a_time, "in_flight": in_flight}

    return asyncio.run(main())


PAIRINGS = (("aio", "aio"), ("aio", "sync"), ("sync", "sync"), ("sync", "aio"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--serve", choices=("aio", "sync"), help=argparse.SUPPRESS)
    parser.add_argument("--trust", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.trust, args.trust / f"port-{args.serve}")
        return

    from keel_core.trust import generate

    results: dict[str, Any] = {"calls": args.calls, "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="keel-grpc-bench-") as scratch:
        trust = generate(Path(scratch) / "trust")
        for client, server_stack in PAIRINGS:
            server = Server(server_stack, trust)
            try:
                run = aio_client if client == "aio" else sync_client
                results[f"{client} -> {server_stack}"] = run(server, trust, args.calls)
            finally:
                server.close()
    results["load_after"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))

    print(f"\ngRPC transport, mutual TLS, 1 KiB echo, {args.calls} calls per row")
    print(f"(load average {results['load_before']:.1f} before, {results['load_after']:.1f} after)")
    print(
        f"{'client -> server':18} {'p50':>8} {'p99':>8} {'client CPU':>11} {'server CPU':>11}"
        f"   {IN_FLIGHT} in flight: {'calls/s':>8} {'server CPU':>11}"
    )
    for client, server_stack in PAIRINGS:
        rows = results[f"{client} -> {server_stack}"]
        one, busy = rows["one_at_a_time"], rows["in_flight"]
        print(
            f"{client + ' -> ' + server_stack:18} {one['p50_ms']:6.3f}ms {one['p99_ms']:6.3f}ms"
            f" {one['client_cpu_ms']:8.3f} ms {one['server_cpu_ms']:8.3f} ms"
            f"   {'':13}{busy['calls_per_s']:8.0f} {busy['server_cpu_ms']:8.3f} ms"
        )
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
