"""LLM gateway overhead next to the LiteLLM proxy, both in front of the same mock upstream.

Processes: a mock OpenAI-compatible upstream (bench/llm_gateway_mock.py), the Keel LLM gateway
as the real service (``python -m keel_llm_gateway``, provider "openai", auditing to a real
Kafka broker: ``KEEL_KAFKA_BOOTSTRAP`` or one started for the run), and the LiteLLM proxy
(PyPI ``litellm[proxy]``, one worker, installed on first run into its own virtualenv under
~/.cache/keel/bench-litellm, never into .venv). This process is the client.

Measured, requests sent on a fixed schedule (open loop; latency counted from the scheduled
send time, so a stall is not hidden):
- direct to the mock over HTTP (the floor), Keel over gRPC, LiteLLM over HTTP, at
  ``--rate`` req/s: p50/p99, and "added" = p50/p99 minus the direct p50/p99;
- a rate sweep for each gateway: p99 and achieved req/s per offered rate, the highest rate
  held with p99 <= 30 ms and no errors, and the gateway process's CPU per request (from
  /proc), whose inverse is the req/s one core could serve;
- cache hits: the same temperature-0 request again, over gRPC and in-process
  (``Gateway.complete`` without the network).
Keel is measured on the secured path by default, as it runs in a deployment: mutual TLS with
the agent loop's certificate (its usual caller), and mutual TLS plus an operator's bearer
token (verified per call); plaintext (``KEEL_TRUST_INSECURE_DEV``) is printed beside them to
show what the trust layer costs (``--modes``).
Keel is called through the bare generated stub on purpose, not ``keel_clients.LLMClient``:
the LiteLLM side is a bare HTTP client, and what is compared is what each gateway adds (the
client's contract-type mapping and span cost ~0.15 ms p50 more, and are the caller's cost).
Every Keel request is a cache miss (a new message each), except in the cache-hit part.
Prints a table and writes bench/results/llm_gateway.json. No assertions: numbers only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_cli.broker import local_broker, repo_root
from keel_cli.stack import LocalStack, free_port, harness_credentials, with_free_ports
from keel_clients.channel import open_channel
from keel_core import trust
from keel_core.bus.admin import ensure_topics
from keel_core.grpc import ClientCredentials, use_client_credentials
from keel_core.grpc.tokens import ROLES, mint_token
from keel_core.settings import KafkaSettings
from keel_llm_gateway.domain.cache import ResponseCache
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest
from keel_llm_gateway.testing import FakeProvider
from keel_llm_gateway.usecases.gateway import Gateway

# The stacks this script starts are secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)

LITELLM_VERSION = "1.106.12"
LITELLM_VENV = Path.home() / ".cache" / "keel" / "bench-litellm"
MODEL = "mock-model"
CONTEXT = common_pb2.RequestContext(session_id="bench", agent_id="bench", tenant="bench")
P99_LIMIT_MS = 30.0

Call = Callable[[int], Awaitable[None]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Run:
    rate: float
    latencies_ms: list[float]
    errors: int
    seconds: float
    cpu_s: float | None
    # The process's CPU per second with no request (its Kafka client and timers): subtracted
    # for the "net" figure, which at a low rate is otherwise mostly the idle cost.
    idle_cpu_per_s: float = 0.0

    def row(self) -> dict[str, Any]:
        done = len(self.latencies_ms)
        return {
            "offered_rps": self.rate,
            "achieved_rps": round(done / self.seconds, 1),
            "p50_ms": round(statistics.median(self.latencies_ms), 3) if done else None,
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 3) if done else None,
            "errors": self.errors,
            "requests": done + self.errors,
            "cpu_ms_per_request": round(1000 * self.cpu_s / max(done, 1), 3)
            if self.cpu_s is not None
            else None,
            "net_cpu_ms_per_request": round(
                1000 * (self.cpu_s - self.idle_cpu_per_s * self.seconds) / max(done, 1), 3
            )
            if self.cpu_s is not None
            else None,
        }


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process, from /proc (Linux)."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# pid -> the process's CPU seconds per second while no request is sent (``idle_cpu``).
IDLE_CPU_PER_S: dict[int, float] = {}


async def idle_cpu(pid: int, seconds: float) -> float:
    """CPU seconds per second ``pid`` spends with no request in flight."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)  # measuring an interval of quiet, not waiting for an event
    after = cpu_seconds(pid)
    if before is None or after is None:
        return 0.0
    IDLE_CPU_PER_S[pid] = (after - before) / seconds
    return IDLE_CPU_PER_S[pid]


async def at_rate(call: Call, rate: float, seconds: float, pid: int | None = None) -> Run:
    """``rate`` requests a second for ``seconds``, each started on schedule in its own task."""
    count = max(1, int(rate * seconds))
    latencies: list[float] = []
    errors = 0

    async def one(index: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(index)
        except Exception:  # noqa: BLE001 - counted, the run goes on
            errors += 1
            return
        latencies.append((time.monotonic() - scheduled) * 1000)

    cpu_before = cpu_seconds(pid)
    start = time.monotonic() + 0.05
    tasks = []
    for index in range(count):
        scheduled = start + index / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    cpu_after = cpu_seconds(pid)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return Run(rate, latencies, errors, elapsed, cpu, IDLE_CPU_PER_S.get(pid or 0, 0.0))


def ensure_litellm() -> Path:
    """The LiteLLM proxy in its own virtualenv (created once; minutes on first run)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"• installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (first run)")
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = str(LITELLM_VENV / "bin" / "pip")
    subprocess.run([pip, "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    return binary


async def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            try:
                if (await client.get(url, timeout=1)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} did not come up in {timeout_s:.0f}s")


def start_litellm(run_dir: Path, upstream: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = run_dir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    # No auth on either side (Keel's gRPC runs without tokens here too); loopback only.
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    env.pop("PYTHONPATH", None)
    log = (run_dir / "litellm.log").open("wb")
    process = subprocess.Popen(
        [
            str(ensure_litellm()),
            *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
            *("--num_workers", "1"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, port


def body(index: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "temperature": 0,
        "messages": [{"role": "user", "content": f"What is (17 * 23) + {index}?"}],
    }


def keel_request(index: int) -> llm_pb2.CompleteRequest:
    return llm_pb2.CompleteRequest(
        context=CONTEXT,
        model=MODEL,
        messages=[common_pb2.ChatMessage(role="user", content=f"What is (17 * 23) + {index}?")],
    )


async def sweep(call: Call, rates: list[float], seconds: float, pid: int | None) -> list[Run]:
    runs = []
    for rate in rates:
        run = await at_rate(call, rate, seconds, pid)
        runs.append(run)
        row = run.row()
        print(
            f"    {rate:6.0f} req/s offered: {row['achieved_rps']:6.1f} done, "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, errors {row['errors']}, "
            f"cpu {row['cpu_ms_per_request']} ms/req"
        )
        if row["errors"] or row["achieved_rps"] < 0.9 * rate:
            break  # saturated: higher rates only queue
    return runs


def best_rate(runs: list[Run]) -> float:
    held = [r.rate for r in runs if not r.errors and r.row()["p99_ms"] <= P99_LIMIT_MS]
    return max(held, default=0.0)


async def in_process_cache_hit(calls: int) -> dict[str, float]:
    gateway = Gateway.single(FakeProvider(), {}, cache=ResponseCache(max_entries=16, ttl_s=600))
    request = CompletionRequest(messages=(ChatMessage(role="user", content="What is 2 + 2?"),))
    await gateway.complete(request)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await gateway.complete(request)
        samples.append((time.perf_counter() - started) * 1e6)
    return {"p50_us": statistics.median(samples), "p99_us": percentile(samples, 0.99)}


def start_mock(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    mock = subprocess.Popen(
        [sys.executable, str(root / "bench" / "llm_gateway_mock.py"), str(port)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    return mock, f"http://127.0.0.1:{port}/v1"


@dataclass
class Targets:
    """What the client calls, and the pid whose CPU each call costs."""

    calls: dict[str, tuple[Call, int | None]]
    keel_hit: Call
    keel_miss_then_hits: Callable[[], Awaitable[None]]


# How the bench dials the gateway: the agent loop's certificate (its usual caller), that plus an
# operator's token (the token is verified on every call), or plaintext (no trust material).
MODES = ("mtls", "mtls-token", "plaintext")


def credentials_for(stack: LocalStack, mode: str) -> ClientCredentials | None:
    if mode == "plaintext":
        return None
    if mode == "mtls":
        return stack.credentials("agent-loop")
    material = trust.TrustMaterial(stack.trust_dir)
    token = mint_token(material.token_signing_key(), sub="bench", tenant="*", roles=ROLES)
    return stack.credentials("operator", token)


async def measure(
    args: argparse.Namespace, kafka: KafkaSettings, run_dir: Path, mode: str, with_litellm: bool
) -> dict[str, Any]:
    mock, upstream = start_mock(repo_root())
    stack = LocalStack(
        run_dir=run_dir,
        insecure=mode == "plaintext",
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
        extra_env={
            "KEEL_LLM_GATEWAY_PROVIDER": "openai",
            "KEEL_LLM_GATEWAY_OPENAI_BASE_URL": upstream,
            "KEEL_LLM_GATEWAY_OPENAI_MODEL": MODEL,
            "KEEL_LLM_GATEWAY_LOG_LEVEL": "WARNING",
        },
    )
    litellm: tuple[subprocess.Popen[bytes], int] | None = None
    try:
        assert mock.stdout is not None
        await asyncio.to_thread(mock.stdout.readline)
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        if not stack.insecure:
            trust.generate(stack.trust_dir)
        spec = stack.spec("llm-gateway")
        gateway_pid = stack.start_one(spec).pid
        if with_litellm:
            litellm = start_litellm(run_dir, upstream)
        await stack.wait_healthy(spec, time.monotonic() + 90)
        if litellm is not None:
            health = f"http://127.0.0.1:{litellm[1]}/health/liveliness"
            await wait_http(health, litellm[0], 180)
        channel = open_channel(stack.target("llm-gateway"), credentials_for(stack, mode))
        return await compare(args, channel, upstream, litellm, gateway_pid)
    finally:
        await stack.stop()
        for process in (mock, litellm[0] if litellm else None):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)


async def compare(
    args: argparse.Namespace,
    channel: Any,
    upstream: str,
    litellm: tuple[subprocess.Popen[bytes], int] | None,
    gateway_pid: int,
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(limits=limits, timeout=10) as http,
        channel,
    ):
        targets = clients(http, llm_pb2_grpc.LLMGatewayStub(channel), upstream, litellm)
        targets.calls["keel"] = (targets.calls["keel"][0], gateway_pid)
        for call, _ in targets.calls.values():  # warm up connections and code paths
            await at_rate(call, args.rate, 2.0)
        idle = await idle_cpu(gateway_pid, 3.0)
        print(f"    keel gateway idle: {1000 * idle:.1f} ms CPU per second")
        fixed = await fixed_rate(args, targets)
        sweeps = {
            name: await sweep_summary(name, targets.calls[name], args)
            for name in ("keel", "litellm")
            if name in targets.calls
        }
        await targets.keel_miss_then_hits()
        hits = (await at_rate(targets.keel_hit, args.rate, args.seconds / 2, gateway_pid)).row()
        back_to_back = await closed_loop(targets.keel_hit, 2000)
    return {
        "fixed_rate": fixed,
        "sweep": sweeps,
        "cache_hit_grpc": hits,
        "cache_hit_grpc_back_to_back": back_to_back,
        "cache_hit_in_process": await in_process_cache_hit(5000),
        "litellm_version": LITELLM_VERSION if litellm is not None else None,
    }


async def closed_loop(call: Call, calls: int) -> dict[str, float]:
    """``calls`` requests, each sent when the last one answered: the gateway is never woken
    from idle, which on a small VM costs more than a cache hit itself (the open-loop rows
    above pay it on every request)."""
    latencies = []
    for index in range(calls):
        started = time.perf_counter()
        await call(index)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 3),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 3),
    }


def clients(
    http: httpx.AsyncClient,
    stub: llm_pb2_grpc.LLMGatewayStub,
    upstream: str,
    litellm: tuple[subprocess.Popen[bytes], int] | None,
) -> Targets:
    counter = iter(range(10**9))

    async def direct(_: int) -> None:
        response = await http.post(f"{upstream}/chat/completions", json=body(next(counter)))
        response.raise_for_status()

    async def keel(_: int) -> None:
        await stub.Complete(keel_request(next(counter)), timeout=10)

    async def via_litellm(_: int) -> None:
        assert litellm is not None
        response = await http.post(
            f"http://127.0.0.1:{litellm[1]}/v1/chat/completions",
            json=body(next(counter)),
            headers={"Authorization": "Bearer sk-bench"},
        )
        response.raise_for_status()

    hit = keel_request(-1)

    async def keel_hit(_: int) -> None:
        reply = await stub.Complete(hit, timeout=10)
        if not reply.cached:
            raise RuntimeError("expected a cache hit")

    async def first_miss() -> None:
        await stub.Complete(hit, timeout=10)  # stores the answer

    calls: dict[str, tuple[Call, int | None]] = {"direct": (direct, None), "keel": (keel, None)}
    if litellm is not None:
        calls["litellm"] = (via_litellm, litellm[0].pid)
    return Targets(calls, keel_hit, first_miss)


async def fixed_rate(args: argparse.Namespace, targets: Targets) -> dict[str, dict[str, Any]]:
    """The targets interleaved on one schedule (request i goes to target i mod n), so a busy
    machine slows them alike and the differences stay meaningful."""
    names = list(targets.calls)
    print(
        f"\n• one request at a time, interleaved: {args.rate:.0f} req/s in all "
        f"({args.rate / len(names):.1f} each) for {args.seconds:.0f} s"
    )
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)

    async def mixed(index: int) -> None:
        name = names[index % len(names)]
        started = time.monotonic()
        try:
            await targets.calls[name][0](index)
        except Exception:  # noqa: BLE001 - counted, the run goes on
            errors[name] += 1
            return
        latencies[name].append((time.monotonic() - started) * 1000)

    pids = {name: pid for name, (_, pid) in targets.calls.items()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    run = await at_rate(mixed, args.rate, args.seconds)
    fixed: dict[str, dict[str, Any]] = {}
    for name in names:
        done = latencies[name]
        start_cpu, end_cpu = before[name], cpu_seconds(pids[name])
        cpu = end_cpu - start_cpu if start_cpu is not None and end_cpu is not None else None
        idle = IDLE_CPU_PER_S.get(pids[name] or 0, 0.0)
        fixed[name] = Run(args.rate / len(names), done, errors[name], run.seconds, cpu, idle).row()
        print(f"    {name:<8} {fixed[name]}")
    floor = fixed["direct"]
    for name in ("keel", "litellm"):
        if name in fixed:
            fixed[name]["added_p50_ms"] = round(fixed[name]["p50_ms"] - floor["p50_ms"], 3)
            fixed[name]["added_p99_ms"] = round(fixed[name]["p99_ms"] - floor["p99_ms"], 3)
    return fixed


async def sweep_summary(
    name: str, target: tuple[Call, int | None], args: argparse.Namespace
) -> dict[str, Any]:
    print(f"\n• {name}: rate sweep ({args.sweep_seconds:.0f} s each)")
    call, pid = target
    runs = await sweep(call, args.sweep, args.sweep_seconds, pid)
    cpu = [r.row()["cpu_ms_per_request"] for r in runs if r.row()["cpu_ms_per_request"]]
    net = [r.row()["net_cpu_ms_per_request"] for r in runs if r.row()["net_cpu_ms_per_request"]]
    return {
        "runs": [r.row() for r in runs],
        "max_rps_with_p99_under_30ms": best_rate(runs),
        "cpu_ms_per_request_median": statistics.median(cpu) if cpu else None,
        "rps_per_core_from_cpu": round(1000 / statistics.median(cpu), 1) if cpu else None,
        "net_cpu_ms_per_request_median": statistics.median(net) if net else None,
        "rps_per_core_net": round(1000 / statistics.median(net), 1) if net else None,
    }


def report(result: dict[str, Any]) -> None:
    fixed = result["fixed_rate"]
    print("\nLLM gateway added latency (cache miss, mock upstream over HTTP)")
    print(
        f"  {'':<8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'cpu/req':>8}"
        f" {'net cpu':>8}"
    )
    for name, row in fixed.items():
        print(
            f"  {name:<8} {row['p50_ms']:>10} {row['p99_ms']:>10} {row.get('added_p50_ms', ''):>10}"
            f" {row.get('added_p99_ms', ''):>10} {row['cpu_ms_per_request'] or '':>10}"
            f" {row['net_cpu_ms_per_request'] or '':>8}"
        )
    for name, data in result["sweep"].items():
        print(
            f"  {name}: max rate with p99 <= 30 ms: {data['max_rps_with_p99_under_30ms']:.0f}"
            f" req/s; {data['cpu_ms_per_request_median']} ms CPU/request"
            f" -> {data['rps_per_core_from_cpu']} req/s per core; net of idle "
            f"{data['net_cpu_ms_per_request_median']} ms -> {data['rps_per_core_net']} req/s"
        )
    hit = result["cache_hit_grpc"]
    local = result["cache_hit_in_process"]
    print(
        f"  cache hit: p50 {hit['p50_ms']} ms / p99 {hit['p99_ms']} ms over gRPC; "
        f"in process p50 {local['p50_us']:.1f} µs / p99 {local['p99_us']:.1f} µs; "
        f"{hit['cpu_ms_per_request']} ms gateway CPU per hit ({hit['net_cpu_ms_per_request']} net)"
    )
    if back := result.get("cache_hit_grpc_back_to_back"):
        print(
            f"  cache hit back to back over gRPC (never idle): p50 {back['p50_ms']} ms"
            f" / p99 {back['p99_ms']} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=30.0, help="req/s of the fixed-rate run, all targets"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the fixed run")
    parser.add_argument(
        "--sweep",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[25, 50, 100, 200, 300, 400, 600],
        help="offered rates of the sweep, comma-separated",
    )
    parser.add_argument("--sweep-seconds", type=float, default=8.0)
    parser.add_argument("--skip-litellm", action="store_true", help="measure Keel only")
    parser.add_argument(
        "--modes",
        type=lambda text: [m for m in text.split(",") if m],
        default=["mtls-token", "mtls", "plaintext"],
        help=f"how Keel is dialled, comma-separated, of {', '.join(MODES)} (the first one is "
        "measured beside LiteLLM)",
    )
    args = parser.parse_args()
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        parser.error(f"--modes: unknown {unknown}; choose from {MODES}")
    results: dict[str, Any] = {}
    async with local_broker() as bootstrap:
        kafka = KafkaSettings(bootstrap=bootstrap)
        await ensure_topics(kafka)
        for index, mode in enumerate(args.modes):
            print(f"\n=== Keel dialled with {mode} ===")
            run_dir = Path(tempfile.mkdtemp(prefix="keel-bench-llm-"))
            try:
                with_litellm = index == 0 and not args.skip_litellm
                results[mode] = await measure(args, kafka, run_dir, mode, with_litellm)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
    load = os.getloadavg()
    for mode, result in results.items():
        print(f"\n=== {mode} ===")
        report(result)
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result = {
        "modes": results,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg": load},
    }
    out = repo_root() / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "llm_gateway.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
