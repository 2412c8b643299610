"""The configured embedder, built once at start-up."""

from __future__ import annotations

from keel_contracts.errors import ConfigError
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.minilm import MiniLMEmbedder
from keel_memory.adapters.minilm.embedder import ModelNotFoundError
from keel_memory.adapters.openai_embedder import OpenAIEmbedder
from keel_memory.config import Settings
from keel_memory.domain.ports import Embedder


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
    try:
        embedder = MiniLMEmbedder.load(settings.minilm_model_dir)
    except (ModelNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the MiniLM embedder: {exc}") from exc
    if embedder.dim != settings.embedding_dim:
        raise ConfigError(
            f"the MiniLM model makes {embedder.dim}-dimensional vectors, "
            f"embedding_dim is {settings.embedding_dim}"
        )
    return embedder
