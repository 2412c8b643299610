"""Settings pick the embedder and the index; bad combinations stop start-up with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_contracts.errors import ConfigError
from keel_memory.adapters.embedders import build_embedder
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_index import IndexSettings
from keel_memory.adapters.minilm import MiniLMEmbedder
from keel_memory.adapters.openai_embedder import OpenAIEmbedder
from keel_memory.config import Settings


def test_minilm_is_the_default_embedder() -> None:
    settings = Settings()
    assert settings.embedder == "minilm"
    assert isinstance(build_embedder(settings), MiniLMEmbedder)


async def test_other_embedders_are_chosen_by_name() -> None:
    assert isinstance(
        build_embedder(Settings(embedder="hashing", embedding_dim=64)), HashingEmbedder
    )
    openai = build_embedder(Settings(embedder="openai", embedding_dim=1536))
    assert isinstance(openai, OpenAIEmbedder)
    assert openai.dim == 1536
    await openai.aclose()


def test_a_dimension_mismatch_or_missing_model_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="384-dimensional"):
        build_embedder(Settings(embedding_dim=768))
    with pytest.raises(ConfigError, match="missing"):
        build_embedder(Settings(minilm_model_dir=str(tmp_path)))


def test_index_settings_come_from_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_MEMORY_INDEX__TYPE", "IVF_FLAT")
    monkeypatch.setenv("KEEL_MEMORY_INDEX__NLIST", "256")
    monkeypatch.setenv("KEEL_MEMORY_INDEX__NPROBE", "16")
    index = Settings().index
    assert index.index_params() == {
        "index_type": "IVF_FLAT",
        "metric_type": "COSINE",
        "params": {"nlist": 256},
    }
    assert index.search_params(10) == {"metric_type": "COSINE", "params": {"nprobe": 16}}


def test_hnsw_search_never_explores_fewer_candidates_than_it_returns() -> None:
    index = IndexSettings(type="HNSW", m=16, ef_construction=200, ef=32)
    assert index.index_params()["params"] == {"M": 16, "efConstruction": 200}
    assert index.search_params(10)["params"] == {"ef": 32}
    assert index.search_params(100)["params"] == {"ef": 100}
    assert IndexSettings(type="FLAT").search_params(10) == {"metric_type": "COSINE", "params": {}}


def test_unset_index_type_is_flat_on_lite_and_hnsw_on_a_server() -> None:
    assert Settings().index.type is None
    assert IndexSettings().for_backend(lite=True).type == "FLAT"
    assert IndexSettings().for_backend(lite=False).type == "HNSW"
    assert IndexSettings(type="IVF_FLAT").for_backend(lite=False).type == "IVF_FLAT"
