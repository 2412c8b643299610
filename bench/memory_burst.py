"""Memory Retrieve under a burst: N sessions start at once and each asks memory one question.

What an agent platform sees when a batch of sessions starts together: every session's first step
retrieves from memory, so the memory service gets ``--sessions`` Retrieve calls in the same few
milliseconds. This measures them as they really run: the memory service as its own process,
secured as ``make run`` starts it (gRPC mutual TLS with the agent loop's identity, Kafka TLS +
SCRAM for its audit records), real embeddings (MiniLM or its static table), Milvus Lite holding
``--entries`` entries of the benchmark corpus (``memory_corpus.py``: real sentence embeddings,
so search works on realistic clusters). The collection is written straight into the service's
Lite file with the service's own store (same schema, same ids) before the process starts, so
filling it costs seconds rather than ``--entries`` audited Store calls.

Printed: one Retrieve at a time (the idle latency), then ``--bursts`` bursts of ``--sessions``
concurrent Retrieve calls, each call timed from just before the burst to its answer: p50, p99
and mean over all calls of all bursts, and the burst's wall time. Each query is a distinct
sentence never stored (another seed), so no cache of any kind can answer it.

``--embedder`` picks the service's embedder: ``minilm`` (contextual, batched) or
``minilm-static`` (its static distillation, docs/adr/0018-static-embeddings.md); by default both
run, one after the other, and a row is printed for each. The collection is filled with the
vectors of the embedder under test (the cached MiniLM corpus vectors, or the static table's,
computed in a second), in a collection recording that embedder, as the service would have
written it.

Run: ``python bench/memory_burst.py [--entries 10000] [--sessions 50] [--bursts 5]
[--embedder minilm minilm-static]``. Results also go to ``bench/results/memory_burst.json``.
Numbers, no asserts: on a shared 2-core machine the load average moves them, so it is printed
with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import memory_corpus  # noqa: E402
from e2e_overhead import grpc_breakdown  # noqa: E402

from keel_cli.broker import local_kafka, repo_root  # noqa: E402
from keel_cli.stack import SERVICES, LocalStack, harness_credentials, with_free_ports  # noqa: E402
from keel_clients import CallOptions, MemoryClient, open_channel  # noqa: E402
from keel_contracts.chat import RequestContext  # noqa: E402
from keel_contracts.errors import KeelError  # noqa: E402
from keel_core.bus.admin import ensure_topics  # noqa: E402
from keel_core.grpc import use_client_credentials  # noqa: E402
from keel_memory.adapters.milvus_store import MilvusStore  # noqa: E402
from keel_memory.adapters.minilm import find_model_dir  # noqa: E402
from keel_memory.adapters.static import SPACE as STATIC_SPACE  # noqa: E402
from keel_memory.adapters.static import StaticEmbedder  # noqa: E402
from keel_memory.domain.models import MEMORY_TYPES, MemoryEntry  # noqa: E402

# The stack here is secured: dial memory as its usual caller, the agent loop.
use_client_credentials(harness_credentials)

COLLECTION = "keel_memory"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fill(uri: str, count: int, embedder: str) -> None:
    """``count`` corpus sentences with their vectors from ``embedder``, types in turn, written
    with the service's own store into the file the service will open."""
    texts = memory_corpus.sentences(count)
    if embedder == "minilm-static":
        vectors = StaticEmbedder.load(find_model_dir()).encode(texts)
        space = STATIC_SPACE
    else:
        vectors = memory_corpus.vectors(count)
        space = "minilm"
    store = await MilvusStore.open(uri, COLLECTION, vectors.shape[1], flush_every=0, embedder=space)
    try:
        now = datetime.now(UTC)
        step = 1000
        for begin in range(0, count, step):
            rows = [
                (
                    MemoryEntry.create(MEMORY_TYPES[i % 3], texts[i], created_at=now),
                    vectors[i].tolist(),
                )
                for i in range(begin, min(begin + step, count))
            ]
            await store.upsert(rows)
    finally:
        await store.close()


async def timed(memory: MemoryClient, query: str, started: float) -> float:
    """Milliseconds to the answer; NaN for a call that failed (counted and printed apart)."""
    try:
        hits = await memory.retrieve(RequestContext(), query, 1000, top_k=5)
    except KeelError as exc:
        print(f"  a Retrieve failed: {exc}", file=sys.stderr)
        return math.nan
    if not hits:
        raise RuntimeError(f"no hits for {query!r}: is the collection empty?")
    return (time.perf_counter() - started) * 1000


async def measure(target: str, sessions: int, bursts: int, singles: int) -> dict[str, float]:
    queries = memory_corpus.sentences(singles + sessions * (bursts + 1), memory_corpus.QUERY_SEED)
    asked = iter(queries)
    async with open_channel(target) as channel:
        memory = MemoryClient(channel, CallOptions(timeout_s=120))
        # Warm: the channel, the model's first pages, Milvus's loaded segments.
        await asyncio.gather(*(timed(memory, next(asked), time.perf_counter()) for _ in range(4)))
        alone = [await timed(memory, next(asked), time.perf_counter()) for _ in range(singles)]
        burst: list[float] = []
        walls: list[float] = []
        for _ in range(bursts):
            batch = [next(asked) for _ in range(sessions)]
            started = time.perf_counter()
            burst += await asyncio.gather(*(timed(memory, q, started) for q in batch))
            walls.append((time.perf_counter() - started) * 1000)
    failed = sum(math.isnan(x) for x in [*alone, *burst])
    alone = [x for x in alone if not math.isnan(x)]
    burst = [x for x in burst if not math.isnan(x)]
    return {
        "failed": failed,
        "single_p50_ms": statistics.median(alone),
        "single_p99_ms": percentile(alone, 0.99),
        "burst_p50_ms": statistics.median(burst),
        "burst_p99_ms": percentile(burst, 0.99),
        "burst_mean_ms": statistics.fmean(burst),
        "burst_wall_ms": statistics.fmean(walls),
        "calls": len(burst),
    }


async def run(args: argparse.Namespace, embedder: str) -> dict[str, float]:
    """One measurement with the service running ``embedder``; printed and recorded."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-memburst-"))
    uri = str(run_dir / "memory" / "milvus.db")
    try:
        started = time.perf_counter()
        await fill(uri, args.entries, embedder)
        print(
            f"[{embedder}] filled {args.entries:,} entries in {time.perf_counter() - started:.1f} s"
        )
        memory_spec = next(s for s in SERVICES if s.name == "memory")
        async with local_kafka(secure=True) as (kafka, credentials):
            await ensure_topics(kafka)
            stack = LocalStack(
                run_dir=run_dir,
                kafka_bootstrap=kafka.bootstrap,
                specs=with_free_ports((memory_spec,)),
                kafka_credentials=credentials,
                memory_uri=uri,
                extra_env={"KEEL_MEMORY_EMBEDDER": embedder},
            )
            try:
                await stack.start(timeout_s=180)
                result = await measure(
                    stack.target("memory"), args.sessions, args.bursts, args.singles
                )
                # The service's own view: what of a call's time is spent inside it.
                breakdown = await asyncio.to_thread(grpc_breakdown, stack)
                result["server_mean_ms"] = breakdown.get("memory Retrieve", (0, math.nan))[1]
            finally:
                await stack.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    load = os.getloadavg()
    result["load_avg_1m"] = load[0]
    result["sessions"] = args.sessions
    print(
        f"\nmemory Retrieve, {args.entries:,} entries, embedder {embedder}, secured gRPC "
        f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    print(
        f"  one at a time:        p50 {result['single_p50_ms']:7.1f} ms  "
        f"p99 {result['single_p99_ms']:7.1f} ms"
    )
    print(
        f"  mean time inside the service per Retrieve (all calls): "
        f"{result['server_mean_ms']:.1f} ms"
    )
    print(
        f"  {args.sessions} at once (x{args.bursts}): p50 {result['burst_p50_ms']:7.1f} ms  "
        f"p99 {result['burst_p99_ms']:7.1f} ms  mean {result['burst_mean_ms']:7.1f} ms  "
        f"(burst wall {result['burst_wall_ms']:.0f} ms; {result['failed']} calls failed)"
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=50, help="concurrent Retrieve calls")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--singles", type=int, default=50, help="sequential calls first")
    parser.add_argument(
        "--embedder",
        nargs="+",
        choices=["minilm", "minilm-static"],
        default=["minilm", "minilm-static"],
        help="the service's embedder; one run each",
    )
    parser.add_argument("--label", default="", help="a name for this run in the results")
    args = parser.parse_args()

    out = repo_root() / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / "memory_burst.json"
    label = args.label or datetime.now(UTC).isoformat(timespec="seconds")
    for embedder in args.embedder:
        result = await run(args, embedder)
        runs = json.loads(path.read_text()) if path.exists() else {}
        runs[f"{label} {embedder}"] = result
        path.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
