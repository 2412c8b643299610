"""``keel policy``: try a tool call against a policy file or directory, in-process.

``keel policy test FILE --tool NAME --args JSON`` prints the decision, the rule and the reason
(``--explain``: every rule considered and the condition that failed) and exits 0 for allow,
1 for deny, 3 for require approval and 2 when the file is invalid. ``keel policy check FILE``
only validates. The engine is the policy service's own (``keel_policy``), so the answer is
the one the service would give with that file (``--session``/``--agent`` name the caller whose
running totals a ``state:`` condition reads; in-process they start at zero; ``--provenance``
gives, as JSON, the findings the tool gateway would send for a ``provenance:`` condition).

``keel policy list add|remove|show NAME [ITEM]`` changes or shows the items of a named list
kept on ``keel.policy.lists`` (lists declared with ``topic: true``): the policy service sees a
change within ``KEEL_POLICY_LISTS_REFRESH_S`` without a reload.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from keel_contracts.errors import InvalidArgument
from keel_contracts.events import Envelope
from keel_contracts.events.policy import PolicyListItem, list_item_key
from keel_contracts.topics import POLICY_LISTS
from keel_core.settings import KafkaSettings

if TYPE_CHECKING:
    from keel_policy import Explanation, Finding, Verdict

EXIT_CODES = {"allow": 0, "deny": 1, "require_approval": 3}


def add_policy_parser(sub: Any) -> None:
    policy = sub.add_parser("policy", help="check policy files and try calls against them")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    test = policy_sub.add_parser(
        "test",
        help="decide one tool call (exit 0 allow, 1 deny, 3 require approval, 2 invalid)",
    )
    test.add_argument("file", type=Path, help="a policy file or a directory of them")
    test.add_argument("--tool", required=True, help="the tool name")
    test.add_argument("--args", default="{}", help="the arguments as a JSON object")
    test.add_argument("--profile", default="default", help="the agent profile")
    test.add_argument("--tenant", default="", help="the tenant (default: none)")
    test.add_argument("--explain", action="store_true", help="show every rule considered")
    test.add_argument("--session", default="", help="the session id (state per session)")
    test.add_argument("--agent", default="", help="the agent id (state per agent)")
    test.add_argument(
        "--provenance",
        default="[]",
        help='findings as JSON: [{"path": "$.to", "span": "...", "sources": ["http_fetch"], '
        '"in_task": false}]',
    )
    check = policy_sub.add_parser("check", help="validate a policy file or directory")
    check.add_argument("file", type=Path)
    lists = policy_sub.add_parser("list", help="items of named lists kept on keel.policy.lists")
    lists_sub = lists.add_subparsers(dest="list_command", required=True)
    for verb, words in (("add", "add ITEM to"), ("remove", "remove ITEM from")):
        change = lists_sub.add_parser(verb, help=f"{words} the list NAME")
        change.add_argument("name")
        change.add_argument("item")
    show = lists_sub.add_parser("show", help="the items of the list NAME")
    show.add_argument("name")


async def policy_command(args: argparse.Namespace, kafka: KafkaSettings | None = None) -> int:
    if args.policy_command == "list":
        return await list_command(kafka or KafkaSettings(), args)
    # Imported here so the rest of the CLI does not load the policy engine.
    from keel_policy import PolicyEngine, load_policy

    engine = PolicyEngine(load_policy(args.file))
    if args.policy_command == "check":
        sets = len(engine.set_names)
        names = ", ".join(engine.set_names)
        print(f"ok: {sets} set{'s' if sets != 1 else ''} ({names}), {engine.rule_count} rules")
        return 0
    arguments = _arguments(args.args)
    explanation = engine.explain(
        args.tool,
        arguments,
        args.profile,
        args.tenant,
        session_id=args.session,
        agent_id=args.agent,
        provenance=_findings(args.provenance),
    )
    print(render(explanation, args.explain))
    return EXIT_CODES[explanation.verdict.decision]


def _arguments(text: str) -> dict[str, Any]:
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"--args is not JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise InvalidArgument("--args must be a JSON object")
    return arguments


def _findings(text: str) -> tuple[Finding, ...]:
    from keel_policy import Finding

    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"--provenance is not JSON: {exc}") from exc
    if not isinstance(found, list) or not all(isinstance(f, dict) for f in found):
        raise InvalidArgument("--provenance must be a JSON list of objects")
    try:
        return tuple(
            Finding(
                path=str(f["path"]),
                span=str(f["span"]),
                sources=tuple(str(s) for s in f.get("sources", [])),
                in_task=bool(f.get("in_task", False)),
            )
            for f in found
        )
    except KeyError as exc:
        raise InvalidArgument(f"--provenance: a finding needs {exc}") from exc


def render(explanation: Explanation, detailed: bool) -> str:
    verdict = explanation.verdict
    lines = [
        f"decision: {verdict.decision}",
        f"rule: {verdict.rule_id}",
        f"policy set: {verdict.policy_set}",
        f"reason: {verdict.reason}",
    ]
    if detailed:
        lines.append(f"selection: {' -> '.join(explanation.selection)}")
        lines.append("rules considered, in order:")
        for trace in explanation.rules:
            mark = "MATCH" if trace.matched else "skip "
            lines.append(
                f"  {mark} {trace.rule_id} (priority {trace.priority}, tool {trace.tool!r}, "
                f"{trace.decision}): {trace.reason}"
            )
            for condition in trace.conditions:
                status = "ok  " if condition.passed else "FAIL"
                lines.append(f"      {status} {condition.condition}: {condition.detail}")
        if not explanation.rules:
            lines.append("  (none)")
    if explanation.shadow is not None:
        lines.append(_shadow_line(explanation.shadow))
    return "\n".join(lines)


def _shadow_line(shadow: Verdict) -> str:
    return f"shadow ({shadow.policy_set}) would decide: {shadow.decision} by rule {shadow.rule_id}"


async def list_command(settings: KafkaSettings, args: argparse.Namespace) -> int:
    from keel_core.bus.producer import EventProducer
    from keel_core.bus.reader import read_topic

    if args.list_command == "show":
        items = await list_items(settings, args.name, read_topic)
        for item in items:
            print(item)
        print(f"{len(items)} item(s) in list {args.name!r}")
        return 0
    try:
        entry = PolicyListItem(list=args.name, item=args.item, added_by="operator")
    except ValidationError as exc:
        raise InvalidArgument(f"invalid list name or item: {exc.errors()[0]['msg']}") from exc
    producer = EventProducer(settings, "cli-policy-lists")
    await producer.start()
    try:
        if args.list_command == "add":
            envelope = Envelope.wrap(entry, source="operator", session_id=entry.key)
            await producer.publish(POLICY_LISTS, envelope, key=entry.key)
        else:
            await producer.send_raw(POLICY_LISTS, None, entry.key, [])
    finally:
        await producer.stop()
    done = "added to" if args.list_command == "add" else "removed from"
    print(f"{args.item!r} {done} list {args.name!r}")
    return 0


async def list_items(settings: KafkaSettings, name: str, read: Any) -> list[str]:
    """The list's items as the compacted topic holds them now (the latest record per key;
    a tombstone removes)."""
    prefix = list_item_key(name, "")
    held: dict[str, bool] = {}
    for record in await read(settings, POLICY_LISTS, "cli-policy-lists"):
        key = (record.key or b"").decode(errors="replace")
        if key.startswith(prefix):
            held[key] = record.value is not None
    return sorted(key[len(prefix) :] for key, present in held.items() if present)
