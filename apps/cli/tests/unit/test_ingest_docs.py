"""What `keel memory ingest` makes of files: which ones, their text (PDF too), their chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_cli.ingest_docs import (
    ChunkSettings,
    DocumentError,
    chunk_document,
    find_documents,
    read_text,
)
from keel_cli.memory_cmd import BATCH_CHUNKS, batches, source_of

GUIDE = """# Refunds

Refunds above 500 EUR need a manager's approval.

Small refunds are automatic.

## Chargebacks

A chargeback freezes the account until the dispute is resolved.

```
# not a heading

still the same code block
```
"""


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_markdown_headings_start_chunks_and_code_fences_stay_whole() -> None:
    chunks = chunk_document(GUIDE, markdown=True)
    assert chunks == [
        "# Refunds\n\nRefunds above 500 EUR need a manager's approval.\n\n"
        "Small refunds are automatic.",
        "## Chargebacks\n\nA chargeback freezes the account until the dispute is resolved."
        "\n\n```\n# not a heading\n\nstill the same code block\n```",
    ]


def test_chunks_are_deterministic_near_the_target_and_overlap() -> None:
    paragraphs = [f"Paragraph {i} says something about topic {i}. " * 4 for i in range(30)]
    text = "\n\n".join(paragraphs)
    settings = ChunkSettings(target_chars=600, overlap_chars=100)
    chunks = chunk_document(text, markdown=False, settings=settings)
    assert chunks == chunk_document(text, markdown=False, settings=settings)
    assert len(chunks) > 5
    assert all(len(chunk) <= 600 + 100 for chunk in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        # The next chunk opens with the tail of the one before.
        assert before.endswith(after.split("\n\n")[0])


def test_an_edit_changes_only_the_chunks_around_it() -> None:
    sections = [f"## Part {i}\n\n" + f"Fact {i} of the handbook. " * 10 for i in range(6)]
    before = chunk_document("\n\n".join(sections), markdown=True)
    sections[3] = sections[3].replace("Fact 3", "Revised fact 3")
    after = chunk_document("\n\n".join(sections), markdown=True)
    assert len(before) == len(after) == 6
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [3]


def test_a_block_longer_than_the_target_is_cut_at_sentences() -> None:
    block = " ".join(f"Sentence number {i} is here." for i in range(100))
    chunks = chunk_document(block, markdown=False, settings=ChunkSettings(200, 0))
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert all(chunk.endswith(".") for chunk in chunks)
    assert " ".join(chunks) == block


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    pdf = tmp_path / "policy.pdf"
    pdf.write_bytes(tiny_pdf("Refunds above 500 EUR need a manager"))
    assert "Refunds above 500 EUR need a manager" in read_text(pdf)


def test_unreadable_files_are_document_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not a pdf")
    binary = tmp_path / "notes.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    for path in (broken, binary):
        with pytest.raises(DocumentError):
            read_text(path)


def test_a_folder_is_searched_recursively_by_glob_without_hidden_files(tmp_path: Path) -> None:
    for name in ("a.md", "sub/b.txt", "sub/deep/c.pdf", "image.png", ".git/x.md", "sub/.h.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_documents(tmp_path)]
    assert found == ["a.md", "sub/b.txt", "sub/deep/c.pdf"]
    only_md = find_documents(tmp_path, ["*.md"])
    assert [p.name for p in only_md] == ["a.md"]
    assert find_documents(tmp_path / "image.png") == [tmp_path / "image.png"]


def test_sources_name_the_file_inside_the_ingested_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("x")
    path = tmp_path / "sub" / "b.md"
    assert source_of(tmp_path, path, "") == f"{tmp_path.resolve()}/sub/b.md"
    assert source_of(tmp_path, path, "handbook/") == "handbook/sub/b.md"
    assert source_of(path, path, "") == str(path.resolve())


def test_batches_keep_order_and_an_empty_document_still_makes_one_call() -> None:
    chunks = [f"c{i}" for i in range(BATCH_CHUNKS * 2 + 1)]
    groups = batches(chunks)
    assert [len(group) for group in groups] == [BATCH_CHUNKS, BATCH_CHUNKS, 1]
    assert [chunk for group in groups for chunk in group] == chunks
    assert batches([]) == [[]]
