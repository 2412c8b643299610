"""Storing a document as chunks (``keel memory ingest``): the ids and the rules of a batch.

A chunk's id hashes the scope, the type, the document's ``source`` and the SHA-256 of the
chunk's text. So the same folder ingested twice maps onto the same ids (the service skips what
is there, nothing is embedded twice); a changed paragraph gets a new id while the unchanged ones
keep theirs; two files holding the same paragraph, or two tenants ingesting the same file, keep
entries of their own. Chunk ids never collide with a plain ``Store``'s (whose hash has no
source), so an ingest never overwrites a fact stored by hand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_contracts.errors import InvalidArgument
from keel_memory.domain.models import MemoryScope, MemoryType

# The metadata key that files a chunk under its document; a replacing ingest deletes the
# entries of the source that its chunks no longer hold.
SOURCE_KEY = "source"
MAX_SOURCE = 1024
MAX_CHUNKS_PER_CALL = 512


def chunk_id(type_: MemoryType, source: str, content: str, scope: MemoryScope) -> str:
    return sha256_hex(
        canonical_json(
            {
                "type": type_,
                "source": source,
                "chunk": sha256_hex(content.encode()),
                "tenant": scope.tenant,
                "agent": scope.agent,
            }
        )
    )


@dataclass(frozen=True)
class Chunk:
    content: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class IngestOutcome:
    """What a batch did: the id of each chunk in order, and how many were newly stored, were
    already there, and were deleted as no longer part of the document."""

    ids: tuple[str, ...]
    stored: int
    unchanged: int
    removed: int


def check_batch(source: str, chunks: Sequence[Chunk], replace: bool) -> None:
    if not source.strip():
        raise InvalidArgument("source is empty")
    if len(source) > MAX_SOURCE:
        raise InvalidArgument(f"source is longer than {MAX_SOURCE} characters")
    if len(chunks) > MAX_CHUNKS_PER_CALL:
        raise InvalidArgument(f"at most {MAX_CHUNKS_PER_CALL} chunks per call")
    if not chunks and not replace:
        raise InvalidArgument("a batch needs chunks (or replace, to empty a source)")
