"""Embeddings per second of the torch-free MiniLM embedder (all-MiniLM-L6-v2, 384 dims).

Sentences come from the memory benchmark corpus (``memory_corpus.py``: 6–30 words, ~20
tokens). Printed: model load time; sentences/s and tokens/s for the whole set encoded at once
(sorted into length buckets inside the embedder) and in fixed request sizes; latency of one
sentence (p50/p99, what a Retrieve's query embedding costs). Each measurement runs in a fresh
process per BLAS thread count (OpenBLAS reads OPENBLAS_NUM_THREADS only at import), so 1 and 2
threads can be compared; on a shared, busy 2-core machine 1 thread is often faster.

Peer on machines like ours: sentence-transformers + torch, ~80 sentences/s. Target ≥200/s.

Run: ``python bench/embeddings.py [--sentences 1000] [--threads 1 2]``. Numbers, no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def measure(count: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from memory_corpus import sentences

    from keel_memory.adapters.minilm import MiniLMEmbedder

    started = time.perf_counter()
    embedder = MiniLMEmbedder.load()
    load_s = time.perf_counter() - started
    texts = sentences(count, seed=11)
    tokens = sum(len(ids) for ids in embedder.token_ids(texts))
    embedder.encode(texts[:64])  # warm: page in the weights, BLAS buffers
    result: dict[str, float] = {"load_s": load_s, "mean_tokens": tokens / count}
    for label, size in (("all", count), ("batch32", 32), ("batch8", 8)):
        best = 0.0
        for _ in range(2):
            started = time.perf_counter()
            for begin in range(0, count, size):
                embedder.encode(texts[begin : begin + size])
            best = max(best, count / (time.perf_counter() - started))
        result[f"{label}_per_s"] = best
    singles: list[float] = []
    for text in texts[:200]:
        started = time.perf_counter()
        embedder.encode([text])
        singles.append((time.perf_counter() - started) * 1000)
    result["single_p50_ms"] = statistics.median(singles)
    result["single_p99_ms"] = float(np.percentile(singles, 99))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.sentences)))
        return
    print(
        f"all-MiniLM-L6-v2, NumPy forward pass, {args.sentences} sentences, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for threads in args.threads:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--sentences", str(args.sentences)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {threads} BLAS thread(s): load {r['load_s']:.2f} s | all at once "
            f"{r['all_per_s']:.0f}/s ({r['all_per_s'] * r['mean_tokens']:.0f} tokens/s, "
            f"{r['mean_tokens']:.1f} tokens/sentence) | batches of 32 {r['batch32_per_s']:.0f}/s "
            f"| of 8 {r['batch8_per_s']:.0f}/s | one sentence p50 {r['single_p50_ms']:.1f} ms "
            f"p99 {r['single_p99_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
