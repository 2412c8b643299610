"""Policy decision time in-process, with 200 rules.

Two layouts of 200 rules, each rule carrying one argument constraint of a rotating kind
(exact value, regex, numeric range, JSON path with ``match: all`` over a list):

- ``mixed``: rules over 25 tool names plus tool globs (``*``, ``t1*``, ``t*``, ``fs.*``); a call
  to ``t10`` has ~40 rules that can apply (its own and the globs that fit);
- ``one-tool``: every one of the 200 rules applies to the called tool (the worst case: the
  engine must check the arguments against each rule until one matches).

For each layout the call matches the first, the middle or the last applicable rule, or none
(default deny). Arguments always carry every field, with non-matching values except the
target rule's, so each rule does real work. Prints µs per ``evaluate`` (p50/p99), also with
``json.loads`` of the arguments (what the gRPC servicer adds), and the cost of a tool name not
yet seen (the candidate index is built on first use of a (tool, profile) pair).

A third layout, ``algebra``, gives the mixed layout's rules the conditions of issue 13 instead
(rotating: ``not`` of a named-list membership, ``any_of`` with ``missing``, a comparison with
another argument, ``sum`` of two paths, a ``state`` count over a window with 50 calls held),
to show the richer conditions keep decisions in microseconds.

Run: ``python bench/policy_decision.py [--iterations N]``.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.models import (
    ArgConstraint,
    Decision,
    NamedList,
    PolicyBundle,
    PolicySet,
    Rule,
)
from keel_policy.domain.state import StateEntry, StateLedger

RULES = 200
GLOBS = ("*", "t1*", "t*", "fs.*")
BASE_ARGS: dict[str, Any] = {
    "op": "op-none",
    "path": "/data/none/file.txt",
    "amount": -5,
    "recipients": [{"domain": "a.example"}, {"domain": "b.example"}, {"domain": "c.example"}],
}


def constraint(index: int) -> ArgConstraint:
    kind = index % 4
    if kind == 0:
        return ArgConstraint(path="op", equals=f"op{index}")
    if kind == 1:
        return ArgConstraint(path="$.path", regex=rf"^/data/{index}/[\w.-]+$")
    if kind == 2:
        return ArgConstraint(path="$.amount", min=index * 1000, max=index * 1000 + 999)
    return ArgConstraint(path="$.recipients[*].domain", match="all", equals=f"d{index}.example")


def algebra_condition(index: int) -> dict[str, Any]:
    """Issue 13's conditions, none of which the base arguments satisfy."""
    kind = index % 5
    if kind == 0:
        return {"not": {"path": "op", "in": "$lists.ops"}}
    if kind == 1:
        return {"any_of": [{"path": f"k{index}", "missing": False},
                           {"path": "$.recipients[*].domain", "match": "all",
                            "in": {"path": "$.allowed[*]"}}]}  # fmt: skip
    if kind == 2:
        return {"path": "amount", "gt": {"path": "limit"}}
    if kind == 3:
        return {"sum": ["$.amount", "$.fee"], "gte": index * 1000}
    return {"state": {"count": "t1*", "per": "tenant", "window": "1d", "gte": 1000 + index}}


def build_algebra() -> tuple[PolicyEngine, list[int]]:
    rules = [
        Rule.model_validate(
            {
                "id": f"r{i:03d}",
                "priority": RULES - i,
                "tool": tool_pattern("mixed", i),
                "decision": "allow",
                "when": [algebra_condition(i)],
            }
        )
        for i in range(RULES)
    ]
    ledger = StateLedger()
    for call in range(50):
        ledger.add(StateEntry("count|t1*", "tenant:acme", f"c{call}", 1e12, 1.0))
    ops = NamedList(items=tuple(f"op{i}" for i in range(100)) + ("op-none",))
    bundle = PolicyBundle(sets=(PolicySet(rules=tuple(rules)),), lists={"ops": ops})
    engine = PolicyEngine(bundle, state=ledger, clock=lambda: 1e12 + 1)
    applicable = [i for i in range(RULES) if _fits(tool_pattern("mixed", i), "t10")]
    return engine, applicable


ALGEBRA_ARGS: dict[str, Any] = {**BASE_ARGS, "fee": 1, "limit": 10, "allowed": ["z.example"]}


def matching_args(index: int) -> dict[str, Any]:
    """Arguments that satisfy rule ``index``'s constraint and no other rule's."""
    args = copy.deepcopy(BASE_ARGS)
    kind = index % 4
    if kind == 0:
        args["op"] = f"op{index}"
    elif kind == 1:
        args["path"] = f"/data/{index}/report.csv"
    elif kind == 2:
        args["amount"] = index * 1000 + 500
    else:
        args["recipients"] = [{"domain": f"d{index}.example"}] * 3
    return args


def tool_pattern(layout: str, index: int) -> str:
    if layout == "one-tool":
        return "t10"
    return GLOBS[(index // 4) % len(GLOBS)] if index % 4 == 3 else f"t{index % 25:02d}"


def build(layout: str) -> tuple[PolicyEngine, list[int]]:
    """The engine and the indexes of the rules that apply to tool t10, in evaluation order."""
    decisions: tuple[Decision, ...] = ("allow", "deny", "require_approval")
    rules = [
        Rule(
            id=f"r{i:03d}",
            priority=RULES - i,
            tool=tool_pattern(layout, i),
            decision=decisions[i % 3],
            when=(constraint(i),),
        )
        for i in range(RULES)
    ]
    engine = PolicyEngine(PolicySet(rules=tuple(rules)))
    applicable = [i for i in range(RULES) if _fits(tool_pattern(layout, i), "t10")]
    return engine, applicable


def _fits(pattern: str, tool: str) -> bool:
    return fnmatch.fnmatchcase(tool, pattern)


def _parsed(engine: PolicyEngine, text: str) -> object:
    return engine.evaluate("t10", json.loads(text))


def timings(call: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(1000, iterations)):
        call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        call()
        samples.append(clock() - start)
    samples.sort()
    p50 = statistics.median(samples) / 1000
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))] / 1000
    return p50, p99


def scenarios(applicable: list[int]) -> list[tuple[str, dict[str, Any], str]]:
    first, middle, last = applicable[0], applicable[len(applicable) // 2], applicable[-1]
    return [
        ("first match", matching_args(first), f"r{first:03d}"),
        ("middle match", matching_args(middle), f"r{middle:03d}"),
        ("last match", matching_args(last), f"r{last:03d}"),
        ("no match", BASE_ARGS, "default-deny"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    iterations = parser.parse_args().iterations
    print(f"policy decision, in-process, {RULES} rules, {iterations} calls per line (µs)")
    print(f"{'layout':<10} {'call':<14} {'rules tried':>11} {'p50':>7} {'p99':>7}"
          f" {'p50+json':>9} {'p99+json':>9}")  # fmt: skip
    for layout in ("mixed", "one-tool"):
        engine, applicable = build(layout)
        for name, args, expected in scenarios(applicable):
            verdict = engine.evaluate("t10", args)
            assert verdict.rule_id == expected, (layout, name, verdict.rule_id, expected)
            tried = len(applicable) if expected == "default-deny" else (
                applicable.index(int(expected[1:])) + 1
            )  # fmt: skip
            text = json.dumps(args)
            p50, p99 = timings(partial(engine.evaluate, "t10", args), iterations)
            j50, j99 = timings(partial(_parsed, engine, text), iterations)
            print(f"{layout:<10} {name:<14} {tried:>11} {p50:>7.2f} {p99:>7.2f}"
                  f" {j50:>9.2f} {j99:>9.2f}")  # fmt: skip
    engine, applicable = build_algebra()
    # Every applicable rule is tried (the worst case); the state total is read once per call.
    assert engine.evaluate("t10", ALGEBRA_ARGS, tenant="acme").rule_id == "default-deny"
    p50, p99 = timings(partial(engine.evaluate, "t10", ALGEBRA_ARGS, tenant="acme"), iterations)
    print(f"{'algebra':<10} {'no match':<14} {len(applicable):>11} {p50:>7.2f} {p99:>7.2f}")
    engine, _ = build("mixed")
    names = iter(range(10**9))
    cold50, cold99 = timings(lambda: engine.evaluate(f"t1{next(names)}", BASE_ARGS), 5000)
    print(f"mixed      unseen tool    (index built) {cold50:>7.2f} {cold99:>7.2f}")


if __name__ == "__main__":
    main()
