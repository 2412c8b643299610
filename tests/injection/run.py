"""``make injection``: run the prompt-injection suite against each policy variant, print the
figures and write them as JSON.

    python -m tests.injection.run [--variant operator] [--json bench/results/injection.json]

Run from the repository root. docs/injection.md says what each figure means. Exit code 1 when a
scenario marked ``stopped`` reached its goal under the operator policy (a regression).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.injection.harness import VARIANTS, run_variant
from tests.injection.report import summary, table
from tests.injection.scenarios import load_scenarios, load_world

DEFAULT_JSON = Path("bench/results/injection.json")


async def run_all(names: list[str] | None = None) -> dict[str, Any]:
    """Every ready variant's summary (or the named ones), by variant name; a variant that is
    not wired yet is listed with ``null``."""
    scenarios, base = load_scenarios(), load_world()
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        if names and variant.name not in names:
            continue
        if not variant.ready:
            results[variant.name] = None
            continue
        results[variant.name] = summary(await run_variant(variant, scenarios, base))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", help="a variant by name (repeatable)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    results = asyncio.run(run_all(args.variant))
    for variant in VARIANTS:
        if variant.name not in results:
            continue
        result = results[variant.name]
        if result is None:
            print(f"== {variant.name}: not wired yet ({variant.description})\n")
            continue
        print(table(f"{variant.name}: {variant.description}", result) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.json}")
    operator = results.get("operator")
    if operator is not None and operator["total_expected_stopped"]["goals_reached"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
