"""A document's chunks stored in batches (the batch form of Store): ids from tenant, source and
chunk hash; nothing stored twice; a changed document replaces its old chunks; tenants apart."""

from __future__ import annotations

import grpc
import pytest

from keel.memory.v1 import memory_pb2
from keel_contracts.errors import InvalidArgument
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.ingest import Chunk, chunk_id
from keel_memory.domain.models import MemoryScope, entry_id
from keel_memory.handlers.grpc_servicer import MemoryServicer
from keel_memory.usecase import MemoryService

pytestmark = pytest.mark.milvus

ACME = MemoryScope(tenant="acme")
GLOBEX = MemoryScope(tenant="globex")


def chunks(*texts: str) -> list[Chunk]:
    return [Chunk(content=text, metadata={}) for text in texts]


def test_chunk_ids_hash_tenant_source_and_text() -> None:
    base = chunk_id("semantic", "docs/a.md", "text", ACME)
    assert base == chunk_id("semantic", "docs/a.md", "text", ACME)
    others = {
        chunk_id("semantic", "docs/b.md", "text", ACME),
        chunk_id("semantic", "docs/a.md", "text 2", ACME),
        chunk_id("semantic", "docs/a.md", "text", GLOBEX),
        chunk_id("episodic", "docs/a.md", "text", ACME),
        entry_id("semantic", "text", ACME),
    }
    assert base not in others
    assert len(others) == 5


async def test_reingesting_stores_nothing_new(service: MemoryService) -> None:
    first = await service.store_batch("semantic", "a.md", chunks("one", "two"), replace=True)
    again = await service.store_batch("semantic", "a.md", chunks("one", "two"), replace=True)
    assert (first.stored, first.unchanged, first.removed) == (2, 0, 0)
    assert (again.stored, again.unchanged, again.removed) == (0, 2, 0)
    assert again.ids == first.ids


async def test_a_changed_document_replaces_its_old_chunks(
    service: MemoryService, store: MilvusStore
) -> None:
    await service.store_batch("semantic", "a.md", chunks("kept", "old text"), replace=True)
    await service.store_batch("semantic", "b.md", chunks("other file"), replace=True)
    changed = await service.store_batch(
        "semantic", "a.md", chunks("kept", "new text"), replace=True
    )
    assert (changed.stored, changed.unchanged, changed.removed) == (1, 1, 1)
    left = await store.ids_where(["semantic"], {"source": "a.md"}, MemoryScope())
    assert sorted(left) == sorted(changed.ids)
    assert len(await store.ids_where(["semantic"], {"source": "b.md"}, MemoryScope())) == 1
    retrieved = await service.retrieve("new text", top_k=10)
    assert "old text" not in [item.content for item in retrieved.items]
    assert {item.metadata["source"] for item in retrieved.items} == {"a.md", "b.md"}


async def test_earlier_batches_of_a_document_survive_its_replacing_last_batch(
    service: MemoryService, store: MilvusStore
) -> None:
    first = await service.store_batch("semantic", "big.md", chunks("part 1", "part 2"))
    last = await service.store_batch(
        "semantic", "big.md", chunks("part 3"), replace=True, keep_ids=first.ids
    )
    assert last.removed == 0
    assert len(await store.ids_where(["semantic"], {"source": "big.md"}, MemoryScope())) == 3


async def test_an_ingest_in_one_tenant_leaves_the_other_alone(
    service: MemoryService,
) -> None:
    await service.store_batch("semantic", "a.md", chunks("acme secret"), scope=ACME)
    emptied = await service.store_batch("semantic", "a.md", [], replace=True, scope=GLOBEX)
    assert emptied.removed == 0
    assert (await service.retrieve("acme secret", scope=GLOBEX)).items == ()
    [own] = (await service.retrieve("acme secret", scope=ACME)).items
    assert own.content == "acme secret"


async def test_bad_batches_are_refused(service: MemoryService) -> None:
    with pytest.raises(InvalidArgument):
        await service.store_batch("semantic", "", chunks("x"))
    with pytest.raises(InvalidArgument):
        await service.store_batch("semantic", "a.md", [])
    with pytest.raises(InvalidArgument):
        await service.store_batch("semantic", "a.md", chunks("   "))


class _Context:
    """Just enough of a ServicerContext for the handler (it never touches it)."""


async def test_the_grpc_batch_form_of_store(service: MemoryService) -> None:
    servicer = MemoryServicer(service)
    request = memory_pb2.StoreRequest(
        type=memory_pb2.MEMORY_TYPE_SEMANTIC,
        source="a.md",
        chunks=[memory_pb2.StoreChunk(content="one", metadata={"page": "1"})],
        metadata={"lang": "en"},
        replace=True,
    )
    context: grpc.aio.ServicerContext = _Context()  # type: ignore[assignment]
    response = await servicer.Store(request, context)
    assert (response.stored, response.unchanged, len(response.ids)) == (1, 0, 1)
    [item] = (await service.retrieve("one")).items
    assert item.metadata == {"page": "1", "lang": "en", "source": "a.md"}
    with pytest.raises(InvalidArgument):
        await servicer.Store(
            memory_pb2.StoreRequest(
                type=memory_pb2.MEMORY_TYPE_SEMANTIC, source="a.md", content="both"
            ),
            context,
        )
