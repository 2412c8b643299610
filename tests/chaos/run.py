"""``make chaos``: the long chaos run, printing the figures; exits 1 if a promise failed.

    python -m tests.chaos.run --sessions 200 --kills 3 --seed 7

Run from the repository root. See docs/guarantees.md ("Chaos") for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys

from tests.chaos.harness import Plan, run_chaos


def parse(argv: list[str] | None = None) -> tuple[Plan, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3, help="kills per service type")
    parser.add_argument("--broker-kills", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="tool calls per session (K)")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--max-pause", type=float, default=2.0, help="seconds, random up to")
    parser.add_argument("--timeout", type=float, default=1500.0, help="the whole run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the logs, counters and data")
    args = parser.parse_args(argv)
    plan = Plan(
        sessions=args.sessions,
        kills_per_service=args.kills,
        broker_kills=args.broker_kills,
        steps=args.steps,
        seed=random.randrange(1_000_000) if args.seed is None else args.seed,
        max_pause_s=args.max_pause,
        timeout_s=args.timeout,
    )
    return plan, args.keep


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    # The clients' reconnect warnings while the broker is down would bury the figures.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    plan, keep = parse(argv)
    report = asyncio.run(run_chaos(plan, keep=keep))
    print(report.render())
    print(
        f"rerun: python -m tests.chaos.run --sessions {plan.sessions} --kills "
        f"{plan.kills_per_service} --broker-kills {plan.broker_kills} --steps {plan.steps} "
        f"--seed {plan.seed}"
    )
    return 1 if report.failures() or report.timed_out else 0


if __name__ == "__main__":
    sys.exit(main())
