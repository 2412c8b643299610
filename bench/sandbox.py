"""The `python` tool's cost: cold latency (every run starts fresh processes, so every run is
cold) and throughput, for this tree and, beside it, for the tree before the sandbox's OS
boundary (minimal root, privilege drop, seccomp, cgroup) was added.

    python bench/sandbox.py [--runs 60] [--parallel-runs 40] [--before-ref REF | --no-before]

"Before" checks ``REF`` out into a temporary git worktree and runs this same script there
with that tree's tool gateway first on the path; nothing in the current code can switch the
new layers off. Numbers, no asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The last commit before the OS boundary (docs/adr/0009-sandbox-os-boundary.md).
BEFORE_REF = "25470bcae8647b8342722dccd74733fe6234d960"
SNIPPET = "import math\nprint(math.factorial(20))"


async def measure(runs: int, parallel_runs: int) -> dict[str, float]:
    from keel_tool_gateway.adapters.sandbox import Sandbox, SandboxSettings

    settings = SandboxSettings()
    sandbox = Sandbox(settings)
    await sandbox.run(SNIPPET)  # the page cache, not the sandbox, is what a first run warms
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await sandbox.run(SNIPPET)
        samples.append((time.perf_counter() - started) * 1000)
        assert result.stdout.strip() == "2432902008176640000"
    samples.sort()
    started = time.perf_counter()
    await asyncio.gather(*(sandbox.run(SNIPPET) for _ in range(parallel_runs)))
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, round(len(samples) * 0.99))],
        "runs_per_s": parallel_runs / elapsed,
        "concurrency": settings.max_concurrent,
    }


def measure_before(ref: str, runs: int, parallel_runs: int) -> dict[str, float] | None:
    with tempfile.TemporaryDirectory(prefix="keel-bench-before-") as base:
        tree = Path(base) / "tree"
        added = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            print(f"  before: cannot check out {ref}: {added.stderr.strip()}")
            return None
        try:
            env = {**os.environ, "PYTHONPATH": str(tree / "services/tool-gateway/src")}
            done = subprocess.run(
                [sys.executable, __file__, "--json", "--runs", str(runs),
                 "--parallel-runs", str(parallel_runs), "--expect-src", str(tree)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            return dict(json.loads(done.stdout.splitlines()[-1]))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
                check=False,
            )


def show(label: str, numbers: dict[str, float]) -> None:
    print(
        f"  {label:<42} cold p50 {numbers['p50_ms']:6.1f} ms   p99 {numbers['p99_ms']:6.1f} ms"
        f"   throughput {numbers['runs_per_s']:5.1f} runs/s"
        f" (max_concurrent={int(numbers['concurrency'])})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--parallel-runs", type=int, default=40)
    parser.add_argument("--before-ref", default=BEFORE_REF)
    parser.add_argument("--no-before", action="store_true")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--expect-src", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.expect_src:
        import keel_tool_gateway

        assert keel_tool_gateway.__file__.startswith(args.expect_src), keel_tool_gateway.__file__
    after = asyncio.run(measure(args.runs, args.parallel_runs))
    if args.json:
        print(json.dumps(after))
        return
    print(f"python tool (sandbox), {os.cpu_count()} CPUs, {args.runs} sequential runs:")
    if not args.no_before:
        before = measure_before(args.before_ref, args.runs, args.parallel_runs)
        if before:
            show(f"before the OS boundary ({args.before_ref[:10]})", before)
    show("after (minimal root, seccomp, cgroup)", after)


if __name__ == "__main__":
    main()
