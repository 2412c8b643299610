"""A deterministic corpus of varied English sentences for the memory benchmarks, embedded with
the real MiniLM embedder and cached as ``.npy`` under ``~/.cache/keel/memory-bench``.

Random vectors make a poor test of an approximate index (no clusters, every neighbour nearly
equidistant); real sentence embeddings cluster by topic, as agent memories do. The sentences
come from a small grammar (who, did what, to what, where, when, why) over ~30 choices per slot,
seeded, so every run and every machine gets the same corpus; queries are further sentences from
another seed, never stored. Embedding 100k sentences takes minutes on two cores, hence the
cache (keyed by count, seed and a corpus version).

Run on its own to fill the cache: ``python bench/memory_corpus.py 100000``.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

CACHE = Path.home() / ".cache" / "keel" / "memory-bench"
VERSION = 1
CORPUS_SEED = 20261126
QUERY_SEED = 7

SUBJECTS = """the payments team|our on-call engineer|the deploy bot|a customer in Berlin|the billing
service|the nightly batch job|the security reviewer|a new hire|the support desk|the database
administrator|the release manager|the mobile app|the search cluster|an external auditor|the CFO|
the warehouse robot|the marketing intern|the data pipeline|the load balancer|the QA lead|the legal
department|the chatbot|a frustrated user|the kubernetes operator|the cache layer|the finance
analyst|the API gateway|the design team|the mail server|the recommendation model""".split("|")
VERBS = """restarted|reported a bug in|migrated|approved a refund for|rolled back|scaled up|
audited|deleted old records from|requested access to|rewrote|benchmarked|escalated an incident
about|patched|archived|documented|monitored|throttled|reindexed|backed up|upgraded|paused|
complained about|renamed|encrypted|load-tested|refactored|decommissioned|configured alerts for|
reviewed the contract for|optimised""".split("|")
OBJECTS = """the invoice service|the checkout page|the user database|a Kafka topic|the refund
queue|the login flow|the analytics dashboard|the shipping API|the vector index|the pricing
table|the email templates|the fraud detector|the staging cluster|the backup bucket|the customer
profile store|the tax calculator|the search ranking|the notification worker|the policy engine|
the audit log|the inventory sync|the payroll export|the recommendation feed|the access tokens|
the CI pipeline|the TLS certificates|the cafeteria menu|the holiday calendar|the office wifi|the
travel booking tool""".split("|")
PLACES = """in production|in the EU region|on the staging environment|in the data centre in
Frankfurt|on the developer laptops|in the US-East cloud region|behind the VPN|in the test
suite|on the weekend shift|during the quarterly review|in the customer portal|across all
tenants|in the disaster-recovery site|on the mobile clients|in the shared spreadsheet""".split("|")
TIMES = """yesterday morning|last Friday|at 3 a.m.|before the holiday freeze|after the outage|
during lunch|on Monday|twice this week|right after the release|at the end of the quarter|
while everyone was asleep|ten minutes before the demo|on the first day of the month|after
midnight|during the board meeting""".split("|")
REASONS = """because latency doubled|to cut cloud costs|after a customer complaint|because a
certificate expired|to satisfy the auditors|since the disk was full|to fix a memory leak|
because of a security advisory|to prepare for Black Friday|after a failed deploy|because the
error rate spiked|to comply with GDPR|as part of the cleanup|because the old version was
deprecated|to speed up the nightly report""".split("|")


def _clean(items: list[str]) -> list[str]:
    return [" ".join(item.split()) for item in items if item.strip()]


SLOTS = [_clean(s) for s in (SUBJECTS, VERBS, OBJECTS, PLACES, TIMES, REASONS)]


def sentences(count: int, seed: int = CORPUS_SEED) -> list[str]:
    """``count`` distinct sentences; place, time and reason are each present or not, so lengths
    vary. Distinct, so exact search has no ties between identical vectors."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    subjects, verbs, objects, places, times, reasons = SLOTS
    while len(out) < count:
        parts = [rng.choice(subjects), rng.choice(verbs), rng.choice(objects)]
        for optional in (places, times, reasons):
            if rng.random() < 0.6:
                parts.append(rng.choice(optional))
        text = " ".join(parts)
        text = text[0].upper() + text[1:] + "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def vectors(count: int, seed: int = CORPUS_SEED) -> npt.NDArray[np.float32]:
    """The embeddings of ``sentences(count, seed)``, from the cache or computed and cached.
    A longer cached corpus of the same seed serves a shorter request (its prefix)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for path in sorted(CACHE.glob(f"v{VERSION}-seed{seed}-n*.npy")):
        cached_count = int(path.stem.rsplit("-n", 1)[1])
        if cached_count >= count:
            return np.load(path, mmap_mode="r")[:count].astype(np.float32)
    from keel_memory.adapters.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder.load()
    texts = sentences(count, seed)
    out = np.zeros((count, embedder.dim), dtype=np.float32)
    started = time.perf_counter()
    step = 2000
    for begin in range(0, count, step):
        out[begin : begin + step] = embedder.encode(texts[begin : begin + step])
        done = min(begin + step, count)
        rate = done / (time.perf_counter() - started)
        print(f"  embedded {done}/{count} ({rate:.0f}/s)", file=sys.stderr, flush=True)
    target = CACHE / f"v{VERSION}-seed{seed}-n{count}.npy"
    np.save(target.with_suffix(".tmp.npy"), out)
    target.with_suffix(".tmp.npy").rename(target)
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(vectors(n).shape)
    print(vectors(1000, QUERY_SEED).shape)
