from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.service import MemoryService, RetrievalLimits

DIM = 384


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "milvus" / "memory.db")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[MilvusStore]:
    opened = await MilvusStore.open(db_path, "keel_memory", DIM)
    yield opened
    await opened.close()


@pytest.fixture
def service(store: MilvusStore) -> MemoryService:
    return MemoryService(store, HashingEmbedder(DIM), RetrievalLimits())
