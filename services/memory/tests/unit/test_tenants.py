"""Tenants apart: what one tenant stores never comes back to another, for every memory type,
no forget reaches across, and entries stored before tenants existed are the default tenant's.
On a real Milvus Lite file."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_contracts.errors import InvalidArgument
from keel_core.grpc import GrpcServer, insecure_channel
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.models import MEMORY_TYPES, MemoryScope, entry_id
from keel_memory.domain.rules import scope_of
from keel_memory.handlers.grpc_servicer import MemoryServicer
from keel_memory.usecase import MemoryService

from .conftest import DIM, MakeService

pytestmark = pytest.mark.milvus

ACME = MemoryScope(tenant="acme")
GLOBEX = MemoryScope(tenant="globex")
SECRET = "the acme launch code is 7741"


@pytest.mark.parametrize("memory_type", MEMORY_TYPES)
async def test_one_tenants_memory_never_comes_back_to_another(
    service: MemoryService, memory_type: str
) -> None:
    await service.store(memory_type, SECRET, session_id="s1", scope=ACME)  # type: ignore[arg-type]

    stolen = await service.retrieve(SECRET, top_k=10, scope=GLOBEX)
    default = await service.retrieve(SECRET, top_k=10)
    own = await service.retrieve(SECRET, top_k=10, scope=ACME)

    assert stolen.items == ()
    assert default.items == ()
    assert [(item.content, item.tenant) for item in own.items] == [(SECRET, "acme")]
    assert "keel_tenant" not in own.items[0].metadata


async def test_the_same_text_in_two_tenants_is_two_entries_and_forgets_stay_inside(
    service: MemoryService,
) -> None:
    mine = await service.store("semantic", SECRET, session_id="s1", scope=ACME)
    theirs = await service.store("semantic", SECRET, session_id="s1", scope=GLOBEX)
    assert mine.id != theirs.id
    # The default tenant keeps the ids entries had before tenants existed.
    assert entry_id("semantic", SECRET) == entry_id("semantic", SECRET, MemoryScope())

    assert await service.forget(ids=[mine.id], scope=GLOBEX) == 0
    assert await service.forget(session_id="s1", scope=GLOBEX) == 1
    [left] = (await service.retrieve(SECRET, scope=ACME)).items
    assert left.id == mine.id
    assert (await service.retrieve(SECRET, scope=GLOBEX)).items == ()


async def test_with_agent_scoping_an_agent_recalls_only_its_own(service: MemoryService) -> None:
    bot = scope_of("acme", "bot", by_agent=True)
    other = scope_of("acme", "other", by_agent=True)
    await service.store("semantic", SECRET, scope=bot)
    assert (await service.retrieve(SECRET, scope=other)).items == ()
    assert [i.agent for i in (await service.retrieve(SECRET, scope=bot)).items] == ["bot"]
    assert scope_of("", "bot", by_agent=False) == MemoryScope(tenant="default", agent="")


async def test_reserved_keys_cannot_be_stored_or_filtered(service: MemoryService) -> None:
    with pytest.raises(InvalidArgument, match="reserved"):
        await service.store("semantic", "x", metadata={"keel_tenant": "acme"}, scope=GLOBEX)
    with pytest.raises(InvalidArgument, match="reserved"):
        await service.retrieve("x", filters={"keel_tenant": "acme"}, scope=GLOBEX)


async def test_entries_from_before_tenants_are_the_default_tenants(
    db_path: str, make_service: MakeService
) -> None:
    store = await MilvusStore.open(db_path, "keel_memory", DIM)
    [vector] = await HashingEmbedder(DIM).embed(["an old fact about lunch"])
    # A row as the store wrote it before tenants: no tenant in its metadata.
    legacy = {
        "id": entry_id("semantic", "an old fact about lunch"),
        "vector": vector,
        "type": "semantic",
        "content": "an old fact about lunch",
        "session_id": "old",
        "metadata": {"source": "v1"},
        "created_at": 1_700_000_000_000,
    }
    store._client.upsert("keel_memory", data=[legacy])
    await store.close()

    reopened = await MilvusStore.open(db_path, "keel_memory", DIM)
    try:
        service = make_service(reopened)
        [found] = (await service.retrieve("an old fact about lunch")).items
        assert (found.tenant, found.metadata) == ("default", {"source": "v1"})
        assert (await service.retrieve("an old fact about lunch", scope=ACME)).items == ()
    finally:
        await reopened.close()


async def test_over_grpc_the_request_contexts_tenant_scopes_every_call(
    store: MilvusStore, make_service: MakeService
) -> None:
    servicer = MemoryServicer(make_service(store))
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                servicer,
                memory_pb2_grpc.add_MemoryServiceServicer_to_server,
                memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
            )
        ],
        CollectorRegistry(),
    )
    await server.start()
    acme = common_pb2.RequestContext(session_id="s1", agent_id="a", tenant="acme")
    globex = common_pb2.RequestContext(session_id="s2", agent_id="a", tenant="globex")
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = memory_pb2_grpc.MemoryServiceStub(channel)
            await stub.Store(
                memory_pb2.StoreRequest(
                    context=acme, type=memory_pb2.MEMORY_TYPE_EPISODIC, content=SECRET
                ),
                timeout=10,
            )
            stolen = await stub.Retrieve(
                memory_pb2.RetrieveRequest(context=globex, query=SECRET), timeout=10
            )
            own = await stub.Retrieve(
                memory_pb2.RetrieveRequest(context=acme, query=SECRET), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Store(
                    memory_pb2.StoreRequest(
                        context=globex,
                        type=memory_pb2.MEMORY_TYPE_SEMANTIC,
                        content="x",
                        metadata={"keel_tenant": "acme"},
                    ),
                    timeout=10,
                )
    finally:
        await server.stop(0)
    assert list(stolen.items) == []
    assert [item.content for item in own.items] == [SECRET]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
