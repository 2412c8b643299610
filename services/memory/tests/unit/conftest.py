from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel_core.audit import AuditEmitter
from keel_core.testing import in_memory_audit
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.ports import MemoryStore
from keel_memory.domain.rules import RetrievalLimits
from keel_memory.metrics import MemoryMetrics
from keel_memory.usecase import MemoryService

DIM = 384

MakeService = Callable[..., MemoryService]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "milvus" / "memory.db")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[MilvusStore]:
    opened = await MilvusStore.open(db_path, "keel_memory", DIM)
    yield opened
    await opened.close()


@pytest.fixture
async def audit() -> AsyncIterator[AuditEmitter]:
    emitter, _ = in_memory_audit("memory")
    emitter.start()
    yield emitter
    await emitter.close()


@pytest.fixture
def make_service(audit: AuditEmitter) -> MakeService:
    """``MemoryService(store, embedder=hashing, limits=None, clock=…)`` with an in-memory
    audit and a registry of its own."""

    def make(store: MemoryStore, embedder: Any = None, limits: Any = None, **kw: Any) -> Any:
        return MemoryService(
            store,
            embedder or HashingEmbedder(DIM),
            audit,
            MemoryMetrics(CollectorRegistry()),
            limits,
            **kw,
        )

    return make


@pytest.fixture
def service(store: MilvusStore, make_service: MakeService) -> MemoryService:
    return make_service(store, HashingEmbedder(DIM), RetrievalLimits())
