"""``keel memory ingest PATH``: fill a tenant's semantic (or other) memory from a folder of
documents — text, Markdown and PDF — through the memory service's batch Store.

Each file is read, chunked (``ingest_docs``) and sent in batches; the service skips chunks it
already holds (ids hash tenant, source and chunk text), so a re-ingest stores nothing new, and
the file's last batch replaces whatever the file held before. A file that cannot be read or
stored is reported and the rest go on; the exit status is 1 when any file failed. The tenant is
the one named here; the memory service scopes the call to it, and refuses a caller whose
credentials are bound to another tenant."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from keel_cli.config import CliSettings
from keel_cli.ingest_docs import (
    DEFAULT_INCLUDE,
    DEFAULT_OVERLAP_CHARS,
    DEFAULT_TARGET_CHARS,
    MARKDOWN_SUFFIXES,
    ChunkSettings,
    DocumentError,
    chunk_document,
    find_documents,
    read_text,
)
from keel_clients import CallOptions, MemoryClient, open_channel
from keel_contracts.chat import RequestContext
from keel_contracts.errors import InvalidArgument, KeelError

KINDS = ("semantic", "episodic", "procedural")
# Chunks per Store call, and a cap on a call's text so it stays far below gRPC's 4 MiB.
BATCH_CHUNKS = 64
BATCH_CHARS = 512 * 1024


def add_memory_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    memory = sub.add_parser("memory", help="fill agents' long-term memory")
    memory_sub = memory.add_subparsers(dest="memory_command", required=True)
    ingest = memory_sub.add_parser(
        "ingest", help="store a file or a folder of text, Markdown and PDF documents as chunks"
    )
    ingest.add_argument("path", type=Path, help="a file, or a folder (searched recursively)")
    ingest.add_argument("--tenant", default="default", help="whose memory (default: default)")
    ingest.add_argument("--agent", default="", help="the agent id to store under ('' : none)")
    ingest.add_argument("--kind", choices=KINDS, default="semantic", help="the memory type")
    ingest.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help=f"file names to take from a folder (repeatable; default {' '.join(DEFAULT_INCLUDE)})",
    )
    ingest.add_argument("--chunk-chars", type=int, default=DEFAULT_TARGET_CHARS)
    ingest.add_argument("--overlap-chars", type=int, default=DEFAULT_OVERLAP_CHARS)
    ingest.add_argument(
        "--source-prefix",
        default="",
        help="name the documents by this instead of the folder's absolute path",
    )
    ingest.add_argument(
        "--target", default=None, help="the memory service (default: KEEL_CLI_MEMORY_TARGET)"
    )
    ingest.add_argument("--timeout", type=float, default=60.0, help="seconds per Store call")


@dataclass
class Summary:
    files: int = 0
    stored: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.files} file(s): {self.stored} chunk(s) stored, {self.unchanged} skipped as "
            f"duplicates, {self.removed} old chunk(s) removed, {len(self.errors)} error(s)"
        )


class Progress:
    """A bar redrawn in place on a terminal; one plain line per file otherwise (logs, CI)."""

    def __init__(self, total: int, out: TextIO) -> None:
        self._total = total
        self._out = out
        self._tty = out.isatty()

    def file_done(self, done: int, name: str, outcome: str) -> None:
        if not self._tty:
            print(f"[{done}/{self._total}] {name}: {outcome}", file=self._out, flush=True)
            return
        width = 30
        filled = width * done // max(self._total, 1)
        bar = "#" * filled + "-" * (width - filled)
        self._out.write(f"\r\x1b[K[{bar}] {done}/{self._total} {name[-40:]}")
        self._out.flush()

    def note(self, text: str) -> None:
        """A line that must stay on screen (an error), above the bar."""
        print(("\r\x1b[K" if self._tty else "") + text, file=self._out, flush=True)

    def close(self) -> None:
        if self._tty:
            self._out.write("\n")
            self._out.flush()


def source_of(root: Path, path: Path, prefix: str) -> str:
    """How the memory names a document: the prefix (default: the ingested folder's absolute
    path) and the file's path inside the folder; the same file ingested again is the same
    source, so its chunks dedupe and replace."""
    base = root.resolve()
    if root.is_file():
        return prefix or str(base)
    relative = path.resolve().relative_to(base).as_posix()
    return f"{prefix.rstrip('/') or str(base)}/{relative}"


def batches(chunks: list[str]) -> list[list[str]]:
    """Consecutive groups within ``BATCH_CHUNKS`` chunks and ``BATCH_CHARS`` characters; one
    empty group for a document without text (its last call still replaces what it held)."""
    groups: list[list[str]] = [[]]
    size = 0
    for chunk in chunks:
        if groups[-1] and (len(groups[-1]) == BATCH_CHUNKS or size + len(chunk) > BATCH_CHARS):
            groups.append([])
            size = 0
        groups[-1].append(chunk)
        size += len(chunk)
    return groups


async def ingest(
    memory: MemoryClient,
    ctx: RequestContext,
    args: argparse.Namespace,
    out: TextIO,
) -> Summary:
    settings = ChunkSettings(args.chunk_chars, args.overlap_chars)
    documents = await asyncio.to_thread(
        _documents, args.path, tuple(args.include) or DEFAULT_INCLUDE, args.source_prefix
    )
    summary = Summary()
    progress = Progress(len(documents), out)
    for done, (path, source) in enumerate(documents, start=1):
        try:
            text = await asyncio.to_thread(read_text, path)
            chunks = chunk_document(text, path.suffix.lower() in MARKDOWN_SUFFIXES, settings)
            stored, unchanged, removed = await _store_document(memory, ctx, args, source, chunks)
        except (DocumentError, OSError, KeelError) as exc:
            summary.errors.append(f"{path}: {exc}")
            progress.note(f"error: {path}: {exc}")
            progress.file_done(done, str(path), "error")
            continue
        summary.files += 1
        summary.stored += stored
        summary.unchanged += unchanged
        summary.removed += removed
        progress.file_done(
            done, str(path), f"{len(chunks)} chunk(s), {stored} new, {removed} removed"
        )
    progress.close()
    return summary


def _documents(root: Path, include: tuple[str, ...], prefix: str) -> list[tuple[Path, str]]:
    if not root.exists():
        raise InvalidArgument(f"{root}: no such file or folder")
    return [(path, source_of(root, path, prefix)) for path in find_documents(root, include)]


async def _store_document(
    memory: MemoryClient,
    ctx: RequestContext,
    args: argparse.Namespace,
    source: str,
    chunks: list[str],
) -> tuple[int, int, int]:
    groups = batches(chunks)
    kept: list[str] = []
    stored = unchanged = removed = 0
    for index, group in enumerate(groups):
        last = index == len(groups) - 1
        result = await memory.store_chunks(
            ctx, source, group, args.kind, replace=last, keep_ids=kept if last else ()
        )
        kept += result.ids
        stored += result.stored
        unchanged += result.unchanged
        removed += result.removed
    return stored, unchanged, removed


async def memory_command(args: argparse.Namespace) -> int:
    ctx = RequestContext(tenant=args.tenant, agent_id=args.agent)
    target = args.target or CliSettings().memory_target
    async with open_channel(target) as channel:
        memory = MemoryClient(channel, CallOptions(timeout_s=args.timeout))
        summary = await ingest(memory, ctx, args, sys.stderr)
    print(summary.line())
    for error in summary.errors:
        print(f"  error: {error}")
    return 1 if summary.errors else 0
