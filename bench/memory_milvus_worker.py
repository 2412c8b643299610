"""One Milvus Lite measurement in its own process (and, for 2.5.x, its own virtualenv): store N
corpus rows with the memory service's schema and one index, then time searches with several
search settings and score them against the exact neighbours computed by ``bench/memory.py``.

Its own process because Milvus Lite lets one process own a data folder and its background index
threads can hold a process for a while at exit; its own venv because milvus-lite 2.5 and 3.x
need different pymilvus versions. It imports nothing from Keel (the 2.5 venv has none of it) and
prints one JSON object.

Run by ``bench/memory.py``; by hand: ``python bench/memory_milvus_worker.py SPEC.json``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

TYPES = ("episodic", "semantic", "procedural")
BATCH = 1000


def row_type(i: int) -> str:
    """A fixed pseudo-random type per row (the memory mix the filtered search sees)."""
    return TYPES[(i * 2654435761 >> 7) % 3]


def open_collection(uri: str, dim: int, index: dict[str, Any]) -> MilvusClient:
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    client = MilvusClient(uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("type", DataType.VARCHAR, max_length=16)
    schema.add_field("content", DataType.VARCHAR, max_length=65535)
    schema.add_field("session_id", DataType.VARCHAR, max_length=256)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("created_at", DataType.INT64)
    params = client.prepare_index_params()
    params.add_index(field_name="vector", metric_type="COSINE", **index)
    client.create_collection(
        "bench", schema=schema, index_params=params, consistency_level="Strong"
    )
    return client


def store(
    client: MilvusClient, vectors: np.ndarray, texts: list[str], flush_every: int = 0
) -> float:
    """Insert every row in batches, flush; seconds taken. With ``flush_every`` the rows go in
    ``flush_every`` at a time, each followed by a flush: the memory service's cadence on Lite,
    which leaves many small segments for compaction to merge."""
    batch = flush_every or BATCH
    started = time.perf_counter()
    for begin in range(0, len(vectors), batch):
        rows = [
            {
                "id": f"{i:064x}",
                "vector": vectors[i].tolist(),
                "type": row_type(i),
                "content": texts[i],
                "session_id": f"s{i % 500}",
                "metadata": {"source": "bench"},
                "created_at": 1_700_000_000_000 + i,
            }
            for i in range(begin, min(begin + batch, len(vectors)))
        ]
        client.insert("bench", rows)
        if flush_every:
            client.flush("bench")
    client.flush("bench")
    return time.perf_counter() - started


def wait_for_index(client: MilvusClient, limit_s: float) -> float:
    """Until the index reports no pending rows (Lite 3.x builds in a background thread)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        try:
            info = client.describe_index("bench", "vector")
        except Exception:  # noqa: BLE001 - versions differ; no description means nothing to wait for
            return time.perf_counter() - started
        pending = int(info.get("pending_index_rows", 0) or 0)
        state = str(info.get("state", "Finished"))
        if pending == 0 and state in ("Finished", "", "None"):
            return time.perf_counter() - started
        time.sleep(0.5)
    return time.perf_counter() - started


def measure(
    client: MilvusClient,
    queries: np.ndarray,
    truth: np.ndarray,
    search_params: dict[str, Any],
    filtered: bool,
) -> dict[str, float]:
    expr = 'type in ["semantic"]' if filtered else ""
    for query in queries[:30]:  # warm caches, lazy loads and background index builds
        client.search(
            "bench", data=[query.tolist()], limit=10, filter=expr, search_params=search_params
        )
    times: list[float] = []
    hits = 0
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        result = client.search(
            "bench",
            data=[query.tolist()],
            limit=10,
            filter=expr,
            output_fields=["content"],
            search_params=search_params,
        )
        times.append(time.perf_counter() - started)
        found = {int(hit["id"], 16) for hit in result[0]}
        hits += len(found & {int(i) for i in expected})
    ms = np.array(times) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "recall_at_10": hits / (10 * len(queries)),
    }


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from memory_corpus import sentences  # plain Python: works in the 2.5 venv too

    n = int(spec["n"])
    vectors = np.load(spec["vectors"], mmap_mode="r")[:n].astype(np.float32)
    queries = np.load(spec["queries"]).astype(np.float32)
    client = open_collection(spec["uri"], vectors.shape[1], spec["index"])
    store_s = store(client, vectors, sentences(n), int(spec.get("flush_every", 0)))
    index_wait_s = wait_for_index(client, float(spec.get("index_wait_limit_s", 600)))
    # One throwaway pass: the first searches after a flush pay for loading segments and (3.x)
    # for index builds still finishing in the background; they would land in the first row.
    measure(client, queries, np.load(spec["truth_all"]), spec["searches"][0], False)
    results: list[dict[str, Any]] = []
    for search_params in spec["searches"]:
        for filtered in (False, True):
            truth = np.load(spec["truth_filtered" if filtered else "truth_all"])
            measured = measure(client, queries, truth, search_params, filtered)
            results.append({"search": search_params, "filtered": filtered, **measured})
    client.close()
    print(
        json.dumps(
            {
                "store_rows_per_s": n / store_s,
                "index_wait_s": index_wait_s,
                "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "results": results,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
