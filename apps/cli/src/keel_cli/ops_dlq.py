"""``keel dlq list|show|replay``: inspect dead letters and send one back where it came from.

A dead letter keeps the original bytes and key; the reason, the source topic and position are
in ``keel-dlq-*`` headers. Replay re-publishes the original bytes and key (and the original,
non-DLQ headers) to the source topic; handlers are idempotent, so replaying twice is safe.
"""

from __future__ import annotations

import argparse

from keel_cli.ops_read import Record, parse_location, read_topic
from keel_contracts.errors import FailedPrecondition, InvalidArgument, NotFound
from keel_contracts.topics import TASKS, dlq_of
from keel_core.bus.producer import EventProducer
from keel_core.settings import KafkaSettings

DLQ_PREFIX = "keel-dlq-"


def add_dlq_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter topics: list, show, replay")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (
        ("list", "one line per dead letter"),
        ("show", "one dead letter in full"),
        ("replay", "re-publish a dead letter's original bytes to its source topic"),
    ):
        cmd = dlq_sub.add_parser(name, help=text)
        if name != "list":
            cmd.add_argument("location", help="<partition>:<offset> as printed by `dlq list`")
        cmd.add_argument("--topic", default=dlq_of(TASKS), help="the dead-letter topic")
        if name == "replay":
            cmd.add_argument("--to", default="", help="default: the keel-dlq-topic header")


def headers_of(record: Record) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers or ()}


def summary(record: Record) -> str:
    h = headers_of(record)
    key = (record.key or b"").decode(errors="replace")
    reason = h.get(f"{DLQ_PREFIX}reason", "").splitlines()[0:1]
    return (
        f"{record.partition}:{record.offset}  {h.get(f'{DLQ_PREFIX}time', '')[:19]}  "
        f"from {h.get(f'{DLQ_PREFIX}topic', '?')}@{h.get(f'{DLQ_PREFIX}partition', '?')}:"
        f"{h.get(f'{DLQ_PREFIX}offset', '?')}  key={key}  {(reason or [''])[0][:100]}"
    )


def detail(record: Record) -> str:
    lines = [summary(record)]
    lines += [f"  {k}: {v}" for k, v in headers_of(record).items() if k != f"{DLQ_PREFIX}trace"]
    lines.append("  value: " + (record.value or b"").decode(errors="replace"))
    trace = headers_of(record).get(f"{DLQ_PREFIX}trace", "")
    if trace:
        lines += ["  trace:", *("    " + line for line in trace.splitlines())]
    return "\n".join(lines)


async def find(settings: KafkaSettings, topic: str, location: str) -> Record:
    try:
        partition, offset = parse_location(location)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc
    for record in await read_topic(settings, topic):
        if record.partition == partition and record.offset == offset:
            return record
    raise NotFound(f"no dead letter at {topic} {location}")


async def replay(settings: KafkaSettings, record: Record, to: str = "") -> tuple[str, int]:
    """Re-publish ``record``'s original bytes and key; the topic and offset written."""
    target = to or headers_of(record).get(f"{DLQ_PREFIX}topic", "")
    if not target:
        raise FailedPrecondition("the record has no keel-dlq-topic header; pass --to")
    headers = [(k, v) for k, v in record.headers or () if not k.startswith(DLQ_PREFIX)]
    origin = f"{record.topic}@{record.partition}:{record.offset}"
    headers.append(("keel-replayed-from", origin.encode()))
    producer = EventProducer(settings, "cli-dlq")
    await producer.start()
    try:
        offset = await producer.send_raw(target, record.value, record.key, headers)
    finally:
        await producer.stop()
    return target, offset


async def dlq_command(settings: KafkaSettings, args: argparse.Namespace) -> int:
    if args.dlq_command == "list":
        records = await read_topic(settings, args.topic)
        for record in records:
            print(summary(record))
        print(f"{len(records)} dead letter(s) on {args.topic}")
        return 0
    record = await find(settings, args.topic, args.location)
    if args.dlq_command == "show":
        print(detail(record))
        return 0
    target, offset = await replay(settings, record, args.to)
    print(f"replayed {args.topic} {args.location} to {target} at offset {offset}")
    return 0
