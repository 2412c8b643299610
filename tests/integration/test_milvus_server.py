"""The memory service on a real Milvus server (PyPI ``milvus`` 2.3.5, an embedded standalone;
tests/integration/milvus_server.py), one server for the module: the adapter creates the HNSW
index configured for servers and searches it with ``ef`` from the settings; recency blends the
same as on Lite; and two memory replicas, real processes, share the one server: what one
stores (one Store or a `keel memory ingest`) the other retrieves and forgets, per tenant. That
sharing is why the server path exists: Milvus Lite is one process per file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel_cli.stack import SERVICES, LocalStack, with_free_ports, with_replicas
from keel_clients import CallOptions, MemoryClient, open_channel
from keel_contracts.chat import RequestContext
from keel_core import trust
from keel_core.audit import AuditEmitter
from keel_core.settings import KafkaSettings
from keel_core.testing import FakeClock, in_memory_audit
from keel_memory.adapters.milvus_index import IndexSettings
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.adapters.minilm import MiniLMEmbedder
from keel_memory.domain.recency import RecencyBlend
from keel_memory.metrics import MemoryMetrics
from keel_memory.usecase import MemoryService
from tests.integration.milvus_server import milvus_server

pytestmark = [pytest.mark.milvus, pytest.mark.stack, pytest.mark.timeout(300)]

DIM = 384


@pytest.fixture(scope="module")
def milvus_uri() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="keel-test-milvus-") as workdir:
        with milvus_server(Path(workdir)) as uri:
            yield uri


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


def collection() -> str:
    return f"keel_memory_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def audit() -> AsyncIterator[AuditEmitter]:
    emitter, _ = in_memory_audit("memory")
    emitter.start()
    yield emitter
    await emitter.close()


@pytest.fixture
def make_service(audit: AuditEmitter, minilm: MiniLMEmbedder) -> Callable[..., MemoryService]:
    def make(store: MilvusStore, **kwargs: Any) -> MemoryService:
        metrics = MemoryMetrics(CollectorRegistry())
        return MemoryService(store, minilm, audit, metrics, None, **kwargs)

    return make


@pytest.fixture
async def hnsw_store(milvus_uri: str) -> AsyncIterator[MilvusStore]:
    store = await MilvusStore.open(
        milvus_uri, collection(), DIM, index=IndexSettings(m=8, ef_construction=64, ef=40)
    )
    yield store
    await store.close()


async def test_a_server_gets_the_configured_hnsw_index_and_is_searched_with_its_ef(
    hnsw_store: MilvusStore, make_service: Callable[..., MemoryService]
) -> None:
    client = hnsw_store._client
    sent: list[dict[str, Any]] = []
    search = client.search

    def recording_search(*args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs["search_params"])
        return search(*args, **kwargs)

    client.search = recording_search
    service = make_service(hnsw_store)
    await service.store("procedural", "restart payments with systemctl restart payments")
    await service.store("semantic", "lasagne is served on Fridays")
    found = await service.retrieve("how do I restart the payment service?", top_k=1)

    index = client.describe_index(hnsw_store._collection, "vector")
    assert (index["index_type"], index["M"], index["efConstruction"]) == ("HNSW", "8", "64")
    assert index["metric_type"] == "COSINE"
    assert [item.content for item in found.items] == [
        "restart payments with systemctl restart payments"
    ]
    # One search per type, each with the configured ef (above top_k, so it is ef that counts).
    assert sent == [{"metric_type": "COSINE", "params": {"ef": 40}}] * 3


async def test_recency_ranks_the_restated_fact_first_on_a_server(
    milvus_uri: str, make_service: Callable[..., MemoryService]
) -> None:
    """The sentences of services/memory/tests/unit/test_recency.py, whose ranking on Lite the
    blend reverses; the same must hold on a server's HNSW index."""
    stale = "The weekly team meeting is on Mondays at 10:00."
    update = "Since March the weekly team meeting is held on Tuesdays at 10:00."
    unrelated = "The office coffee machine is on the second floor."
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ranks: list[list[str]] = []
    for blend in (RecencyBlend(), RecencyBlend(half_life_s=7 * 24 * 3600.0, weight=0.2)):
        store = await MilvusStore.open(milvus_uri, collection(), DIM)
        try:
            clock = FakeClock(start=(now - timedelta(days=30)).timestamp())
            service = make_service(store, clock=clock.utcnow, recency=blend)
            await service.store("semantic", stale)
            clock.advance(timedelta(days=30).total_seconds())
            await service.store("semantic", update)
            await service.store("semantic", unrelated)
            found = await service.retrieve("When is the weekly team meeting?", top_k=3)
            ranks.append([item.content for item in found.items])
        finally:
            await store.close()
    assert ranks == [[stale, update, unrelated], [update, stale, unrelated]]


@pytest.fixture
async def two_replicas(
    kafka: KafkaSettings, milvus_uri: str, tmp_path: Path
) -> AsyncIterator[LocalStack]:
    """``memory`` and ``memory-2`` as real processes on the one server and collection; the
    other services are named (the stack's environment points at them) but not started."""
    stack = LocalStack(
        run_dir=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_replicas(with_free_ports(SERVICES), {"memory": 2}),
        extra_env={
            "KEEL_MEMORY_MILVUS_URI": milvus_uri,
            "KEEL_MEMORY_COLLECTION": collection(),
        },
    )
    (tmp_path / "logs").mkdir()
    trust.generate(stack.trust_dir)
    replicas = stack.replicas("memory")
    try:
        # Both at once, as a deployment's replicas start: both find no collection yet.
        for spec in replicas:
            stack.start_one(spec)
        deadline = time.monotonic() + 120
        for spec in replicas:
            await stack.wait_healthy(spec, deadline)
        yield stack
    finally:
        codes = await stack.stop()
        assert codes == {"memory": 0, "memory-2": 0}, {n: stack.log_tail(n) for n in codes}


async def ingest(stack: LocalStack, folder: Path, tenant: str, instance: str) -> str:
    command = [sys.executable, "-m", "keel_cli", "memory", "ingest", str(folder)]
    command += ["--tenant", tenant, "--target", stack.target(instance)]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_two_replicas_share_one_server(two_replicas: LocalStack, tmp_path: Path) -> None:
    code = uuid.uuid4().hex[:8]
    acme = RequestContext(session_id=f"s-{code}", tenant=f"acme-{code}")
    globex = RequestContext(session_id=f"s-{code}", tenant=f"globex-{code}")
    fact = f"the acme vault code is {code}"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(f"# Refunds\n\nRefunds above 500 EUR need code {code}.\n")
    options = CallOptions(timeout_s=30)
    async with (
        open_channel(two_replicas.target("memory")) as first,
        open_channel(two_replicas.target("memory-2")) as second,
    ):
        one, two = MemoryClient(first, options), MemoryClient(second, options)
        stored = await one.store(acme, fact, "semantic")
        seen_by_two = await two.retrieve(acme, fact, 2000, top_k=5)
        other_tenant = await two.retrieve(globex, fact, 2000, top_k=50)
        ingested = await ingest(two_replicas, docs, acme.tenant, "memory-2")
        chunks_by_one = await one.retrieve(acme, "who approves a large refund?", 2000, top_k=5)
        not_globex = await two.forget(globex, session_id=acme.session_id)
        forgotten = await two.forget(acme, session_id=acme.session_id)
        after = await one.retrieve(acme, fact, 2000, top_k=5)

    assert [(hit.id, hit.content) for hit in seen_by_two][:1] == [(stored, fact)]
    assert [hit for hit in other_tenant if code in hit.content] == []
    assert "1 file(s): 1 chunk(s) stored" in ingested
    assert code in chunks_by_one[0].content
    assert chunks_by_one[0].metadata["source"].endswith("refunds.md")
    assert (not_globex, forgotten) == (0, 1)
    assert [hit for hit in after if hit.content == fact] == []
