"""The audit emitter: every decision a service makes lands on ``keel.audit``, provably written by
the service that made it.

Each producer (one run of one service identity, ``<identity>@<run id>``) chains its records: a
record's ``hash`` covers its content and the previous record's hash, so deleting, reordering or
editing a record breaks the chain. A run's first record links to the last hash its identity
wrote before (read from the identity's signed chain head at start), so a restart continues the
identity's history instead of looking like a break, and a removed run leaves a dangling link.

With trust material every record is signed with the identity's Ed25519 audit key over the
record *and* its envelope's fields (id, time, source, session, type, trace): a re-hashed edit, a
fabricated producer or an edited envelope no longer verifies. The emitter also writes a signed
head (the last acknowledged record) to ``keel.audit.heads`` periodically and at stop, so a cut
tail no longer reaches its head. Without trust material (``KEEL_TRUST_INSECURE_DEV``) records
are hash-chained but unsigned, and ``keel audit verify`` says so.

One background task enqueues records in chain order without waiting between them (acks are
pipelined); ``record()`` returns once the broker has acknowledged its own record unless the
emitter was built with ``wait_for_ack=False``. ``writable`` says whether the bus last accepted
or refused a record, which is how the tool gateway fails closed in that mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json.encoder
import logging
import math
import secrets
from typing import Any

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_contracts.events.envelope import Envelope
from keel_contracts.events.types import AuditChainHead, AuditRecord
from keel_contracts.topics import AUDIT, AUDIT_HEADS
from keel_core.bus.producer import Publisher
from keel_core.bus.reader import read_key
from keel_core.redaction import bounded_details, bounded_name
from keel_core.settings import KafkaSettings
from keel_core.trust import Signer, Verifier

GENESIS = "0" * 64
# A string as ``json.dumps(..., ensure_ascii=False)`` writes it (quotes and escapes).
_json_string = json.encoder.encode_basestring
# Fields a record gained with signing: left out of the hash while empty, so records written
# before them (or without trust material) keep their hashes.
_OPTIONAL_HASHED = ("identity", "prev_producer", "envelope_digest")
# How often a running emitter writes its chain head when it has new acknowledged records.
HEAD_INTERVAL_S = 2.0

log = logging.getLogger(__name__)


def run_producer_id(identity: str) -> str:
    """A producer id unique to this run: host name and pid repeat across container restarts
    (pid 1 every time), a random run id does not."""
    return f"{identity}@{secrets.token_hex(6)}"


def record_hash(fields: dict[str, Any]) -> str:
    """Hash of a record's content without its own ``hash`` and ``signature`` fields."""
    return sha256_hex(canonical_json({k: fields[k] for k in _hashed_keys(fields)}))


def _hashed_keys(fields: dict[str, Any]) -> list[str]:
    """The fields a record's hash covers: all but ``hash`` and ``signature``, and the optional
    ones only when set."""
    return [
        k
        for k, v in fields.items()
        if k not in ("hash", "signature") and not (k in _OPTIONAL_HASHED and v == "")
    ]


def envelope_fields(envelope: Envelope) -> dict[str, Any]:
    """The envelope's own fields (everything but ``data``), as consumers read them."""
    return envelope.model_dump(mode="json", exclude={"data"})


def envelope_digest(envelope: Envelope) -> str:
    return sha256_hex(canonical_json(envelope_fields(envelope)))


def signed_bytes(envelope: Envelope) -> bytes:
    """What a signature covers: the envelope's fields and its payload without the signature."""
    data = {k: v for k, v in envelope.data.items() if k != "signature"}
    return canonical_json({"envelope": envelope_fields(envelope), "data": data}).encode()


def _texts(fields: dict[str, Any]) -> dict[str, str]:
    """Each field's canonical JSON text, made once: the record's hash and its signature both
    cover the fields, and each is assembled from these (``_object``) instead of serialising
    the record twice. Strings and integers are written as ``json.dumps`` writes them."""
    texts = {}
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            texts[key] = _json_string(value)
        elif kind is int:
            texts[key] = int.__repr__(value)
        else:
            texts[key] = canonical_json(value)
    return texts


def _object(texts: dict[str, str], keys: list[str]) -> str:
    """``canonical_json`` of the fields ``keys`` (sorted, no whitespace) from their texts; a
    field name is a plain identifier, so its JSON string is itself in quotes."""
    return "{" + ",".join([f'"{key}":{texts[key]}' for key in sorted(keys)]) + "}"


class _NotPlain(Exception):
    """A value whose JSON form pydantic would have to make (a datetime, a tuple, an enum)."""


def _plain_copy(value: Any) -> Any:
    """A copy of ``value`` when it is made of JSON's own types only (exact ``dict`` with ``str``
    keys, ``list``, ``str``, ``int``, ``bool``, ``None``, finite ``float``): then pydantic's JSON
    dump of it is an equal copy, and a record built from it needs no round trip. A copy, as the
    dump made: the record is written behind the call, so a caller changing its ``details``
    afterwards must not change what was hashed and signed. Raises ``_NotPlain`` otherwise.
    (Loops, not generators: this runs over every record's details.)"""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float and math.isfinite(value):
        return value
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[key] = _plain_copy(item)
        return copied
    if kind is list:
        return [_plain_copy(item) for item in value]
    raise _NotPlain


def _json_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A record's fields (every field of ``AuditRecord``, in its order) as consumers will read
    them, so the hash is over exactly that: a copy of the fields when they are plain JSON
    already (every caller's usual case), else the pydantic round trip (validation and JSON
    dump) that records were always built with."""
    try:
        copied: dict[str, Any] = _plain_copy(fields)
    except _NotPlain:
        return AuditRecord.model_validate(fields).model_dump(mode="json")
    return copied


def verify_signature(envelope: Envelope, verifier: Verifier) -> bool:
    signature = envelope.data.get("signature")
    return isinstance(signature, str) and verifier.verify(signed_bytes(envelope), signature)


def _sign(envelope: Envelope, signer: Signer | None) -> Envelope:
    if signer is None:
        return envelope
    data = {**envelope.data, "signature": signer.sign(signed_bytes(envelope))}
    return envelope.model_copy(update={"data": data})


async def read_latest_head(
    settings: KafkaSettings, identity: str, verifier: Verifier | None
) -> AuditChainHead | None:
    """The identity's latest signed head on ``keel.audit.heads`` (None when it has none): only
    the partition of its key is read, so a start costs one short read."""
    records = await read_key(settings, AUDIT_HEADS, identity, f"audit-head-{identity}")
    envelopes: list[Envelope] = []
    for record in records:
        with contextlib.suppress(ValueError):
            envelopes.append(Envelope.from_bytes(record.value or b""))
    return latest_head(envelopes, identity, verifier)


def latest_head(
    envelopes: list[Envelope], identity: str, verifier: Verifier | None
) -> AuditChainHead | None:
    """The last head of ``identity`` among ``envelopes`` (the heads topic in offset order) whose
    signature holds; a head someone else wrote is skipped (and logged), never linked to."""
    found: AuditChainHead | None = None
    for envelope in envelopes:
        try:
            head = envelope.parse(AuditChainHead)
        except ValueError:
            continue
        if head.identity != identity:
            continue
        if verifier is not None and not verify_signature(envelope, verifier):
            log.warning("ignoring an audit head of %s with a bad signature", identity)
            continue
        found = head
    return found


def verify_chain(records: list[AuditRecord]) -> int | None:
    """Index of the first record that breaks its producer's chain, or None if all hold.

    Checks each run's own chain and content hashes; a run's first record may link to an earlier
    run of its identity (checked, with signatures and heads, by ``keel audit verify``).
    """
    last: dict[str, tuple[int, str]] = {}
    for index, rec in enumerate(records):
        seq, prev = last.get(rec.producer, (-1, rec.prev_hash if rec.sequence == 0 else GENESIS))
        if rec.sequence != seq + 1 or rec.prev_hash != prev:
            return index
        if record_hash(rec.model_dump()) != rec.hash:
            return index
        last[rec.producer] = (rec.sequence, rec.hash)
    return None


class AuditEmitter:
    def __init__(
        self,
        producer: Publisher,
        producer_id: str,
        source: str,
        wait_for_ack: bool = True,
        *,
        identity: str = "",
        signer: Signer | None = None,
        heads_topic: str = AUDIT_HEADS,
        head_interval_s: float = HEAD_INTERVAL_S,
    ) -> None:
        self._producer = producer
        self._wait_for_ack = wait_for_ack
        self._producer_id = producer_id
        self._source = source
        self._identity = identity or source
        self._signer = signer
        self._heads_topic = heads_topic
        self._head_interval_s = head_interval_s
        self._prev = GENESIS
        self._prev_producer = ""
        self._sequence = -1
        # The last record the broker acknowledged, and the last one a head was written for.
        self._acked: tuple[int, str] = (-1, GENESIS)
        self._head_written = -1
        self._refusing = False
        self._queue: asyncio.Queue[tuple[Envelope, asyncio.Future[None]]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._header: asyncio.Task[None] | None = None

    @property
    def producer_id(self) -> str:
        return self._producer_id

    @property
    def signed(self) -> bool:
        return self._signer is not None

    @property
    def writable(self) -> bool:
        """False while the bus refuses audit records: the last settled write failed and none
        has succeeded since. A caller that must not act unaudited refuses while it is False."""
        return not self._refusing

    def sign_with(self, signer: Signer | None) -> None:
        """Sign from now on with ``signer`` (the runtime sets it at start, once the trust
        material is read); None writes unsigned records (insecure dev mode)."""
        self._signer = signer

    def link(self, head: AuditChainHead | None) -> None:
        """Continue the identity's history after ``head`` (call before the first record)."""
        if head is not None and self._sequence < 0:
            self._prev, self._prev_producer = head.hash, head.producer

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_in_order(), name="audit-sender")
        self._header = asyncio.create_task(self._write_heads(), name="audit-heads")

    async def record(
        self,
        action: str,
        *,
        actor: str,
        subject: str,
        session_id: str = "",
        details: dict[str, Any] | None = None,
        trace: str = "",
    ) -> AuditRecord:
        """Chain, sign and enqueue one record; wait for the broker's acknowledgement unless the
        emitter was built with ``wait_for_ack=False`` (then a failed write is logged)."""
        self._sequence += 1
        # The envelope's fields are fixed first: the record's hash and signature cover them.
        header = Envelope(
            type=AuditRecord.event_type,
            source=self._source,
            session_id=session_id,
            trace=trace,
            data={},
        )
        signer = self._signer
        envelope_text = canonical_json(envelope_fields(header)) if signer else ""
        fields = _json_fields(
            {
                "producer": self._producer_id,
                "sequence": self._sequence,
                "action": action,
                "actor": bounded_name(actor),
                "subject": bounded_name(subject),
                "details": bounded_details(details or {}),
                "prev_hash": self._prev,
                "hash": "",
                "identity": self._identity if signer else "",
                "prev_producer": self._prev_producer if self._sequence == 0 else "",
                "envelope_digest": sha256_hex(envelope_text) if signer else "",
                "signature": "",
            }
        )
        # What ``record_hash`` and ``signed_bytes`` cover, from each field's text made once.
        texts = _texts(fields)
        fields["hash"] = sha256_hex(_object(texts, _hashed_keys(fields)))
        if signer is not None:
            texts["hash"] = _json_string(fields["hash"])
            # Sorted keys put "data" before "envelope"; a nested object's canonical text is
            # the same wherever it sits.
            data = _object(texts, [key for key in fields if key != "signature"])
            signed = f'{{"data":{data},"envelope":{envelope_text}}}'
            fields["signature"] = signer.sign(signed.encode())
        envelope = header.model_copy(update={"data": fields})
        # Built from fields already in their JSON form: validating them again changes nothing.
        rec = AuditRecord.model_construct(**fields)
        self._prev = rec.hash
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((envelope, done))
        if self._wait_for_ack:
            await done
        else:
            done.add_done_callback(_log_failure)
        return rec

    async def write_head(self) -> None:
        """Sign and write the last acknowledged record as this identity's chain head."""
        sequence, hash_ = self._acked
        if sequence < 0 or sequence == self._head_written:
            return
        head = AuditChainHead(
            identity=self._identity, producer=self._producer_id, sequence=sequence, hash=hash_
        )
        envelope = _sign(Envelope.wrap(head, source=self._source, session_id=""), self._signer)
        await self._producer.publish(self._heads_topic, envelope, key=self._identity)
        self._head_written = sequence

    async def close(self) -> None:
        """Send what is queued and wait for its acknowledgements, write the final head, then
        stop the sender."""
        await self._queue.join()
        await self._producer.flush()
        for task in (self._header, self._sender):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self.write_head()
        except Exception:  # noqa: BLE001 - stopping: the next run links to the older head
            log.exception("final audit chain head not written")

    async def _write_heads(self) -> None:
        while True:
            await asyncio.sleep(self._head_interval_s)
            try:
                await self.write_head()
            except Exception:  # noqa: BLE001 - the next interval tries again
                log.exception("audit chain head not written")

    async def _send_in_order(self) -> None:
        while True:
            envelope, done = await self._queue.get()
            try:
                acked = await self._producer.enqueue(AUDIT, envelope, key=self._producer_id)
                acked.add_done_callback(functools.partial(self._settle, envelope, done))
            except Exception as exc:  # noqa: BLE001 - the caller gets the failure
                self._refusing = True
                if not done.done():
                    done.set_exception(exc)
            finally:
                self._queue.task_done()

    def _settle(
        self, envelope: Envelope, done: asyncio.Future[None], acked: asyncio.Future[Any]
    ) -> None:
        if not acked.cancelled() and acked.exception() is None:
            self._refusing = False
            sequence = envelope.data["sequence"]
            if sequence > self._acked[0]:
                self._acked = (sequence, envelope.data["hash"])
        elif not acked.cancelled():
            self._refusing = True
        _settle(done, acked)


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("audit record not written: %s", exc)


def _settle(done: asyncio.Future[None], acked: asyncio.Future[Any]) -> None:
    if done.done():
        return
    if acked.cancelled():
        done.cancel()
    elif (exc := acked.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result(None)
