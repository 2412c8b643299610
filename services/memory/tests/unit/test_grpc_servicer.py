"""The memory servicer over real gRPC in-process, on a Milvus Lite file."""

from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.rules import RetrievalLimits
from keel_memory.handlers.grpc_servicer import MemoryServicer
from keel_memory.metrics import MemoryMetrics
from keel_memory.usecase import MemoryService

pytestmark = pytest.mark.milvus

CTX = common_pb2.RequestContext(session_id="sess-1", agent_id="agent-7")


@pytest.fixture
async def rpc(
    store: MilvusStore,
) -> AsyncIterator[tuple[memory_pb2_grpc.MemoryServiceStub, InMemoryPublisher, CollectorRegistry]]:
    audit, published = in_memory_audit("memory")
    audit.start()
    registry = CollectorRegistry()
    service = MemoryService(
        store, HashingEmbedder(384), audit, MemoryMetrics(registry), RetrievalLimits()
    )
    servicer = MemoryServicer(service)
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
        registry,
    )
    await server.start()
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield memory_pb2_grpc.MemoryServiceStub(channel), published, registry
    await server.stop(0)
    await audit.close()


async def test_store_retrieve_forget_over_grpc_with_audit(rpc) -> None:  # type: ignore[no-untyped-def]
    stub, published, registry = rpc
    stored = await stub.Store(
        memory_pb2.StoreRequest(
            context=CTX,
            type=memory_pb2.MEMORY_TYPE_SEMANTIC,
            content="Refunds above 500 EUR need a manager",
            metadata={"source": "handbook"},
        ),
        timeout=10,
    )
    again = await stub.Store(
        memory_pb2.StoreRequest(
            context=CTX,
            type=memory_pb2.MEMORY_TYPE_SEMANTIC,
            content="Refunds above 500 EUR need a manager",
        ),
        timeout=10,
    )
    assert stored.id == again.id
    assert len(stored.id) == 64
    await stub.Store(
        memory_pb2.StoreRequest(
            context=CTX, type=memory_pb2.MEMORY_TYPE_EPISODIC, content="lunch was late today"
        ),
        timeout=10,
    )

    reply = await stub.Retrieve(
        memory_pb2.RetrieveRequest(
            context=CTX, query="who approves refunds above 500 EUR", token_budget=100, top_k=5
        ),
        timeout=10,
    )
    assert reply.items[0].id == stored.id
    assert reply.items[0].type == memory_pb2.MEMORY_TYPE_SEMANTIC
    assert reply.tokens_used == sum(item.tokens for item in reply.items) <= 100
    only_episodic = await stub.Retrieve(
        memory_pb2.RetrieveRequest(query="refunds", types=[memory_pb2.MEMORY_TYPE_EPISODIC]),
        timeout=10,
    )
    assert [item.content for item in only_episodic.items] == ["lunch was late today"]

    forgotten = await stub.Forget(memory_pb2.ForgetRequest(session_id="sess-1"), timeout=10)
    assert forgotten.deleted == 2

    records = published.audit_records()
    assert [r.action for r in records] == ["memory.store"] * 3 + ["memory.forget"]
    assert records[0].details == {
        "id": stored.id,
        "type": "semantic",
        "session": "sess-1",
        "tenant": "default",
    }
    assert records[0].actor == "agent-7"
    assert records[-1].details["count"] == 2
    assert registry.get_sample_value("keel_memory_stored_total", {"type": "semantic"}) == 2


@pytest.mark.parametrize(
    "request_",
    [
        memory_pb2.StoreRequest(type=memory_pb2.MEMORY_TYPE_SEMANTIC, content=""),
        memory_pb2.StoreRequest(type=memory_pb2.MEMORY_TYPE_UNSPECIFIED, content="x"),
        memory_pb2.StoreRequest(type=42, content="x"),  # type: ignore[arg-type]
    ],
)
async def test_bad_store_requests_are_invalid_argument(rpc, request_) -> None:  # type: ignore[no-untyped-def]
    stub, published, _ = rpc
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Store(request_, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert published.audit_records() == []


async def test_forget_without_ids_or_session_is_invalid_argument(rpc) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = rpc
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forget(memory_pb2.ForgetRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "older_than_s",
    [
        2**62,  # past what a timedelta holds
        3000 * 365 * 24 * 3600,  # a timedelta, but "now - age" is before year 1
    ],
)
async def test_forget_by_an_impossible_age_is_invalid_argument(rpc, older_than_s: int) -> None:  # type: ignore[no-untyped-def]
    """A fuzz finding: these were INTERNAL (OverflowError in the mapping or the use case)."""
    stub, published, _ = rpc
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forget(memory_pb2.ForgetRequest(older_than_s=older_than_s), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "older_than_s" in (caught.value.details() or "")
    assert published.audit_records() == []


async def test_retrieve_filtering_on_an_empty_metadata_key_is_invalid_argument(rpc) -> None:  # type: ignore[no-untyped-def]
    """A fuzz finding: Milvus refused the expression and the caller saw UNAVAILABLE."""
    stub, _, _ = rpc
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Retrieve(
            memory_pb2.RetrieveRequest(query="anything", filters={"": "x"}), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty key" in (caught.value.details() or "")


async def test_type_budgets_item_fields_and_forget_by_age_over_grpc(rpc) -> None:  # type: ignore[no-untyped-def]
    stub, published, _ = rpc
    for i in range(3):
        await stub.Store(
            memory_pb2.StoreRequest(
                context=CTX,
                type=memory_pb2.MEMORY_TYPE_EPISODIC,
                content=f"episode {i}: the nightly export failed",
            ),
            timeout=10,
        )
    await stub.Store(
        memory_pb2.StoreRequest(
            context=CTX, type=memory_pb2.MEMORY_TYPE_PROCEDURAL, content="rerun the nightly export"
        ),
        timeout=10,
    )
    reply = await stub.Retrieve(
        memory_pb2.RetrieveRequest(
            query="nightly export",
            token_budget=200,
            type_budgets=[
                memory_pb2.TypeBudget(type=memory_pb2.MEMORY_TYPE_EPISODIC, token_budget=10)
            ],
        ),
        timeout=10,
    )
    kinds = [item.type for item in reply.items]
    assert kinds.count(memory_pb2.MEMORY_TYPE_EPISODIC) == 1  # each episode is 10 tokens
    assert memory_pb2.MEMORY_TYPE_PROCEDURAL in kinds
    assert {item.session_id for item in reply.items} == {"sess-1"}
    assert all(item.created_at_ms > 1_700_000_000_000 for item in reply.items)

    # Nothing is a day old yet; an age selector narrowed to one type deletes nothing.
    nothing = await stub.Forget(
        memory_pb2.ForgetRequest(older_than_s=86_400, types=[memory_pb2.MEMORY_TYPE_EPISODIC]),
        timeout=10,
    )
    assert nothing.deleted == 0
    assert published.audit_records()[-1].details["older_than_s"] == 86_400
    assert published.audit_records()[-1].subject == "age"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forget(memory_pb2.ForgetRequest(older_than_s=-1), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forget(
            memory_pb2.ForgetRequest(types=[memory_pb2.MEMORY_TYPE_EPISODIC]), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
