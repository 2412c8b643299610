"""The configured embedder, built once at start-up, and the name of its vector space."""

from __future__ import annotations

from pathlib import Path

from keel_contracts.errors import ConfigError
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.minilm import MiniLMEmbedder, find_model_dir
from keel_memory.adapters.minilm.embedder import ModelNotFoundError
from keel_memory.adapters.openai_embedder import OpenAIEmbedder
from keel_memory.adapters.static import SPACE as STATIC_SPACE
from keel_memory.adapters.static import StaticEmbedder
from keel_memory.config import Settings
from keel_memory.domain.ports import Embedder


def embedding_space(settings: Settings) -> str:
    """What a collection records as the embedder of its vectors: two embedders with different
    names make vectors that must never be compared (``milvus_store`` refuses the mix)."""
    if settings.embedder == "openai":
        return f"openai:{settings.openai_model}"
    if settings.embedder == "minilm-static":
        return STATIC_SPACE
    return settings.embedder


def build_embedder(settings: Settings) -> Embedder:
    """A wrong dimension would only show up as a Milvus error on the first Store, so it stops
    start-up here instead."""
    if settings.embedder == "hashing":
        return HashingEmbedder(settings.embedding_dim)
    if settings.embedder == "openai":
        return OpenAIEmbedder(
            settings.openai_base_url,
            settings.openai_api_key,
            settings.openai_model,
            settings.embedding_dim,
            timeout_s=settings.openai_timeout_s,
        )
    embedder: MiniLMEmbedder | StaticEmbedder
    try:
        if settings.embedder == "minilm-static":
            cache_dir = Path(settings.static_cache_dir) if settings.static_cache_dir else None
            embedder = StaticEmbedder.load(find_model_dir(settings.minilm_model_dir), cache_dir)
        else:
            embedder = MiniLMEmbedder.load(settings.minilm_model_dir)
    except (ModelNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the {settings.embedder} embedder: {exc}") from exc
    if embedder.dim != settings.embedding_dim:
        raise ConfigError(
            f"the {settings.embedder} embedder makes {embedder.dim}-dimensional vectors, "
            f"embedding_dim is {settings.embedding_dim}"
        )
    return embedder
