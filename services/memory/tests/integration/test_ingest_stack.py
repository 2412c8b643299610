"""`keel memory ingest` against the real memory process of the session's stack: a folder's
chunks come back to the tenant that ingested them and to no other, and a second ingest of the
same folder stores nothing new."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from keel_cli.stack import LocalStack
from keel_clients import CallOptions, MemoryClient, open_channel
from keel_contracts.chat import RequestContext

pytestmark = pytest.mark.stack


async def ingest(stack: LocalStack, folder: Path, tenant: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keel_cli", "memory", "ingest", str(folder)]
    command += ["--tenant", tenant, "--target", stack.target("memory")]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_ingest_a_folder_into_one_tenant(stack: LocalStack, tmp_path: Path) -> None:
    code = uuid.uuid4().hex[:8]
    tenant = f"t-{code}"
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "refunds.md").write_text(
        f"# Refunds\n\nRefunds above 500 EUR need approval code {code} from a manager.\n"
    )
    (tmp_path / "notes.txt").write_text("The deploy window is Tuesday morning.\n")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")

    first = await ingest(stack, tmp_path, tenant)
    again = await ingest(stack, tmp_path, tenant)

    # The bad file is reported, the others are stored (exit 1: something failed).
    assert first.returncode == 1, first.stdout + first.stderr
    assert "2 file(s): 2 chunk(s) stored, 0 skipped as duplicates" in first.stdout
    assert "broken.pdf" in first.stdout
    assert "2 file(s): 0 chunk(s) stored, 2 skipped as duplicates" in again.stdout
    async with open_channel(stack.target("memory")) as channel:
        memory = MemoryClient(channel, CallOptions(timeout_s=30))
        query = "who approves a large refund?"
        own = await memory.retrieve(RequestContext(tenant=tenant), query, 2000, top_k=5)
        other = await memory.retrieve(RequestContext(tenant=f"o-{code}"), query, 2000, top_k=5)
    assert code in own[0].content
    assert own[0].metadata["source"].endswith("/policies/refunds.md")
    assert [hit for hit in other if code in hit.content] == []
