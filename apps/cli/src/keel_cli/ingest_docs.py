"""Documents for ``keel memory ingest``: which files a path names, their text, and its chunks.

Chunking is deterministic (the same text always gives the same chunks), because the memory
service dedupes by chunk hash: a re-ingest of an unchanged file must produce exactly the chunks
it stored before, and an edit must change only the chunks around it. So chunks follow the
document's own structure — Markdown headings start a new chunk, paragraphs (blank-line
separated blocks) are packed up to a size target — rather than fixed offsets, which would shift
every chunk after an inserted sentence. Chunks after the first of a section repeat the section's
heading and the tail of the chunk before (the overlap), so each one still says what it is about.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_INCLUDE = ("*.md", "*.markdown", "*.txt", "*.text", "*.rst", "*.pdf")
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
DEFAULT_TARGET_CHARS = 1200
DEFAULT_OVERLAP_CHARS = 150

_HEADING = re.compile(r"^#{1,6}\s+\S")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class DocumentError(Exception):
    """A file that cannot be read as text (undecodable, a broken or encrypted PDF)."""


@dataclass(frozen=True)
class ChunkSettings:
    target_chars: int = DEFAULT_TARGET_CHARS
    overlap_chars: int = DEFAULT_OVERLAP_CHARS

    def __post_init__(self) -> None:
        if self.target_chars < 50:
            raise ValueError("the chunk size target must be at least 50 characters")
        if not 0 <= self.overlap_chars < self.target_chars // 2:
            raise ValueError("the overlap must be below half the chunk size target")


def find_documents(root: Path, include: Sequence[str] = DEFAULT_INCLUDE) -> list[Path]:
    """``root`` itself when it is a file; else every file under it (recursively, hidden folders
    and files left out) whose name matches one of ``include``, in path order."""
    if root.is_file():
        return [root]
    found = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in include)
    ]
    return sorted(found)


def read_text(path: Path) -> str:
    """The text of a PDF (every page's, in order) or of a UTF-8 text file."""
    if path.suffix.lower() == ".pdf":
        return _pdf_text(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted")
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except PdfReadError as exc:
        raise DocumentError(f"not a readable PDF ({exc})") from exc


def chunk_document(text: str, markdown: bool, settings: ChunkSettings | None = None) -> list[str]:
    """The chunks of one document, in order, each at most about ``target_chars`` long."""
    settings = settings or ChunkSettings()
    chunks: list[str] = []
    for heading, blocks in _sections(text, markdown):
        chunks += _pack(heading, blocks, settings)
    return list(dict.fromkeys(chunks))


def _sections(text: str, markdown: bool) -> Iterator[tuple[str, list[str]]]:
    """(heading, blocks) per section with text; the heading is "" before the first one and in
    plain text. A fenced code block stays one block, blank lines and '#' lines inside it
    included."""
    heading = ""
    blocks: list[str] = []
    current: list[str] = []
    fenced = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.rstrip()
        if markdown and _FENCE.match(line):
            fenced = not fenced
        if not fenced and not line.strip():
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        if markdown and not fenced and _HEADING.match(line):
            if current:
                blocks.append("\n".join(current))
                current = []
            if blocks:
                yield heading, blocks
            heading, blocks = line.strip(), []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    if blocks:
        yield heading, blocks


def _pack(heading: str, blocks: list[str], settings: ChunkSettings) -> list[str]:
    """Greedy packing of a section's blocks into chunks near the target; a block too long for
    one chunk is cut at sentence ends (and, failing those, at spaces)."""
    target = settings.target_chars - len(heading)
    pieces = [piece for block in blocks for piece in _split_long(block, max(target, 50))]
    chunks: list[str] = []
    body = ""
    for piece in pieces:
        if body and len(body) + 2 + len(piece) > target:
            chunks.append(body)
            body = _tail(body, settings.overlap_chars)
        body = f"{body}\n\n{piece}" if body else piece
    if body:
        chunks.append(body)
    return [f"{heading}\n\n{chunk}" for chunk in chunks] if heading else chunks


def _split_long(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    parts: list[str] = []
    current = ""
    for unit in _units(block, limit):
        if current and len(current) + 1 + len(unit) > limit:
            parts.append(current)
            current = ""
        current = f"{current} {unit}" if current else unit
    if current:
        parts.append(current)
    return parts


def _units(block: str, limit: int) -> Iterator[str]:
    """Sentences, and words of a sentence too long on its own, and slices of a word too long."""
    for sentence in _SENTENCE_END.split(block):
        if len(sentence) <= limit:
            yield sentence
            continue
        for word in sentence.split():
            for start in range(0, len(word), limit):
                yield word[start : start + limit]


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, starting at a word."""
    if overlap <= 0 or len(text) <= overlap:
        return "" if overlap <= 0 else text
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail
