"""How a session state too large for one Kafka record is kept on ``keel.checkpoints``.

The producer refuses a record over 1 MiB (aiokafka's ``max_request_size``; the broker's
``message.max.bytes`` is about the same), so a long session's state is cut into pieces of at
most ``PIECE_BYTES``, each written as its own record (``CheckpointChunk``, compressed) under a
key named by its content (``<session id>:chunk:<sha256>``). The head record (the session's
``SessionCheckpoint`` or ``SessionFinished``) then holds a ``ChunkManifest`` in place of the
state: the pieces in order, and the hash and size of the whole.

The pieces are cut at fixed offsets of the state's JSON, whose fields before ``messages``
never change during a session and whose history only grows: a new step changes only the
last piece or two, so the earlier ones keep their keys and are not written again. See
docs/adr/0006-chunked-checkpoints.md.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from keel_contracts.events import Envelope, EventData

# Under the 1 MiB a record may have: a state up to this size stays one record, as before.
INLINE_MAX = 768 * 1024
# A piece compresses to at most a little over this and grows by 4/3 in base64: ~700 KiB.
PIECE_BYTES = 512 * 1024
MANIFEST_FIELD = "chunked"
_KEY_MARK = ":chunk:"


class CheckpointChunk(EventData):
    """One piece of a session state too large for one record, on the compacted
    ``keel.checkpoints`` (key ``<session id>:chunk:<sha256>``). Written, and acknowledged,
    before the head that names it; read only by the agent loop's replicas."""

    event_type: ClassVar[str] = "keel.session.checkpoint_chunk"

    sha256: str
    data: str  # base64 of the zlib-compressed piece


class ChunkManifest(BaseModel):
    """What a head holds in place of a state that did not fit: the keys of its pieces, in
    order, and the hash and size of the whole (a reassembly that differs is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: tuple[str, ...]
    sha256: str
    size: int


class MissingChunks(ValueError):
    """A head names pieces this view does not have (swept, lost, or not followed yet)."""


def chunk_key(session_id: str, digest: str) -> str:
    return f"{session_id}{_KEY_MARK}{digest}"


def pieces(session_id: str, raw: bytes) -> tuple[ChunkManifest, dict[str, bytes]]:
    """Cut ``raw`` into pieces: the manifest, and each distinct piece by its key."""
    by_key: dict[str, bytes] = {}
    keys: list[str] = []
    for start in range(0, len(raw), PIECE_BYTES):
        piece = raw[start : start + PIECE_BYTES]
        key = chunk_key(session_id, hashlib.sha256(piece).hexdigest())
        by_key[key] = piece
        keys.append(key)
    manifest = ChunkManifest(
        keys=tuple(keys), sha256=hashlib.sha256(raw).hexdigest(), size=len(raw)
    )
    return manifest, by_key


def encode(piece: bytes) -> CheckpointChunk:
    return CheckpointChunk(
        sha256=hashlib.sha256(piece).hexdigest(),
        data=base64.b64encode(zlib.compress(piece, 1)).decode("ascii"),
    )


def manifest_of(state: dict[str, Any]) -> ChunkManifest | None:
    """The manifest a head's ``state`` holds in place of the state, if it does."""
    if len(state) != 1 or MANIFEST_FIELD not in state:
        return None
    return ChunkManifest.model_validate(state[MANIFEST_FIELD])


def as_state(manifest: ChunkManifest) -> dict[str, Any]:
    return {MANIFEST_FIELD: manifest.model_dump(mode="json")}


def join(manifest: ChunkManifest, lookup: Callable[[str], Envelope | None]) -> bytes:
    """The whole state again; ``MissingChunks`` when a piece is absent, ``ValueError`` when
    what was found is not what the manifest names."""
    parts: list[bytes] = []
    for key in manifest.keys:
        envelope = lookup(key)
        if envelope is None or envelope.type != CheckpointChunk.event_type:
            raise MissingChunks(f"chunk {key} is missing")
        chunk = envelope.parse(CheckpointChunk)
        try:
            parts.append(zlib.decompress(base64.b64decode(chunk.data)))
        except zlib.error as exc:
            raise ValueError(f"chunk {key} does not decompress: {exc}") from exc
    raw = b"".join(parts)
    if len(raw) != manifest.size or hashlib.sha256(raw).hexdigest() != manifest.sha256:
        raise ValueError("the chunks do not add up to the checkpoint they were written for")
    return raw
