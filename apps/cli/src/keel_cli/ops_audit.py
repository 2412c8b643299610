"""``keel audit verify``: check every audit record on the topic and report EVERY break, not only
the first, so an operator sees the whole extent of tampering.

What is checked, and what each kind of break means:

- each run's hash chain (``missing sequence``, a repeat, a ``prev_hash`` that does not match);
- each record's content against its hash (``edited record``);
- with trust material, each record's Ed25519 signature with its identity's public key:
  ``unsigned record``, ``fabricated producer`` (an identity without a key, or a producer id
  that is not its identity's), ``envelope edited`` (the envelope's fields changed since
  signing), ``re-hashed record`` (content and hash agree, the signature does not: edited and
  re-hashed, or forged);
- each run's first record links to the previous run of its identity: a link to a run of which
  nothing is left is a ``missing run``, to a record past the end of a run a ``cut tail``;
- the signed chain heads on ``<topic>.heads``: a run that does not reach its latest head has a
  ``cut tail`` (or is a ``missing run`` when nothing of it is left); a head whose signature
  fails is a ``forged head``.

Without trust material (``KEEL_TRUST_INSECURE_DEV``) signatures are not checked and the
summary says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from keel_cli.ops_read import Record, read_topic
from keel_contracts.errors import ConfigError
from keel_contracts.events import AuditChainHead, AuditRecord, Envelope
from keel_contracts.topics import heads_of
from keel_core import trust
from keel_core.audit import GENESIS, envelope_digest, record_hash, verify_signature
from keel_core.settings import KafkaSettings
from keel_core.trust import TrustSettings, Verifier

UNDECODABLE = "undecodable"
CHAIN = "broken chain"
EDITED = "edited record"
REHASHED = "re-hashed record"
ENVELOPE = "envelope edited"
UNSIGNED = "unsigned record"
FABRICATED = "fabricated producer"
MISSING_RUN = "missing run"
CUT_TAIL = "cut tail"
FORGED_HEAD = "forged head"


@dataclass(frozen=True)
class ChainBreak:
    partition: int
    offset: int
    producer: str
    sequence: int
    problem: str
    kind: str = CHAIN
    topic: str = ""

    def __str__(self) -> str:
        where = f"{self.topic} partition" if self.topic else "partition"
        return (
            f"BROKEN at {where} {self.partition} offset {self.offset}: producer "
            f"{self.producer or '?'} sequence {self.sequence}: {self.problem}"
        )


@dataclass
class ChainReport:
    counts: dict[str, int]
    breaks: list[ChainBreak] = field(default_factory=list)
    # Per producer, how many of its records verify before its first break.
    intact: dict[str, int] = field(default_factory=dict)
    signatures_checked: bool = False
    unsigned: int = 0

    @property
    def first_break(self) -> ChainBreak | None:
        return self.breaks[0] if self.breaks else None

    def summary(self) -> dict[str, int]:
        return dict(Counter(b.kind for b in self.breaks))


@dataclass
class _Run:
    identity: str
    last: tuple[int, str] = (-1, GENESIS)
    hashes: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Link:
    record: Record
    producer: str
    identity: str
    prev_producer: str
    prev_hash: str


def _decode(record: Record) -> tuple[Envelope, AuditRecord]:
    envelope = Envelope.from_bytes(record.value or b"")
    return envelope, envelope.parse(AuditRecord)


def _identity(rec: AuditRecord) -> str:
    return rec.identity or rec.producer.partition("@")[0]


def _chain_problem(rec: AuditRecord, run: _Run | None) -> str | None:
    if run is None:
        # A run's first record: sequence 0, linking to GENESIS or an earlier run (checked later).
        return f"missing sequence 0..{rec.sequence - 1}" if rec.sequence != 0 else None
    seq, prev = run.last
    if rec.sequence != seq + 1:
        if rec.sequence <= seq:
            return f"sequence {rec.sequence} repeats or goes back (last was {seq})"
        return f"missing sequence {seq + 1}..{rec.sequence - 1}"
    if rec.prev_hash != prev:
        return f"prev_hash {rec.prev_hash[:12]}… does not match the previous hash {prev[:12]}…"
    return None


def _authenticity(
    envelope: Envelope, rec: AuditRecord, verifiers: dict[str, Verifier] | None
) -> tuple[str, str] | None:
    """(kind, problem) when the record is not what its identity wrote, else None."""
    if record_hash(rec.model_dump(mode="json")) != rec.hash:
        return EDITED, "content does not match its hash (record edited)"
    if verifiers is None:
        return None
    identity = _identity(rec)
    verifier = verifiers.get(identity)
    if verifier is None:
        return FABRICATED, f"identity {identity!r} has no audit key (fabricated producer)"
    if not rec.producer.startswith(f"{identity}@"):
        return FABRICATED, f"producer id is not one of identity {identity!r} (fabricated)"
    if not rec.signature:
        return UNSIGNED, f"unsigned record of identity {identity!r}"
    if verify_signature(envelope, verifier):
        return None
    if envelope_digest(envelope) != rec.envelope_digest:
        return ENVELOPE, "envelope fields (id, time, source, session, type…) edited after signing"
    return REHASHED, "signature does not match (record edited and re-hashed, or forged)"


class _Verifier:
    def __init__(self, verifiers: dict[str, Verifier] | None) -> None:
        self.verifiers = verifiers
        self.report = ChainReport(counts={}, signatures_checked=verifiers is not None)
        self.runs: dict[str, _Run] = {}
        self.links: list[_Link] = []
        self._broken: set[str] = set()
        self._reported: set[tuple[str, str]] = set()

    def add(self, where: Record, producer: str, sequence: int, kind: str, problem: str) -> None:
        self.report.breaks.append(
            ChainBreak(where.partition, where.offset, producer, sequence, problem, kind)
        )
        self._broken.add(producer)

    def record(self, record: Record) -> None:
        try:
            envelope, rec = _decode(record)
        except (ValidationError, ValueError) as exc:
            self.add(record, "", -1, UNDECODABLE, f"undecodable: {str(exc).splitlines()[0]}")
            return
        counts, intact = self.report.counts, self.report.intact
        counts[rec.producer] = counts.get(rec.producer, 0) + 1
        self.report.unsigned += not rec.signature
        run = self.runs.get(rec.producer)
        problems = [p for p in (_authenticity(envelope, rec, self.verifiers),) if p]
        if (chain := _chain_problem(rec, run)) is not None:
            problems.insert(0, (CHAIN, chain))
        for kind, problem in problems:
            self.add(record, rec.producer, rec.sequence, kind, problem)
        if rec.producer not in self._broken:
            intact[rec.producer] = intact.get(rec.producer, 0) + 1
        if run is None:
            run = self.runs[rec.producer] = _Run(_identity(rec))
            if rec.sequence == 0 and rec.prev_hash != GENESIS:
                self.links.append(
                    _Link(record, rec.producer, run.identity, rec.prev_producer, rec.prev_hash)
                )
        run.last = (rec.sequence, rec.hash)
        run.hashes[rec.sequence] = rec.hash

    def resolve_links(self) -> None:
        """A run's first record links to an earlier run's record of the same identity."""
        known = {
            (run.identity, hash_) for run in self.runs.values() for hash_ in run.hashes.values()
        }
        for link in self.links:
            if (link.identity, link.prev_hash) in known:
                continue
            earlier = self.runs.get(link.prev_producer)
            if earlier is None:
                kind, problem = (
                    MISSING_RUN,
                    (
                        f"links to run {link.prev_producer or '?'} of {link.identity!r}, "
                        f"of which no record is left (a whole run removed)"
                    ),
                )
            else:
                kind, problem = (
                    CUT_TAIL,
                    (
                        f"links to record {link.prev_hash[:12]}… of run {link.prev_producer}, "
                        f"which ends at sequence {earlier.last[0]} (its tail was cut)"
                    ),
                )
            self.once(link.prev_producer, kind, link.record, link.producer, 0, problem)

    def heads(self, records: list[Record], topic: str) -> None:
        """Every run must reach the latest head it signed."""
        latest: dict[str, tuple[Record, AuditChainHead]] = {}
        for record in records:
            try:
                envelope = Envelope.from_bytes(record.value or b"")
                head = envelope.parse(AuditChainHead)
            except (ValidationError, ValueError):
                continue  # tombstones and foreign records say nothing about a chain
            verifier = (self.verifiers or {}).get(head.identity)
            if self.verifiers is not None and (
                verifier is None or not verify_signature(envelope, verifier)
            ):
                self.report.breaks.append(
                    ChainBreak(
                        record.partition,
                        record.offset,
                        head.producer,
                        head.sequence,
                        f"chain head of {head.identity!r} is not signed by its key",
                        FORGED_HEAD,
                        topic,
                    )
                )
                continue
            known = latest.get(head.producer)
            if known is None or head.sequence > known[1].sequence:
                latest[head.producer] = (record, head)
        for record, head in latest.values():
            self._check_head(record, head, topic)

    def _check_head(self, record: Record, head: AuditChainHead, topic: str) -> None:
        run = self.runs.get(head.producer)
        if run is None:
            kind, problem = (
                MISSING_RUN,
                (
                    f"no record of run {head.producer} is left; its signed head says "
                    f"{head.sequence + 1} records (a whole run removed)"
                ),
            )
        elif run.last[0] < head.sequence:
            kind, problem = (
                CUT_TAIL,
                (
                    f"run ends at sequence {run.last[0]} but its signed head says "
                    f"{head.sequence} (its tail was cut)"
                ),
            )
        elif run.hashes.get(head.sequence) != head.hash:
            kind, problem = (
                REHASHED,
                ("the record at the signed head's sequence is not the one signed (re-hashed)"),
            )
        else:
            return
        self.once(head.producer, kind, record, head.producer, head.sequence, problem, topic)

    def once(
        self,
        run: str,
        kind: str,
        where: Record,
        producer: str,
        sequence: int,
        problem: str,
        topic: str = "",
    ) -> None:
        """A missing run or a cut tail shows both in links and in heads: report it once."""
        if (run, kind) in self._reported:
            return
        self._reported.add((run, kind))
        self.report.breaks.append(
            ChainBreak(where.partition, where.offset, producer, sequence, problem, kind, topic)
        )


def verify_records(
    records: list[Record],
    heads: list[Record] | None = None,
    verifiers: dict[str, Verifier] | None = None,
    heads_topic: str = "",
) -> ChainReport:
    """Every break in ``records`` (an audit topic) and ``heads`` (its heads topic).

    Chains are per producer; a producer keys its records by its id, so one producer's chain
    lives in one partition in offset order. ``verifiers`` (identity -> public key) turns on the
    signature checks; None checks hashes and chains only (the insecure dev mode).
    """
    check = _Verifier(verifiers)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        check.record(record)
    check.resolve_links()
    check.heads(heads or [], heads_topic)
    return check.report


def _load_verifiers(settings: TrustSettings) -> dict[str, Verifier] | None:
    material = trust.load(settings, "operator")
    return material.audit_verifiers() if material is not None else None


async def audit_verify(
    settings: KafkaSettings, topic: str, trust_settings: TrustSettings | None = None
) -> int:
    """Exit 0 when everything verifies, 1 on any break, 2 without trust material."""
    try:
        verifiers = _load_verifiers(trust_settings or TrustSettings())
    except ConfigError as exc:
        print(f"keel audit verify: {exc}")
        return 2
    heads_topic = heads_of(topic)
    records = await read_topic(settings, topic)
    try:
        heads = await read_topic(settings, heads_topic)
    except ConfigError:
        # A topic written before heads existed: every other check still applies.
        heads = None
    report = verify_records(records, heads or [], verifiers, heads_topic)
    print_report(report)
    if heads is None:
        print(f"no {heads_topic} topic: cut tails after a run's last record are not checked")
    return 1 if report.breaks else 0


def print_report(report: ChainReport) -> None:
    for producer, count in sorted(report.counts.items()):
        intact = report.intact.get(producer, 0)
        line = f"{producer:<40} {intact:>8} records"
        if intact != count:
            line += f" before its first break ({count} in all)"
        print(line)
    for broken in report.breaks:
        print(broken)
    total = sum(report.counts.values())
    signatures = (
        "signatures checked"
        if report.signatures_checked
        else f"signatures NOT checked (no trust material: insecure dev mode; "
        f"{report.unsigned} of {total} records unsigned)"
    )
    if report.breaks:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(report.summary().items()))
        print(
            f"{total} records from {len(report.counts)} producers; "
            f"{len(report.breaks)} breaks ({kinds}); {signatures}"
        )
        return
    print(f"{total} records from {len(report.counts)} producers; hash chains intact; {signatures}")
