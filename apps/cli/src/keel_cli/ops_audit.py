"""``keel audit verify``: walk every producer's hash chain on the audit topic and name the first
place it breaks, so tampering (an edited, deleted, reordered or forged record) is found and
located rather than merely detected."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from keel_cli.ops_read import Record, read_topic
from keel_contracts.events import AuditRecord, Envelope
from keel_core.audit import GENESIS, record_hash
from keel_core.settings import KafkaSettings


@dataclass(frozen=True)
class ChainBreak:
    partition: int
    offset: int
    producer: str
    sequence: int
    problem: str

    def __str__(self) -> str:
        return (
            f"BROKEN at partition {self.partition} offset {self.offset}: producer "
            f"{self.producer or '?'} sequence {self.sequence}: {self.problem}"
        )


@dataclass
class ChainReport:
    counts: dict[str, int]
    first_break: ChainBreak | None


def _decode(record: Record) -> AuditRecord:
    envelope = Envelope.from_bytes(record.value or b"")
    return envelope.parse(AuditRecord)


def _problem(rec: AuditRecord, last: tuple[int, str]) -> str | None:
    seq, prev = last
    if rec.sequence != seq + 1:
        if rec.sequence <= seq:
            return f"sequence {rec.sequence} repeats or goes back (last was {seq})"
        return f"missing sequence {seq + 1}..{rec.sequence - 1}"
    if rec.prev_hash != prev:
        return f"prev_hash {rec.prev_hash[:12]}… does not match the previous hash {prev[:12]}…"
    if record_hash(rec.model_dump(mode="json")) != rec.hash:
        return "content does not match its hash (record edited)"
    return None


def verify_records(records: list[Record]) -> ChainReport:
    """Chains are per producer; a producer keys its records by its id, so one producer's
    chain lives in one partition in offset order."""
    last: dict[str, tuple[int, str]] = {}
    counts: dict[str, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            rec = _decode(record)
        except (ValidationError, ValueError) as exc:
            reason = f"undecodable: {str(exc).splitlines()[0]}"
            return ChainReport(counts, ChainBreak(record.partition, record.offset, "", -1, reason))
        problem = _problem(rec, last.get(rec.producer, (-1, GENESIS)))
        if problem is not None:
            where = ChainBreak(record.partition, record.offset, rec.producer, rec.sequence, problem)
            return ChainReport(counts, where)
        last[rec.producer] = (rec.sequence, rec.hash)
        counts[rec.producer] = counts.get(rec.producer, 0) + 1
    return ChainReport(counts, None)


async def audit_verify(settings: KafkaSettings, topic: str) -> int:
    report = verify_records(await read_topic(settings, topic))
    for producer, count in sorted(report.counts.items()):
        print(f"{producer:<40} {count:>8} records")
    if report.first_break is not None:
        print(report.first_break)
        return 1
    total = sum(report.counts.values())
    print(f"{total} records from {len(report.counts)} producers; hash chains intact")
    return 0
