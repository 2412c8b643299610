"""Memory numbers: Milvus Lite 3.x against 2.5.x on real MiniLM embeddings, per index setting.

For each corpus size (default 10k and 100k sentences from ``memory_corpus.py``, embedded with
the MiniLM embedder and cached), and each (Milvus Lite version, index) pair, a worker process
(``memory_milvus_worker.py``) stores the rows with the memory service's schema and then runs
200 held-out queries per search setting, unfiltered and filtered to one memory type (what the
service's Retrieve does per type). Printed per line: store rows/s, time until the index was
built, search p50/p99 and recall@10 against exact search done here in NumPy. The exact NumPy
search itself is timed too, as the floor an index has to beat.

The Milvus Lite version the project pins (2.5.1) runs from the project's venv; the other one
from its own virtualenv, created on first use under ``~/.cache/keel/bench-milvus-lite-<version>``
with pinned versions; the project's ``.venv`` is never touched.

Run: ``python bench/memory.py [--sizes 10000 100000] [--queries 200] [--only v3]``.
Results also go to ``bench/results/memory.json``. Numbers, no asserts: a loaded 2-core machine
moves latencies by 2x, so compare lines from the same run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import memory_corpus  # noqa: E402
from memory_milvus_worker import TYPES, row_type  # noqa: E402

ROOT = Path(__file__).resolve().parent
# What a side venv gets per Milvus Lite version. 2.5 imports pkg_resources, which setuptools 81
# removed.
PINS = {
    "3": ["pymilvus==3.0.2", "milvus-lite==3.2.2", "numpy==2.4.6"],
    "2.5": ["pymilvus==3.0.2", "milvus-lite==2.5.1", "numpy==2.4.6", "setuptools==80.9.0"],
}

HNSW_SEARCHES = [{"metric_type": "COSINE", "params": {"ef": ef}} for ef in (32, 64, 128)]
IVF_SEARCHES = [{"metric_type": "COSINE", "params": {"nprobe": p}} for p in (8, 16, 32)]
FLAT_SEARCHES = [{"metric_type": "COSINE"}]


def configs(n: int) -> list[dict[str, Any]]:
    nlist = max(16, int(4 * np.sqrt(n)) // 16 * 16)  # the usual ~4·sqrt(n) lists
    return [
        {
            "version": "3",
            "name": "FLAT",
            "index": {"index_type": "FLAT"},
            "searches": FLAT_SEARCHES,
        },
        {
            "version": "3",
            "name": "AUTOINDEX",
            "index": {"index_type": "AUTOINDEX"},
            "searches": HNSW_SEARCHES[1:2],
        },
        {
            "version": "3",
            "name": "HNSW M16 efC200",
            "index": {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}},
            "searches": HNSW_SEARCHES,
        },
        {
            "version": "3",
            "name": "HNSW, flush/200 rows",
            "index": {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}},
            "searches": HNSW_SEARCHES[1:2],
            "flush_every": 200,
        },
        {
            "version": "3",
            "name": f"IVF_FLAT nlist{nlist}",
            "index": {"index_type": "IVF_FLAT", "params": {"nlist": nlist}},
            "searches": IVF_SEARCHES,
        },
        {
            "version": "2.5",
            "name": "FLAT",
            "index": {"index_type": "FLAT"},
            "searches": FLAT_SEARCHES,
        },
        {
            "version": "2.5",
            "name": "AUTOINDEX",
            "index": {"index_type": "AUTOINDEX"},
            "searches": HNSW_SEARCHES[1:2],
        },
        {
            "version": "2.5",
            "name": f"IVF_FLAT nlist{nlist}",
            "index": {"index_type": "IVF_FLAT", "params": {"nlist": nlist}},
            # Lite 2.5 answers from a fixed interim index: nprobe changes nothing (measured).
            "searches": [IVF_SEARCHES[0], IVF_SEARCHES[2]],
        },
    ]


def python_for(version: str) -> str:
    """The project's interpreter when it has this Milvus Lite major.minor, else a side venv."""
    if importlib.metadata.version("milvus-lite").startswith(version + "."):
        return sys.executable
    venv = Path.home() / ".cache" / "keel" / f"bench-milvus-lite-{version}"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS[version]], check=True)
    return str(python)


def exact_top10(
    corpus: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], list[float]]:
    """Exact cosine top-10 (vectors are unit length, so a dot product) and its time per query."""
    ids = np.flatnonzero(mask)
    subset = np.ascontiguousarray(corpus[ids])
    out = np.zeros((len(queries), 10), dtype=np.int64)
    times: list[float] = []
    for row, query in enumerate(queries):
        started = time.perf_counter()
        scores = subset @ query
        top = np.argpartition(-scores, 10)[:10]
        out[row] = ids[top[np.argsort(-scores[top])]]
        times.append(time.perf_counter() - started)
    return out, times


def run_worker(config: dict[str, Any], spec: dict[str, Any], work: Path) -> dict[str, Any]:
    spec = {
        **spec,
        "index": config["index"],
        "searches": config["searches"],
        "flush_every": config.get("flush_every", 0),
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [python_for(config["version"]), str(ROOT / "memory_milvus_worker.py"), str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    # The answer is printed before the client closes; Lite 3.x's background index thread can
    # hold the process for a minute at exit, and nothing after the answer matters.
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"}
    return dict(json.loads(line))


def describe(search: dict[str, Any]) -> str:
    params = search.get("params", {})
    return " ".join(f"{k}={v}" for k, v in params.items()) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--only", choices=["3", "2.5"], help="one Milvus Lite version only")
    args = parser.parse_args()

    report: dict[str, Any] = {"sizes": {}}
    queries = memory_corpus.vectors(args.queries, memory_corpus.QUERY_SEED)
    corpus_all = memory_corpus.vectors(max(args.sizes))
    for n in args.sizes:
        corpus = corpus_all[:n]
        types = np.array([row_type(i) for i in range(n)])
        truth_all, t_all = exact_top10(corpus, queries, np.ones(n, dtype=bool))
        truth_sem, t_sem = exact_top10(corpus, queries, types == "semantic")
        print(
            f"\n== {n:,} entries × {corpus.shape[1]} dims, {len(queries)} queries "
            f"(types {', '.join(f'{t} {int((types == t).sum())}' for t in TYPES)})"
        )
        print(
            f"   exact NumPy search in-process: p50 {np.percentile(t_all, 50) * 1e3:.1f} ms, "
            f"p99 {np.percentile(t_all, 99) * 1e3:.1f} ms (filtered: "
            f"{np.percentile(t_sem, 50) * 1e3:.1f} / {np.percentile(t_sem, 99) * 1e3:.1f} ms)"
        )
        print(
            f"   {'lite':<5} {'index':<22} {'search':<12} {'store/s':>8} {'index s':>8} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'recall':>7} | filtered "
            f"{'p50':>6} {'p99':>6} {'recall':>6}"
        )
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="keel-membench-") as tmp:
            work = Path(tmp)
            for name, array in (
                ("vectors", corpus),
                ("queries", queries),
                ("truth_all", truth_all),
                ("truth_filtered", truth_sem),
            ):
                np.save(work / f"{name}.npy", array)
            spec = {
                "n": n,
                "vectors": str(work / "vectors.npy"),
                "queries": str(work / "queries.npy"),
                "truth_all": str(work / "truth_all.npy"),
                "truth_filtered": str(work / "truth_filtered.npy"),
            }
            for config in configs(n):
                if args.only and config["version"] != args.only:
                    continue
                data_dir = work / f"lite-{config['version']}-{len(rows)}"
                result = run_worker(config, {**spec, "uri": str(data_dir / "bench.db")}, work)
                shutil.rmtree(data_dir, ignore_errors=True)
                rows.append({**config, **result})
                print_result(config, result)
        report["sizes"][str(n)] = {
            "exact_numpy_ms": {
                "p50": float(np.percentile(t_all, 50) * 1e3),
                "p99": float(np.percentile(t_all, 99) * 1e3),
            },
            "runs": rows,
        }
    out = ROOT / "results" / "memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT.parent)}")


def print_result(config: dict[str, Any], result: dict[str, Any]) -> None:
    head = f"   {config['version']:<5} {config['name']:<22}"
    if "error" in result:
        print(f"{head} failed: {result['error'][:120]}")
        return
    by_search: dict[str, dict[bool, dict[str, Any]]] = {}
    for item in result["results"]:
        by_search.setdefault(describe(item["search"]), {})[item["filtered"]] = item
    for label, pair in by_search.items():
        a, f = pair[False], pair[True]
        print(
            f"{head} {label:<12} {result['store_rows_per_s']:>8.0f} {result['index_wait_s']:>8.1f} "
            f"{a['p50_ms']:>7.1f} {a['p99_ms']:>7.1f} {a['recall_at_10']:>7.3f} | "
            f"{'':8} {f['p50_ms']:>6.1f} {f['p99_ms']:>6.1f} {f['recall_at_10']:>6.3f}"
        )


if __name__ == "__main__":
    main()
